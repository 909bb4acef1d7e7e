//! The state machine's entry and the settled phases (initialisation, new revisions, gates before
//! a run, operations, deletion); the running phases live in `progressing` and `promotion`. One
//! function per phase, following Flagger's `advanceCanary` order (see
//! `shared/FLAGGER.md` §1.5) with Serin's fixes: deadlines in every wait, no-data holds,
//! quarantine, back-to-stable, no iteration reset at the promotion gate (#1141).

use crate::crd::canary::AlertSeverity;
use crate::crd::status::{CanaryPhase, WaitReason};

use super::observed::{Readiness, Routes};
use super::plan::{Effect, EventType, NotificationKind, Operation};
use super::rollback::{self, Cause};
use super::tick::{Gate, Tick};
use super::{progressing, promotion, steps};

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
        Some(CanaryPhase::Progressing | CanaryPhase::WaitingPromotion) => progressing::progressing(tick),
        Some(CanaryPhase::Promoting) => promotion::promoting(tick),
        Some(CanaryPhase::Finalising) => promotion::finalising(tick),
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

pub(super) fn quarantined(tick: &Tick<'_>) -> bool {
    let revision = tick.revision();
    tick.status.failed_revisions.iter().flatten().any(|f| f.revision == revision)
}

/// Whether the target differs from the revision of the last sync.
pub(super) fn revision_changed(tick: &Tick<'_>) -> bool {
    tick.status.last_applied_spec.as_deref() != Some(tick.revision())
        || tick.status.tracked_configs.clone().unwrap_or_default() != tick.observed.tracked_configs
}

/// The target moved back to the promoted revision. A change of tracked configs alone (same
/// revision as the last sync) is a new run, not a return to stable.
pub(super) fn is_last_promoted(tick: &Tick<'_>) -> bool {
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
    let provider = tick.observed.provider;
    if steps::strategy(tick.spec, provider) != tick.spec.strategy() {
        let text = format!("Provider {provider} supports blue/green only; running a blue/green analysis");
        tick.event(EventType::Warning, "BlueGreenForced", text);
    }
    let text = format!("New revision detected! Scaling up {}", tick.target());
    tick.event(EventType::Normal, "NewRevision", text.clone());
    tick.notify(AlertSeverity::Info, NotificationKind::NewRevision, text);
    reset_run(tick);
}

pub(super) fn reset_run(tick: &mut Tick<'_>) {
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
