//! Progressing and WaitingPromotion: the checks of a tick and one strategy step (weighted
//! canary, A/B testing, blue/green), with the gates between steps.

use crate::crd::canary::{AlertSeverity, Strategy};
use crate::crd::status::{CanaryPhase, WaitReason};

use super::observed::Readiness;
use super::phases::{is_last_promoted, quarantined, reset_run, revision_changed};
use super::plan::{Effect, EventType, NotificationKind, Operation};
use super::promotion::promote;
use super::rollback::{self, Cause};
use super::steps;
use super::tick::{Gate, Tick};
use super::verdict::{Outcome, Stage};

/// Progressing and WaitingPromotion: checks, then one strategy step.
pub(super) fn progressing(tick: &mut Tick<'_>) {
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
    let mirror_done = steps::mirror(tick.spec, tick.observed.provider) && tick.mirrored();
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
    match steps::strategy(tick.spec, tick.observed.provider) {
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
    if steps::mirror(tick.spec, tick.observed.provider) && weight == 0 && !mirrored {
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
        if steps::mirror(tick.spec, tick.observed.provider) {
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
