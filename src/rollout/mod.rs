//! The pure decision core of a release: given the Canary's spec and status, what the controller
//! observed in the cluster, and this tick's analysis answers, it returns the next status and the
//! ordered effects to apply. No Kubernetes client, no async, no clock, no I/O: time is an input,
//! so every transition is a unit test.
//!
//! A tick is two pure calls around the controller's I/O:
//!
//! ```text
//! let needs  = rollout::needs(&spec, &status, &observed);        // which checks and gates to run
//! let report = analysis::run(.., needs).await;                    // I/O: queries, webhooks
//! let plan   = rollout::decide(&spec, &status, &observed, &report, now);
//! apply(plan.effects); patch_status(plan.status); requeue(plan.requeue_after);
//! ```
//!
//! `needs` runs the same state machine as `decide` with every gate open and every check
//! passing, and reports which inputs it consulted; any other answer stops the tick earlier, so
//! `decide` never consults an input `needs` did not ask for.
//!
//! Choices where Flagger is silent or buggy (see `shared/FLAGGER.md`):
//! - **Progress deadline everywhere.** `status.waiting` records since when the release has made
//!   no progress and why (canary or primary not ready, a closed gate, no data). When
//!   `progressDeadlineSeconds` passes, the run fails with a reason naming the wait. This covers
//!   `confirm-rollout` (Flagger waits forever, #738) and `confirm-promotion`: raise the deadline
//!   for long manual approvals. Workload and no-data waits share one clock since the last
//!   progress (alternating between them cannot stall a release forever); a gate found closed
//!   gets the full deadline from that moment. Failed checks do not start or stop a wait; they
//!   have their own budget (`threshold`).
//! - **No data.** Per metric `onNoData`: `fail` counts a failed check; `pass-with-warning`
//!   passes with a Warning Event; `hold` (default) does not advance, increments
//!   `status.noDataChecks` and waits: its budget is the progress deadline, after which the run
//!   is rolled back (`NoDataDeadlineExceeded`). Never a silent pass. A check the spec configures
//!   but the report lacks is an `Error`, i.e. a failed check.
//! - **Rollback** happens in the tick where `failedChecks` reaches `threshold` (Flagger waits one
//!   more tick), so time to rollback is `interval * threshold` as Flagger documents.
//! - **Blame.** Failed checks, a rollback webhook, a canary that cannot become ready, no data,
//!   and `serin abort` blame the revision: it is quarantined in `status.failedRevisions` and,
//!   with `gitops.revert`, reverted in Git. A broken primary or an approval deadline does not
//!   blame it: the run fails without quarantine or revert.
//! - **Quarantine.** A quarantined revision coming back fails at once (traffic stays on the
//!   primary, target scaled to zero, alert) until `serin retry`. It is not reverted in Git
//!   again (`status.gitops` already records the revert of that revision).
//! - **Back to stable.** A revision equal to `lastPromotedSpec` (a Git revert landing) settles
//!   as `Initialized` with `Ready=True`, reason `BackToStable`, without analysis; mid-run it
//!   ends the run (traffic to primary, target to zero).
//! - **Promotion gate.** A closed `confirm-promotion` keeps the analysis running in
//!   `WaitingPromotion` without resetting iterations (Flagger #1141).
//! - **Primary failing during promotion** (Promoting/Finalising): all traffic to the canary,
//!   which runs the same analysed revision, and `Failed` (Flagger 1.44, #1931).
//! - **Revision changes during Promoting/Finalising** are picked up after `Succeeded`.
//! - **Exactly once.** A finished rollback or promotion leaves a settled phase whose revision is
//!   synced, so deciding again emits nothing. The Git revert is recorded in `status.gitops`;
//!   while it stays `Pending` for the failed revision it is re-emitted, and the adapter is
//!   idempotent per revision.
//! - **Operations**: `promote` promotes after the current tick's checks pass (never over a
//!   failing check); `abort` rolls back now; `retry` re-runs a failed or quarantined revision;
//!   `pause`/`resume` freeze and thaw (paused time does not count against the deadline).
//! - Readiness thresholds (`canaryReadyThreshold`, `primaryReadyThreshold`) are applied by the
//!   caller when it builds [`Readiness`]. The `kubernetes` router forces blue/green (10
//!   iterations when the spec has none), and `analysis.mirror` is ignored on routers that cannot
//!   mirror, both from [`Observed::provider`].

pub mod admission;
mod conditions;
mod observed;
mod phases;
mod plan;
mod progressing;
mod promotion;
mod report;
mod rollback;
mod schedule;
mod steps;
mod tick;
mod verdict;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod testkit;
#[cfg(test)]
mod tests;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
/// The clock type of [`decide`]: `jiff::Timestamp`, which k8s-openapi's `Time` wraps.
pub use k8s_openapi::jiff::Timestamp;

use crate::crd::canary::CanarySpec;
use crate::crd::status::CanaryStatus;

pub use conditions::phase_message;
pub use observed::{Observed, Operations, Readiness, Routes};
pub use plan::{Effect, EventType, NotificationKind, Operation, Plan};
pub use report::{AnalysisReport, CheckKind, CheckResult, Gates, Needs};
pub use schedule::{next_tick_in, paced, wait_before_tick};
pub use steps::{
    interval, iterations, max_weight, mirror, next_promotion_weight, next_weight, strategy, threshold,
};

use tick::Tick;

/// Which checks and gates the controller must evaluate this tick before calling [`decide`].
pub fn needs(spec: &CanarySpec, status: &CanaryStatus, observed: &Observed) -> Needs {
    if spec.suspend == Some(true) {
        return Needs::default();
    }
    let mut tick = Tick::new(spec, status, observed, None, Time(Timestamp::UNIX_EPOCH));
    phases::run(&mut tick);
    tick.needs
}

/// The next status and the ordered effects for one tick. `now` is truncated to whole seconds,
/// the precision Kubernetes stores timestamps with, so deciding again from a stored status gives
/// the same plan.
pub fn decide(
    spec: &CanarySpec,
    status: &CanaryStatus,
    observed: &Observed,
    report: &AnalysisReport,
    now: Timestamp,
) -> Plan {
    let requeue_after = steps::interval(spec);
    if spec.suspend == Some(true) {
        return Plan { status: status.clone(), effects: Vec::new(), requeue_after };
    }
    let now = Timestamp::from_second(now.as_second()).unwrap_or(now);
    let mut tick = Tick::new(spec, status, observed, Some(report), Time(now));
    phases::run(&mut tick);
    tick.finish(requeue_after)
}

/// The inputs `decide` consulted, for checking that `needs` asks for all of them.
#[cfg(test)]
pub(crate) fn consulted(
    spec: &CanarySpec,
    status: &CanaryStatus,
    observed: &Observed,
    report: &AnalysisReport,
    now: Timestamp,
) -> Needs {
    if spec.suspend == Some(true) {
        return Needs::default();
    }
    let mut tick = Tick::new(spec, status, observed, Some(report), Time(now));
    phases::run(&mut tick);
    tick.needs
}
