//! Annotations on a Canary that operators set with `serin promote|abort|retry|pause|resume`.
//! Annotations, not spec fields, so the GitOps agent that owns the spec does not fight them:
//! Flux and Argo CD only manage the fields they apply.

/// One-shot request, value `promote`, `abort` or `retry`; the controller clears it once handled.
pub const ACTION: &str = "serin.dev/action";
/// While present with value `"true"`, the controller takes no step for this canary.
pub const PAUSED: &str = "serin.dev/paused";

/// One-shot operator requests carried by [`ACTION`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Promote now, skipping the remaining analysis and closed gates.
    Promote,
    /// Roll back now, as if the threshold had been reached.
    Abort,
    /// Run a failed or quarantined revision again.
    Retry,
}

impl Action {
    /// The annotation value.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Promote => "promote",
            Action::Abort => "abort",
            Action::Retry => "retry",
        }
    }

    /// Parses an annotation value; unknown values are ignored by the controller (and reported).
    pub fn parse(value: &str) -> Option<Action> {
        match value.trim() {
            "promote" => Some(Action::Promote),
            "abort" => Some(Action::Abort),
            "retry" => Some(Action::Retry),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_round_trip_through_their_annotation_value() {
        for action in [Action::Promote, Action::Abort, Action::Retry] {
            assert_eq!(Action::parse(action.as_str()), Some(action));
        }
        assert_eq!(Action::parse(" retry\n"), Some(Action::Retry));
        assert_eq!(Action::parse("rollback"), None);
    }
}
