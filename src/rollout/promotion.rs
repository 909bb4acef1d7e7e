//! Promotion: copy the analysed revision to the primary, move traffic back to it, scale the
//! target down, Succeeded; or, when the primary cannot take the new spec, fail over to the
//! canary.

use crate::crd::canary::AlertSeverity;
use crate::crd::status::{CanaryPhase, WaitReason};

use super::observed::Readiness;
use super::plan::{Effect, EventType, NotificationKind};
use super::rollback;
use super::steps;
use super::tick::Tick;

/// Copy the target to the primary and enter Promoting.
pub(super) fn promote(tick: &mut Tick<'_>, why: &str) {
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
pub(super) fn promoting(tick: &mut Tick<'_>) {
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
pub(super) fn finalising(tick: &mut Tick<'_>) {
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
