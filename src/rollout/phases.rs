//! The state machine, one function per phase, following Flagger's `advanceCanary` order (see
//! `shared/FLAGGER.md` §1.5) with Serin's fixes: deadlines in every wait, no-data holds,
//! quarantine, back-to-stable, no iteration reset at the promotion gate (#1141).

use crate::crd::canary::{AlertSeverity, Strategy};
use crate::crd::status::{CanaryPhase, WaitReason};

use super::observed::{Readiness, Routes};
use super::plan::{Effect, EventType, NotificationKind, Operation};
use super::rollback::{self, Cause};
use super::steps;
use super::tick::{Gate, Tick};
use super::verdict::{Outcome, Stage};

/// Runs one tick. `spec.suspend` is handled by the caller (no effects, status untouched).
pub(crate) fn run(tick: &mut Tick<'_>) {
    if tick.observed.deleting {
        return deleting(tick);
    }
    if paused(tick) {
        return;
    }
    let setting_up = matches!(
        tick.phase(),
        None | Some(CanaryPhase::Initializing | CanaryPhase::Terminating | CanaryPhase::Terminated)
    );
    if !setting_up && !tick.observed.initialized {
        // Something deleted the primary, a Service or the routing object: recreate it (an
        // existing routing object keeps its routes) and carry on; readiness gates the rest.
        tick.emit(Effect::Initialize);
    }
    match tick.phase() {
        None
        | Some(CanaryPhase::Initializing)
        | Some(CanaryPhase::Terminating)
        | Some(CanaryPhase::Terminated) => initializing(tick),
        Some(
            CanaryPhase::Initialized | CanaryPhase::Succeeded | CanaryPhase::Failed | CanaryPhase::Waiting,
        ) => settled(tick),
        Some(CanaryPhase::Progressing | CanaryPhase::WaitingPromotion) => progressing(tick),
        Some(CanaryPhase::Promoting) => promoting(tick),
        Some(CanaryPhase::Finalising) => finalising(tick),
    }
}

/// `pause`/`resume` annotations. Returns true while paused (nothing else happens). Pause wins
/// when both are set. The time spent paused does not count against the progress deadline.
fn paused(tick: &mut Tick<'_>) -> bool {
    let ops = tick.observed.operations;
    let was_paused = tick.status.paused == Some(true);
    if ops.pause {
        if ops.resume {
            tick.emit(Effect::ClearOperation(Operation::Resume));
        }
        tick.emit(Effect::ClearOperation(Operation::Pause));
        if !was_paused {
            tick.status.paused = Some(true);
            let text = format!("Release of {} paused by `serin pause`", tick.target());
            tick.event(EventType::Normal, "Paused", text);
        }
        return true;
    }
    if ops.resume {
        tick.emit(Effect::ClearOperation(Operation::Resume));
        if was_paused {
            tick.status.paused = None;
            if let Some(wait) = tick.status.waiting.as_mut() {
                wait.since = tick.now.clone();
            }
            let text = format!("Release of {} resumed by `serin resume`", tick.target());
            tick.event(EventType::Normal, "Resumed", text);
        }
        return false;
    }
    was_paused
}

/// Deletion with `revertOnDeletion`: restore the original objects, then drop the finalizer.
fn deleting(tick: &mut Tick<'_>) {
    if tick.spec.revert_on_deletion != Some(true) {
        return;
    }
    if tick.phase() == Some(CanaryPhase::Terminated) {
        tick.emit(Effect::RemoveFinalizer);
        return;
    }
    if tick.phase() != Some(CanaryPhase::Terminating) {
        let text = format!("Canary deleted, restoring {}", tick.target());
        tick.event(EventType::Normal, "Terminating", text);
        tick.set_phase(CanaryPhase::Terminating);
    }
    tick.emit(Effect::RestoreOnDeletion);
    tick.set_phase(CanaryPhase::Terminated);
    tick.emit(Effect::RemoveFinalizer);
}

/// New Canary: create the primary, Services and routes, wait for the primary, scale the target
/// down. A primary that never becomes ready stalls the Canary (nothing to roll back).
fn initializing(tick: &mut Tick<'_>) {
    if tick.phase() != Some(CanaryPhase::Initializing) {
        tick.set_phase(CanaryPhase::Initializing);
        tick.restart_wait(WaitReason::PrimaryNotReady);
        let text = format!("New {} detected, starting initialization", tick.target());
        tick.event(EventType::Normal, "Initializing", text);
    }
    if !tick.observed.initialized {
        tick.emit(Effect::Initialize);
    }
    let primary = if tick.observed.initialized {
        tick.observed.primary.clone()
    } else {
        Readiness::NotReady("primary, Services or routes not created yet".to_string())
    };
    match primary {
        Readiness::Ready => {
            tick.emit(Effect::ScaleTargetToZero);
            let text = format!("Initialization done! {}", tick.target());
            tick.event(EventType::Normal, "Initialized", text.clone());
            tick.notify(AlertSeverity::Info, NotificationKind::Initialized, text);
            rollback::sync_revision(tick);
            tick.status.last_promoted_spec = Some(tick.observed.revision.clone());
            tick.status.canary_weight = Some(0);
            tick.status.iterations = Some(0);
            tick.status.failed_checks = Some(0);
            tick.status.no_data_checks = Some(0);
            tick.status.waiting = None;
            tick.set_phase(CanaryPhase::Initialized);
        }
        Readiness::NotReady(why) | Readiness::Failed(why) => {
            let wait = tick.wait(WaitReason::PrimaryNotReady);
            if wait.expired {
                let text = format!(
                    "Initialization of {} stalled: primary not ready within the progress deadline of {}s: {why}",
                    tick.target(),
                    steps::progress_deadline(tick.spec)
                );
                let already =
                    tick.status.conditions.iter().flatten().any(|c| {
                        c.type_ == crate::crd::status::condition_types::STALLED && c.status == "True"
                    });
                if !already {
                    tick.event(EventType::Warning, "InitializationStalled", text.clone());
                    tick.notify(AlertSeverity::Error, NotificationKind::Stalled, text.clone());
                }
                tick.detail("InitializationStalled", text, true);
            }
        }
    }
}

fn quarantined(tick: &Tick<'_>) -> bool {
    let revision = tick.revision();
    tick.status.failed_revisions.iter().flatten().any(|f| f.revision == revision)
}

/// Whether the target differs from the revision of the last sync.
fn revision_changed(tick: &Tick<'_>) -> bool {
    tick.status.last_applied_spec.as_deref() != Some(tick.revision())
        || tick.status.tracked_configs.clone().unwrap_or_default() != tick.observed.tracked_configs
}

/// The target moved back to the promoted revision. A change of tracked configs alone (same
/// revision as the last sync) is a new run, not a return to stable.
fn is_last_promoted(tick: &Tick<'_>) -> bool {
    tick.status.last_promoted_spec.as_deref() == Some(tick.revision())
        && tick.status.last_applied_spec.as_deref() != Some(tick.revision())
}

/// Initialized, Succeeded, Failed, Waiting: look for a new revision and start a run through
/// the confirm-rollout gate.
fn settled(tick: &mut Tick<'_>) {
    let ops = tick.observed.operations;
    let mut force = false;
    if ops.retry {
        tick.emit(Effect::ClearOperation(Operation::Retry));
        if tick.phase() == Some(CanaryPhase::Failed) || quarantined(tick) {
            let revision = tick.revision().to_string();
            if let Some(list) = tick.status.failed_revisions.as_mut() {
                list.retain(|f| f.revision != revision);
            }
            if tick.status.failed_revisions.as_ref().is_some_and(|l| l.is_empty()) {
                tick.status.failed_revisions = None;
            }
            let text = format!("Retrying revision {revision} of {} (`serin retry`)", tick.target());
            tick.event(EventType::Normal, "Retry", text);
            force = true;
        } else {
            tick.event(EventType::Normal, "NothingToRetry", "No failed revision to retry".to_string());
        }
    }
    let changed = revision_changed(tick);
    if !changed && !force && tick.phase() == Some(CanaryPhase::Waiting) {
        // The revision waiting for approval went away (e.g. reverted in Git): settle.
        return rollback::back_to_stable(tick, false);
    }
    if !changed && !force {
        if tick.phase() == Some(CanaryPhase::Failed) {
            rollback::resume_pending_revert(tick);
        }
        if ops.promote {
            tick.emit(Effect::ClearOperation(Operation::Promote));
            tick.event(EventType::Normal, "NothingToPromote", "No release in progress".to_string());
        }
        if ops.abort {
            tick.emit(Effect::ClearOperation(Operation::Abort));
            tick.event(EventType::Normal, "NothingToAbort", "No release in progress".to_string());
        }
        return;
    }
    if !force && is_last_promoted(tick) {
        let in_run = tick.phase() == Some(CanaryPhase::Waiting);
        return rollback::back_to_stable(tick, in_run);
    }
    if !force && quarantined(tick) {
        return rollback::refuse_quarantined(tick);
    }
    if ops.abort {
        tick.emit(Effect::ClearOperation(Operation::Abort));
        rollback::sync_revision(tick);
        return rollback::rollback(tick, Cause::Aborted);
    }
    // A new revision is pending behind the confirm-rollout gate.
    if tick.phase() == Some(CanaryPhase::Waiting) && tick.status.revision.as_deref() != Some(tick.revision())
    {
        tick.restart_wait(WaitReason::ConfirmRollout);
        tick.status.revision = Some(tick.observed.revision.clone());
    }
    let open = ops.promote || tick.gate(Gate::Rollout);
    if !open {
        if tick.phase() != Some(CanaryPhase::Waiting) {
            tick.set_phase(CanaryPhase::Waiting);
            tick.status.revision = Some(tick.observed.revision.clone());
            tick.restart_wait(WaitReason::ConfirmRollout);
            let text = format!("Halt {} advancement waiting for approval (confirm-rollout)", tick.target());
            tick.event(EventType::Normal, "WaitingForApproval", text.clone());
            tick.notify(AlertSeverity::Warn, NotificationKind::WaitingApproval, text);
        } else if tick.wait(WaitReason::ConfirmRollout).expired {
            rollback::sync_revision(tick);
            rollback::rollback(tick, Cause::GateDeadline(WaitReason::ConfirmRollout));
        }
        return;
    }
    start_run(tick);
}

/// Scale the target up and reset the counters: a new run begins.
fn start_run(tick: &mut Tick<'_>) {
    if tick.observed.routes.is_some_and(|r| r != Routes::STABLE) {
        tick.route(100, 0, false);
    }
    tick.emit(Effect::ScaleTargetUp);
    let text = format!("New revision detected! Scaling up {}", tick.target());
    tick.event(EventType::Normal, "NewRevision", text.clone());
    tick.notify(AlertSeverity::Info, NotificationKind::NewRevision, text);
    reset_run(tick);
}

fn reset_run(tick: &mut Tick<'_>) {
    rollback::sync_revision(tick);
    tick.status.canary_weight = Some(0);
    tick.status.iterations = Some(0);
    tick.status.failed_checks = Some(0);
    tick.status.no_data_checks = Some(0);
    tick.status.analysis = None;
    tick.status.mirrored = None;
    tick.set_phase(CanaryPhase::Progressing);
    tick.restart_wait(WaitReason::CanaryNotReady);
}

/// Progressing and WaitingPromotion: checks, then one strategy step.
fn progressing(tick: &mut Tick<'_>) {
    let ops = tick.observed.operations;
    if ops.abort {
        tick.emit(Effect::ClearOperation(Operation::Abort));
        return rollback::rollback(tick, Cause::Aborted);
    }
    if revision_changed(tick) {
        return restart_run(tick);
    }
    let threshold = steps::threshold(tick.spec);
    if tick.status.failed_checks.unwrap_or(0) >= threshold {
        return rollback::rollback(tick, Cause::FailedChecks);
    }
    if tick.rollback_requested() {
        return rollback::rollback(tick, Cause::RollbackHook);
    }
    match tick.observed.primary.clone() {
        Readiness::Ready => {}
        Readiness::Failed(why) => return rollback::rollback(tick, Cause::PrimaryFailed(why)),
        Readiness::NotReady(why) => {
            if tick.wait(WaitReason::PrimaryNotReady).expired {
                rollback::rollback(tick, Cause::PrimaryDeadline(why));
            }
            return;
        }
    }
    match tick.observed.canary.clone() {
        Readiness::Ready => {}
        Readiness::Failed(why) => return rollback::rollback(tick, Cause::CanaryFailed(why)),
        Readiness::NotReady(why) => {
            if tick.wait(WaitReason::CanaryNotReady).expired {
                rollback::rollback(tick, Cause::CanaryDeadline(why));
            }
            return;
        }
    }
    if tick.spec.skip_analysis == Some(true) {
        return promote(tick, "skipping analysis (skipAnalysis)");
    }
    let weight = tick.status.canary_weight.unwrap_or(0);
    let iterations = tick.status.iterations.unwrap_or(0);
    let mirror_done = tick.spec.analysis.mirror == Some(true) && tick.mirrored();
    let stage =
        if weight == 0 && iterations == 0 && !mirror_done { Stage::PreRollout } else { Stage::Analysis };
    let judged = tick.judge(stage);
    match judged.outcome {
        Outcome::Fail(failures) => {
            let count = tick.status.failed_checks.unwrap_or(0) + 1;
            tick.status.failed_checks = Some(count);
            for failure in &failures {
                tick.event(EventType::Warning, "CheckFailed", format!("Halt advancement: {failure}"));
            }
            if count >= threshold {
                rollback::rollback(tick, Cause::FailedChecks);
            }
            return;
        }
        Outcome::Hold(holds) => {
            tick.status.no_data_checks = Some(tick.status.no_data_checks.unwrap_or(0) + 1);
            for hold in &holds {
                tick.event(EventType::Warning, "NoData", format!("Halt advancement: {hold}"));
            }
            if tick.wait(WaitReason::NoData).expired {
                rollback::rollback(tick, Cause::NoDataDeadline);
            }
            return;
        }
        Outcome::Pass(warnings) => {
            for warning in &warnings {
                tick.event(EventType::Warning, "NoDataPassed", format!("Passing with a warning: {warning}"));
            }
        }
    }
    // `serin promote` needs a tick whose metrics ran: at weight 0 (pre-rollout) the canary has
    // had no traffic yet, so the request waits for the next analysis tick.
    if ops.promote && stage == Stage::Analysis {
        tick.emit(Effect::ClearOperation(Operation::Promote));
        return promote(tick, "promoted by `serin promote`");
    }
    match tick.spec.strategy() {
        Strategy::Canary => canary_step(tick),
        Strategy::ABTesting => ab_step(tick),
        Strategy::BlueGreen => blue_green_step(tick),
    }
}

/// The revision changed mid-run: traffic back to the primary, counters reset, analysis restarts
/// (or, for the promoted or a quarantined revision, the run ends).
fn restart_run(tick: &mut Tick<'_>) {
    if is_last_promoted(tick) {
        return rollback::back_to_stable(tick, true);
    }
    if quarantined(tick) {
        return rollback::refuse_quarantined(tick);
    }
    tick.route(100, 0, false);
    let text = format!("New revision detected during the analysis of {}, restarting analysis", tick.target());
    tick.event(EventType::Normal, "NewRevision", text.clone());
    tick.notify(AlertSeverity::Info, NotificationKind::NewRevision, text);
    reset_run(tick);
}

/// A closed gate halts the step; past the progress deadline the run fails.
fn halt_on_gate(tick: &mut Tick<'_>, gate: Gate) {
    let wait = tick.wait(gate.wait_reason());
    if wait.expired {
        return rollback::rollback(tick, Cause::GateDeadline(gate.wait_reason()));
    }
    if wait.changed {
        let text = format!(
            "Halt {} advancement waiting for approval ({})",
            tick.target(),
            gate.wait_reason().as_str()
        );
        tick.event(EventType::Normal, "WaitingForApproval", text.clone());
        tick.notify(AlertSeverity::Warn, NotificationKind::WaitingApproval, text);
    }
}

/// Weighted canary: mirror once (if asked), then step the weight; at the maximum, promote.
fn canary_step(tick: &mut Tick<'_>) {
    let weight = tick.status.canary_weight.unwrap_or(0);
    let mirrored = tick.mirrored();
    let Some(next) = steps::next_weight(tick.spec, weight) else {
        return confirm_promotion(tick);
    };
    if !mirrored && !tick.gate(Gate::TrafficIncrease) {
        return halt_on_gate(tick, Gate::TrafficIncrease);
    }
    if tick.spec.analysis.mirror == Some(true) && weight == 0 && !mirrored {
        tick.route(100, 0, true);
        tick.event(
            EventType::Normal,
            "Mirroring",
            format!("Starting traffic mirroring to {}", tick.target()),
        );
        tick.progress();
        return;
    }
    tick.route(100 - next, next, false);
    tick.status.canary_weight = Some(next);
    tick.event(EventType::Normal, "Advance", format!("Advance {} canary weight {next}", tick.target()));
    tick.progress();
}

/// A/B testing: matched requests go to the canary for `iterations` ticks, then promote.
fn ab_step(tick: &mut Tick<'_>) {
    let done = tick.status.iterations.unwrap_or(0);
    let total = steps::iterations(tick.spec);
    if done < total {
        tick.route(0, 100, false);
        tick.status.iterations = Some(done + 1);
        let text = format!("Advance {} canary iteration {}/{total}", tick.target(), done + 1);
        tick.event(EventType::Normal, "Advance", text);
        tick.progress();
        return;
    }
    confirm_promotion(tick);
}

/// Blue/green: `iterations` ticks with no (or mirrored) traffic, then all traffic to the
/// canary for one more checked tick, then promote.
fn blue_green_step(tick: &mut Tick<'_>) {
    let done = tick.status.iterations.unwrap_or(0);
    let total = steps::iterations(tick.spec);
    if done < total {
        if tick.spec.analysis.mirror == Some(true) {
            tick.route(100, 0, true);
        }
        tick.status.iterations = Some(done + 1);
        let text = format!("Advance {} canary iteration {}/{total}", tick.target(), done + 1);
        tick.event(EventType::Normal, "Advance", text);
        tick.progress();
        return;
    }
    if !tick.gate(Gate::Promotion) {
        tick.set_phase(CanaryPhase::WaitingPromotion);
        return halt_on_gate(tick, Gate::Promotion);
    }
    if done == total {
        tick.route(0, 100, false);
        tick.status.canary_weight = Some(100);
        tick.status.iterations = Some(done + 1);
        tick.event(EventType::Normal, "Advance", format!("Routing all traffic to canary {}", tick.target()));
        tick.set_phase(CanaryPhase::Progressing);
        tick.progress();
        return;
    }
    promote(tick, "Canary analysis completed");
}

/// At the end of the steps: the confirm-promotion gate. Closed: WaitingPromotion, the analysis
/// keeps running and the counters stay where they are (Flagger #1141 reset iterations to N-1).
fn confirm_promotion(tick: &mut Tick<'_>) {
    if !tick.gate(Gate::Promotion) {
        tick.set_phase(CanaryPhase::WaitingPromotion);
        return halt_on_gate(tick, Gate::Promotion);
    }
    promote(tick, "Canary analysis completed")
}

/// Copy the target to the primary and enter Promoting.
fn promote(tick: &mut Tick<'_>, why: &str) {
    let text = format!("{why}: copying {0} template spec to {0}-primary", tick.target());
    tick.event(EventType::Normal, "Promoting", text);
    let revision = tick.status.last_applied_spec.clone().unwrap_or_else(|| tick.revision().to_string());
    tick.emit(Effect::PromotePrimary { revision });
    tick.set_phase(CanaryPhase::Promoting);
    tick.progress();
}

/// Checks the primary while it rolls out the promoted spec. Returns true when it is ready.
fn primary_ready_for_promotion(tick: &mut Tick<'_>) -> bool {
    match tick.observed.primary.clone() {
        Readiness::Ready => true,
        Readiness::Failed(why) => {
            rollback::primary_failed_during_promotion(tick, why);
            false
        }
        Readiness::NotReady(why) => {
            if tick.wait(WaitReason::PrimaryNotReady).expired {
                rollback::primary_failed_during_promotion(tick, why);
            }
            false
        }
    }
}

/// Promoting: once the primary runs the new spec, move traffic back to it (at once, or by
/// `stepWeightPromotion`), then Finalising.
fn promoting(tick: &mut Tick<'_>) {
    if !primary_ready_for_promotion(tick) {
        return;
    }
    let weight = tick.status.canary_weight.unwrap_or(0);
    let next = steps::next_promotion_weight(tick.spec, weight);
    tick.route(100 - next, next, false);
    tick.status.canary_weight = Some(next);
    tick.progress();
    if next == 0 {
        let text = format!("Routing all traffic to primary {}-primary", tick.target());
        tick.event(EventType::Normal, "Finalising", text);
        tick.set_phase(CanaryPhase::Finalising);
    } else {
        let text = format!("Advance {} primary weight {}", tick.target(), 100 - next);
        tick.event(EventType::Normal, "Advance", text);
    }
}

/// Finalising: scale the target down, run post-rollout hooks, Succeeded.
fn finalising(tick: &mut Tick<'_>) {
    if !primary_ready_for_promotion(tick) {
        return;
    }
    tick.emit(Effect::ScaleTargetToZero);
    tick.emit(Effect::RunPostRolloutHooks { phase: CanaryPhase::Succeeded });
    let text = format!("Promotion completed! Scaling down {}", tick.target());
    tick.event(EventType::Normal, "Succeeded", text.clone());
    tick.notify(AlertSeverity::Info, NotificationKind::Promoted, text);
    tick.status.last_promoted_spec = tick.status.last_applied_spec.clone();
    tick.status.canary_weight = Some(0);
    tick.status.waiting = None;
    tick.set_phase(CanaryPhase::Succeeded);
}
