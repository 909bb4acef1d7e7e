//! When a tick is due. A running release advances once per `analysis.interval`; events in
//! between (a Deployment's status changing, a watch relist) must not add analysis steps. Only
//! what the state machine has to react to at once skips the wait: a new revision, an operator
//! request, deletion. Settled phases tick on every event, so a new revision is seen at once.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use super::observed::Observed;
use super::steps;
use crate::crd::canary::CanarySpec;
use crate::crd::status::{CanaryPhase, CanaryStatus};

/// Phases whose ticks are paced by the interval (and so carry `status.lastTick`).
pub fn paced(phase: Option<CanaryPhase>) -> bool {
    matches!(
        phase,
        Some(
            CanaryPhase::Waiting
                | CanaryPhase::Progressing
                | CanaryPhase::WaitingPromotion
                | CanaryPhase::Promoting
                | CanaryPhase::Finalising
        )
    )
}

/// `None` when a tick should run now; otherwise how long until it is due.
pub fn wait_before_tick(
    spec: &CanarySpec,
    status: &CanaryStatus,
    observed: &Observed,
    now: Timestamp,
) -> Option<Duration> {
    if !paced(status.phase) || observed.deleting || observed.operations != Default::default() {
        return None;
    }
    if status.revision.as_deref() != Some(observed.revision.as_str()) {
        return None;
    }
    let last = status.last_tick.as_ref()?.0;
    let due = last.checked_add(steps::interval(spec)).ok()?;
    let wait = due.duration_since(now);
    if wait.is_positive() { Duration::try_from(wait).ok() } else { None }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;
    use crate::rollout::testkit::{observed, spec_from, spec_json};

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + seconds).expect("timestamp")
    }

    fn status(phase: CanaryPhase, revision: &str, last_tick: Option<i64>) -> CanaryStatus {
        CanaryStatus {
            phase: Some(phase),
            revision: Some(revision.into()),
            last_tick: last_tick.map(|s| Time(at(s))),
            ..CanaryStatus::default()
        }
    }

    #[test]
    fn ticks_are_paced_only_while_a_release_runs() {
        let spec = spec_from(spec_json());
        let interval = steps::interval(&spec).as_secs() as i64;
        let o = observed("r2");
        let cases = [
            ("running, just ticked", status(CanaryPhase::Progressing, "r2", Some(0)), at(1), true),
            ("running, interval over", status(CanaryPhase::Progressing, "r2", Some(0)), at(interval), false),
            ("running, never ticked", status(CanaryPhase::Progressing, "r2", None), at(1), false),
            ("new revision mid-run", status(CanaryPhase::Progressing, "r1", Some(0)), at(1), false),
            ("waiting for a gate", status(CanaryPhase::Waiting, "r2", Some(0)), at(1), true),
            ("promoting", status(CanaryPhase::Promoting, "r2", Some(0)), at(1), true),
            ("settled phases react at once", status(CanaryPhase::Succeeded, "r2", Some(0)), at(1), false),
            ("initializing reacts at once", status(CanaryPhase::Initializing, "r2", Some(0)), at(1), false),
        ];
        for (name, status, now, waits) in cases {
            assert_eq!(wait_before_tick(&spec, &status, &o, now).is_some(), waits, "{name}");
        }
        let mut requested = o.clone();
        requested.operations.abort = true;
        assert_eq!(
            wait_before_tick(&spec, &status(CanaryPhase::Progressing, "r2", Some(0)), &requested, at(1)),
            None
        );
        let mut deleting = o;
        deleting.deleting = true;
        assert_eq!(
            wait_before_tick(&spec, &status(CanaryPhase::Progressing, "r2", Some(0)), &deleting, at(1)),
            None
        );
    }
}
