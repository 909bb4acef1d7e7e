//! The global limit on canaries progressing at once (`--max-concurrent-canaries`): whether a
//! canary whose next status starts a release may start it now. A canary already in a release
//! always continues; one that would start waits, in its current phase, while `limit` others are
//! progressing, and starts once one of them finishes. Pure: the controller supplies the set of
//! canaries in flight (its cache plus the ones it admitted and whose status it has not seen yet).

use std::collections::BTreeSet;

use crate::crd::CanaryPhase;

/// Whether a phase counts against the limit: a release is running (analysis, gates, promotion).
/// Initialising (creating the primary) and deletion do not count.
pub fn counts_against_limit(phase: CanaryPhase) -> bool {
    matches!(
        phase,
        CanaryPhase::Waiting
            | CanaryPhase::Progressing
            | CanaryPhase::WaitingPromotion
            | CanaryPhase::Promoting
            | CanaryPhase::Finalising
    )
}

/// The answer for one canary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead with the decided status.
    Go,
    /// Keep the current phase: `running` canaries are progressing, the limit is `limit`.
    Queued {
        /// How many other canaries are progressing.
        running: usize,
        /// The limit.
        limit: usize,
    },
}

impl Admission {
    /// The message users see in the canary's condition and Event.
    pub fn message(&self) -> Option<String> {
        match self {
            Admission::Go => None,
            Admission::Queued { running, limit } => Some(format!(
                "waiting to start: {running} canaries are progressing and --max-concurrent-canaries is {limit}; \
                 starts when one finishes"
            )),
        }
    }
}

/// Decides whether canary `key` may move from `current` to `next`, given the other canaries in
/// flight (`in_flight`, which may contain `key` itself) and the limit (`None`: no limit).
pub fn admit(
    key: &str,
    current: Option<CanaryPhase>,
    next: Option<CanaryPhase>,
    in_flight: &BTreeSet<String>,
    limit: Option<usize>,
) -> Admission {
    let starting = !current.is_some_and(counts_against_limit) && next.is_some_and(counts_against_limit);
    let Some(limit) = limit else { return Admission::Go };
    if !starting || in_flight.contains(key) {
        return Admission::Go;
    }
    let running = in_flight.len();
    if running < limit { Admission::Go } else { Admission::Queued { running, limit } }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(keys: &[&str]) -> BTreeSet<String> {
        keys.iter().map(|k| k.to_string()).collect()
    }

    const SUCCEEDED: Option<CanaryPhase> = Some(CanaryPhase::Succeeded);
    const PROGRESSING: Option<CanaryPhase> = Some(CanaryPhase::Progressing);

    #[test]
    fn a_new_release_waits_while_the_limit_is_reached() {
        let busy = set(&["a/one", "a/two"]);
        assert_eq!(
            admit("a/three", SUCCEEDED, PROGRESSING, &busy, Some(2)),
            Admission::Queued { running: 2, limit: 2 }
        );
        assert_eq!(admit("a/three", SUCCEEDED, PROGRESSING, &busy, Some(3)), Admission::Go);
        assert_eq!(admit("a/three", SUCCEEDED, PROGRESSING, &busy, None), Admission::Go, "no limit");
    }

    #[test]
    fn it_starts_once_another_finishes() {
        let busy = set(&["a/one"]);
        assert_eq!(
            admit("a/three", Some(CanaryPhase::Initialized), PROGRESSING, &busy, Some(2)),
            Admission::Go
        );
    }

    #[test]
    fn a_running_release_always_continues() {
        let busy = set(&["a/one", "a/two", "a/three"]);
        assert_eq!(admit("a/three", PROGRESSING, PROGRESSING, &busy, Some(1)), Admission::Go);
        assert_eq!(
            admit("a/three", PROGRESSING, Some(CanaryPhase::Promoting), &busy, Some(1)),
            Admission::Go
        );
        // Admitted a moment ago, status not in the cache yet: it holds its slot already.
        assert_eq!(admit("a/three", SUCCEEDED, PROGRESSING, &busy, Some(1)), Admission::Go);
    }

    #[test]
    fn what_does_not_start_a_release_is_never_held() {
        let busy = set(&["a/one"]);
        for (current, next) in [
            (None, Some(CanaryPhase::Initializing)),
            (Some(CanaryPhase::Initializing), Some(CanaryPhase::Initialized)),
            (PROGRESSING, Some(CanaryPhase::Failed)),
            (SUCCEEDED, Some(CanaryPhase::Terminating)),
            (SUCCEEDED, SUCCEEDED),
        ] {
            assert_eq!(
                admit("a/two", current, next, &busy, Some(1)),
                Admission::Go,
                "{current:?} -> {next:?}"
            );
        }
    }

    #[test]
    fn a_gate_wait_counts_and_is_held_too() {
        assert!(counts_against_limit(CanaryPhase::Waiting));
        assert!(!counts_against_limit(CanaryPhase::Initializing));
        assert!(!counts_against_limit(CanaryPhase::Terminating));
        let busy = set(&["a/one"]);
        assert!(matches!(
            admit("a/two", SUCCEEDED, Some(CanaryPhase::Waiting), &busy, Some(1)),
            Admission::Queued { .. }
        ));
        assert!(
            Admission::Queued { running: 1, limit: 1 }.message().is_some_and(|m| m.contains("1 canaries"))
        );
    }
}
