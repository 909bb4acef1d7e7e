//! Annotations on a Canary that operators set with `serin promote|abort|retry|pause|resume`.
//! Annotations, not spec fields, so the GitOps agent that owns the spec does not fight them:
//! Flux and Argo CD only manage the fields they apply.

/// One-shot request, value `promote`, `abort`, `retry`, `pause` or `resume`; the controller
/// clears it once handled (a pause is then remembered in `status.paused`).
pub const ACTION: &str = "serin.dev/action";

/// One-shot operator requests carried by [`ACTION`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Promote now, skipping the remaining analysis and closed gates.
    Promote,
    /// Roll back now, as if the threshold had been reached.
    Abort,
    /// Run a failed or quarantined revision again.
    Retry,
    /// Freeze the release where it is; traffic stays as it is.
    Pause,
    /// Undo `pause`.
    Resume,
}

impl Action {
    /// The annotation value.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Promote => "promote",
            Action::Abort => "abort",
            Action::Retry => "retry",
            Action::Pause => "pause",
            Action::Resume => "resume",
        }
    }

    /// Parses an annotation value; unknown values are ignored by the controller (and reported).
    pub fn parse(value: &str) -> Option<Action> {
        match value.trim() {
            "promote" => Some(Action::Promote),
            "abort" => Some(Action::Abort),
            "retry" => Some(Action::Retry),
            "pause" => Some(Action::Pause),
            "resume" => Some(Action::Resume),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_round_trip_through_their_annotation_value() {
        for action in [Action::Promote, Action::Abort, Action::Retry, Action::Pause, Action::Resume] {
            assert_eq!(Action::parse(action.as_str()), Some(action));
        }
        assert_eq!(Action::parse(" retry\n"), Some(Action::Retry));
        assert_eq!(Action::parse("rollback"), None);
    }
}
