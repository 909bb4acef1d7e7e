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

/// Phases whose ticks are paced by the interval (a release is running); the controller stamps
/// `status.lastTick` only for ticks in these phases, so a settled Canary costs no status write.
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

/// How long after `now` the next tick of a paced `status` is due (`lastTick` + interval), zero
/// when it is already due; `None` when `status` is not paced or has no `lastTick`. A tick
/// requeues itself by this, so its next tick is due-time exact without being woken by the
/// watch event of its own status write.
pub fn next_tick_in(spec: &CanarySpec, status: &CanaryStatus, now: Timestamp) -> Option<Duration> {
    if !paced(status.phase) {
        return None;
    }
    let due = status.last_tick.as_ref()?.0.checked_add(steps::interval(spec)).ok()?;
    let wait = due.duration_since(now);
    Some(if wait.is_positive() { Duration::try_from(wait).unwrap_or_default() } else { Duration::ZERO })
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

    #[test]
    fn the_next_tick_is_due_an_interval_after_the_last() {
        let spec = spec_from(spec_json());
        let interval = steps::interval(&spec).as_secs() as i64;
        let secs = |s: i64| Some(Duration::from_secs(s as u64));
        let cases = [
            ("just ticked", status(CanaryPhase::Progressing, "r2", Some(0)), at(0), secs(interval)),
            ("part way", status(CanaryPhase::Progressing, "r2", Some(0)), at(interval - 1), secs(1)),
            ("due now", status(CanaryPhase::Progressing, "r2", Some(0)), at(interval), secs(0)),
            ("overdue", status(CanaryPhase::Finalising, "r2", Some(0)), at(interval + 5), secs(0)),
            ("no lastTick", status(CanaryPhase::Progressing, "r2", None), at(0), None),
            ("settled", status(CanaryPhase::Succeeded, "r2", Some(0)), at(0), None),
            ("failed", status(CanaryPhase::Failed, "r2", Some(0)), at(0), None),
        ];
        for (name, status, now, expected) in cases {
            assert_eq!(next_tick_in(&spec, &status, now), expected, "{name}");
        }
        let sub_second =
            Timestamp::from_second(1_700_000_000).expect("t").checked_add(jiff_millis(250)).expect("t");
        assert_eq!(
            next_tick_in(&spec, &status(CanaryPhase::Progressing, "r2", Some(0)), sub_second),
            Some(Duration::from_secs(interval as u64) - Duration::from_millis(250))
        );
    }

    /// The reconciler builds no snapshot when `next_tick_in` says the tick is due (or the
    /// status is not paced): that is only right if `wait_before_tick` then never waits,
    /// whatever is observed.
    #[test]
    fn no_wait_by_the_clock_means_no_wait_whatever_is_observed() {
        let spec = spec_from(spec_json());
        let interval = steps::interval(&spec).as_secs() as i64;
        let mut observations = vec![observed("r2"), observed("r1")];
        let mut requested = observed("r2");
        requested.operations.abort = true;
        let mut deleting = observed("r2");
        deleting.deleting = true;
        observations.extend([requested, deleting]);
        let phases = [
            CanaryPhase::Initializing,
            CanaryPhase::Initialized,
            CanaryPhase::Progressing,
            CanaryPhase::Waiting,
            CanaryPhase::WaitingPromotion,
            CanaryPhase::Promoting,
            CanaryPhase::Finalising,
            CanaryPhase::Succeeded,
            CanaryPhase::Failed,
            CanaryPhase::Terminating,
            CanaryPhase::Terminated,
        ];
        let mut checked = 0;
        for phase in phases {
            for last_tick in [None, Some(0), Some(-interval), Some(-10 * interval)] {
                for now in [at(0), at(1), at(interval - 1), at(interval), at(interval + 7)] {
                    let status = status(phase, "r2", last_tick);
                    if next_tick_in(&spec, &status, now).is_some_and(|wait| !wait.is_zero()) {
                        continue;
                    }
                    for o in &observations {
                        let wait = wait_before_tick(&spec, &status, o, now);
                        assert_eq!(wait, None, "{phase:?} lastTick {last_tick:?} now {now}");
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 50, "the table covers due ticks ({checked} checked)");
    }

    fn jiff_millis(ms: i64) -> k8s_openapi::jiff::SignedDuration {
        k8s_openapi::jiff::SignedDuration::from_millis(ms)
    }
}
