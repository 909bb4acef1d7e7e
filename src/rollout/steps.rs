//! Weight schedules: how far the canary may go and what the next step is. Pure arithmetic on
//! the spec, kept apart so the weight invariants are easy to test.

use std::time::Duration;

use crate::crd::canary::{CanarySpec, Provider, Strategy};
use crate::crd::duration::parse_duration;

/// Flagger's floor for the analysis interval.
const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Default analysis interval.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

/// Time between analysis ticks: `analysis.interval`, default 60s, never below 1s (Flagger raises
/// anything under 10s to 10s; Serin honours short intervals, which demos and tests rely on). An
/// invalid string, which validation rejects, falls back to the default.
pub fn interval(spec: &CanarySpec) -> Duration {
    spec.analysis
        .interval
        .as_deref()
        .and_then(|text| parse_duration(text).ok())
        .unwrap_or(DEFAULT_INTERVAL)
        .max(MIN_INTERVAL)
}

/// Failed checks tolerated before rollback (default 1, at least 1).
pub fn threshold(spec: &CanarySpec) -> i32 {
    spec.analysis.threshold.unwrap_or(1).max(1)
}

/// Iterations of a blue/green or A/B run (at least 1; 10 when the `kubernetes` router forces
/// blue/green on a spec without `iterations`, as Flagger does).
pub fn iterations(spec: &CanarySpec) -> i32 {
    spec.analysis.iterations.unwrap_or(10).max(1)
}

/// The strategy in effect: the spec's, except that the `kubernetes` router, which can only
/// switch the apex Service between primary and canary, forces blue/green (Flagger does the
/// same and drops `match`).
pub fn strategy(spec: &CanarySpec, provider: Provider) -> Strategy {
    if provider == Provider::Kubernetes { Strategy::BlueGreen } else { spec.strategy() }
}

/// Whether this run mirrors traffic: `analysis.mirror` on a router that can mirror.
pub fn mirror(spec: &CanarySpec, provider: Provider) -> bool {
    spec.analysis.mirror == Some(true) && provider.supports_mirroring()
}

fn step_weight(spec: &CanarySpec) -> Option<i32> {
    spec.analysis.step_weight.filter(|w| *w > 0)
}

fn step_weights(spec: &CanarySpec) -> Option<&[i32]> {
    spec.analysis.step_weights.as_deref().filter(|w| !w.is_empty())
}

/// The highest canary weight before promotion: the last `stepWeights` entry when the schedule
/// is explicit (Flagger ignores `stepWeights` when `stepWeight` is set), else `maxWeight`
/// (default 100). Always within 1..=100.
pub fn max_weight(spec: &CanarySpec) -> i32 {
    let max = match (step_weight(spec), step_weights(spec)) {
        (None, Some(weights)) => weights.iter().copied().max().unwrap_or(100),
        _ => spec.analysis.max_weight.unwrap_or(100),
    };
    max.clamp(1, 100)
}

/// The canary weight after `current`, or `None` when `current` has reached [`max_weight`].
/// Never exceeds [`max_weight`] and always increases.
pub fn next_weight(spec: &CanarySpec, current: i32) -> Option<i32> {
    let max = max_weight(spec);
    if current >= max {
        return None;
    }
    let next = match (step_weight(spec), step_weights(spec)) {
        (Some(step), _) => current.saturating_add(step),
        (None, Some(weights)) => weights.iter().copied().filter(|w| *w > current).min().unwrap_or(max),
        // No schedule (validation requires one): go to the maximum in one step.
        (None, None) => max,
    };
    Some(next.min(max))
}

/// The canary weight after one promotion step from `current`: with `stepWeightPromotion`,
/// `current - step` (floored at 0); otherwise 0 at once.
pub fn next_promotion_weight(spec: &CanarySpec, current: i32) -> i32 {
    match spec.analysis.step_weight_promotion.filter(|s| *s > 0) {
        Some(step) => current.saturating_sub(step).max(0),
        None => 0,
    }
}

/// Seconds a release may go without progress.
pub fn progress_deadline(spec: &CanarySpec) -> i64 {
    i64::from(spec.progress_deadline_seconds().max(0))
}
