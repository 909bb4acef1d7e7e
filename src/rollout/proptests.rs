//! Property tests: random specs driven through random runs (readiness, verdicts, gates,
//! operations, revision changes, time), checking the invariants after every tick.

use proptest::prelude::*;
use serde_json::{Value, json};

use crate::crd::canary::{CanarySpec, Provider, Strategy as ReleaseStrategy};
use crate::crd::status::{CanaryPhase, CanaryStatus, GitRevertState, Verdict};

use super::observed::{Observed, Operations, Readiness, Routes};
use super::plan::{Effect, Operation, Plan};
use super::report::{AnalysisReport, CheckKind, CheckResult, Gates, Needs};
use super::testkit::*;
use super::{consulted, decide, max_weight, needs, steps, strategy};

#[derive(Clone, Debug)]
struct SpecParams {
    kind: u8,
    step: i32,
    max: i32,
    weights: Vec<i32>,
    iterations: i32,
    threshold: i32,
    mirror: bool,
    promotion_step: Option<i32>,
    hooks: [bool; 6],
    revert: bool,
    on_no_data: u8,
    skip: bool,
    provider: Provider,
}

const HOOK_TYPES: [&str; 6] = [
    "confirm-rollout",
    "pre-rollout",
    "rollout",
    "confirm-traffic-increase",
    "confirm-promotion",
    "rollback",
];

fn spec_params() -> impl Strategy<Value = SpecParams> {
    (
        (0u8..4, 1i32..=50, 1i32..=100, prop::collection::btree_set(1i32..=100, 1..5), 1i32..=4),
        (1i32..=4, any::<bool>(), prop::option::of(1i32..=50), any::<[bool; 6]>(), any::<bool>(), 0u8..3),
        prop::bool::weighted(0.1),
        prop_oneof![3 => Just(Provider::Istio), 1 => Just(Provider::Kubernetes), 1 => Just(Provider::Nginx)],
    )
        .prop_map(
            |(
                (kind, step, max, weights, iterations),
                (threshold, mirror, promotion_step, hooks, revert, on_no_data),
                skip,
                provider,
            )| SpecParams {
                kind,
                step,
                max: max.max(step),
                weights: weights.into_iter().collect(),
                iterations,
                threshold,
                mirror,
                promotion_step,
                hooks,
                revert,
                on_no_data,
                skip,
                provider,
            },
        )
}

fn build_spec(p: &SpecParams) -> CanarySpec {
    let mut value = spec_json();
    let on_no_data = ["hold", "fail", "pass-with-warning"][usize::from(p.on_no_data)];
    let mut analysis = json!({
        "interval": "1m",
        "threshold": p.threshold,
        "metrics": [{"name": METRIC, "thresholdRange": {"min": 99}, "onNoData": on_no_data}],
    });
    match p.kind {
        0 => {
            analysis["stepWeight"] = json!(p.step);
            analysis["maxWeight"] = json!(p.max);
        }
        1 => analysis["stepWeights"] = json!(p.weights),
        2 => {
            analysis["iterations"] = json!(p.iterations);
            analysis["match"] = json!([{"headers": {"x-canary": {"exact": "insider"}}}]);
        }
        _ => analysis["iterations"] = json!(p.iterations),
    }
    if p.kind < 2
        && let Some(step) = p.promotion_step
    {
        analysis["stepWeightPromotion"] = json!(step);
    }
    if p.mirror {
        analysis["mirror"] = json!(true);
    }
    let hooks: Vec<Value> = HOOK_TYPES
        .iter()
        .zip(p.hooks)
        .filter(|(_, on)| *on)
        .map(|(t, _)| json!({"name": format!("{t}-hook"), "type": t, "url": "http://hook/"}))
        .collect();
    analysis["webhooks"] = json!(hooks);
    value["analysis"] = analysis;
    if p.revert {
        value["gitops"] = json!({"revert": true});
    }
    if p.skip {
        value["skipAnalysis"] = json!(true);
    }
    spec_from(value)
}

#[derive(Clone, Debug)]
struct TickParams {
    new_revision: Option<u8>,
    canary: Readiness,
    primary: Readiness,
    metric: Verdict,
    hook: Verdict,
    gates: (Option<bool>, Option<bool>, Option<bool>),
    rollback: bool,
    ops: Operations,
    dt: i64,
}

fn readiness() -> impl Strategy<Value = Readiness> {
    prop_oneof![
        8 => Just(Readiness::Ready),
        2 => Just(Readiness::NotReady("rolling".into())),
        1 => Just(Readiness::Failed("broken".into())),
    ]
}

fn verdict() -> impl Strategy<Value = Verdict> {
    prop_oneof![6 => Just(Verdict::Pass), 2 => Just(Verdict::Fail), 1 => Just(Verdict::NoData), 1 => Just(Verdict::Error)]
}

fn rare() -> impl Strategy<Value = bool> {
    prop::bool::weighted(0.05)
}

fn tick_params() -> impl Strategy<Value = TickParams> {
    (
        prop::option::weighted(0.08, 1u8..5),
        readiness(),
        readiness(),
        verdict(),
        verdict(),
        (prop::option::of(any::<bool>()), prop::option::of(any::<bool>()), prop::option::of(any::<bool>())),
        rare(),
        (rare(), rare(), rare(), rare(), rare()),
        0i64..300,
    )
        .prop_map(|(new_revision, canary, primary, metric, hook, gates, rollback, ops, dt)| TickParams {
            new_revision,
            canary,
            primary,
            metric,
            hook,
            gates,
            rollback,
            ops: Operations { promote: ops.0, abort: ops.1, retry: ops.2, pause: ops.3, resume: ops.4 },
            dt,
        })
}

fn has_hook(spec: &CanarySpec, name: &str) -> bool {
    spec.analysis.webhooks.iter().flatten().any(|h| h.name == name)
}

/// The report a controller would build: only what `needs` asked for and the spec configures.
fn report_for(spec: &CanarySpec, asked: Needs, t: &TickParams) -> AnalysisReport {
    let mut checks = Vec::new();
    let hook = if t.hook == Verdict::NoData { Verdict::Fail } else { t.hook };
    if asked.pre_rollout_hooks && has_hook(spec, "pre-rollout-hook") {
        checks.push(CheckResult::new(CheckKind::PreRolloutHook, "pre-rollout-hook", hook, None));
    }
    if asked.analysis {
        if has_hook(spec, "rollout-hook") {
            checks.push(CheckResult::new(CheckKind::RolloutHook, "rollout-hook", hook, None));
        }
        checks.push(CheckResult::new(CheckKind::Metric, METRIC, t.metric, None));
    }
    let gate = |asked: bool, answer: Option<bool>| if asked { answer } else { None };
    AnalysisReport {
        checks,
        gates: Gates {
            confirm_rollout: gate(asked.confirm_rollout, t.gates.0),
            confirm_traffic_increase: gate(asked.confirm_traffic_increase, t.gates.1),
            confirm_promotion: gate(asked.confirm_promotion, t.gates.2),
        },
        rollback_requested: asked.rollback_hooks && t.rollback,
    }
}

fn round_trip(status: &CanaryStatus) -> CanaryStatus {
    let text = serde_json::to_string(status).expect("serializes");
    serde_json::from_str(&text).expect("deserializes")
}

fn subset(inner: Needs, outer: Needs) -> bool {
    (!inner.pre_rollout_hooks || outer.pre_rollout_hooks)
        && (!inner.analysis || outer.analysis)
        && (!inner.confirm_rollout || outer.confirm_rollout)
        && (!inner.confirm_traffic_increase || outer.confirm_traffic_increase)
        && (!inner.confirm_promotion || outer.confirm_promotion)
        && (!inner.rollback_hooks || outer.rollback_hooks)
}

fn active(phase: Option<CanaryPhase>) -> bool {
    matches!(phase, Some(CanaryPhase::Progressing | CanaryPhase::WaitingPromotion))
}

fn promoting(phase: Option<CanaryPhase>) -> bool {
    matches!(phase, Some(CanaryPhase::Promoting | CanaryPhase::Finalising))
}

/// Checks one tick's invariants.
fn check_tick(
    spec: &CanarySpec,
    before: &CanaryStatus,
    world: &Observed,
    report: &AnalysisReport,
    plan: &Plan,
) -> Result<(), TestCaseError> {
    let max = max_weight(spec);
    let canary_strategy = strategy(spec, world.provider) == ReleaseStrategy::Canary;
    for effect in &plan.effects {
        if let Effect::SetRoutes { primary, canary, .. } = effect {
            prop_assert_eq!(primary + canary, 100, "routes must sum to 100");
            prop_assert!((0..=100).contains(canary));
            if canary_strategy && !promoting(before.phase) {
                prop_assert!(*canary <= max, "canary weight {} above max {} before promotion", canary, max);
            }
        }
    }
    if canary_strategy && active(plan.status.phase) {
        prop_assert!(plan.status.canary_weight.unwrap_or(0) <= max);
    }
    // A run never stays active with the failure budget spent.
    if active(plan.status.phase) && plan.status.paused != Some(true) {
        prop_assert!(plan.status.failed_checks.unwrap_or(0) < steps::threshold(spec));
    }
    // Never promoted over a failing check.
    let promoted = plan.effects.iter().any(|e| matches!(e, Effect::PromotePrimary { .. }));
    if promoted && spec.skip_analysis != Some(true) {
        let failing =
            report.checks.iter().any(|c| matches!(c.result.verdict, Verdict::Fail | Verdict::Error));
        prop_assert!(!failing, "promoted with a failing check: {:?}", report.checks);
    }
    // A quarantined revision gets no traffic and is not scaled up (unless retried).
    let quarantined = before.failed_revisions.iter().flatten().any(|f| f.revision == world.revision);
    if quarantined && !world.operations.retry && !promoting(before.phase) {
        for effect in &plan.effects {
            prop_assert!(!matches!(effect, Effect::ScaleTargetUp));
            if let Effect::SetRoutes { canary, mirrored, .. } = effect {
                prop_assert!(*canary == 0 && !*mirrored, "quarantined revision got traffic");
            }
        }
    }
    Ok(())
}

// 256 cases by default; `PROPTEST_CASES=5000 cargo test rollout::proptests` for a longer hunt.
proptest! {
    /// Random runs: every invariant after every tick; needs/decide consistency; restart safety;
    /// at most one Git revert per failed revision (until retried).
    #[test]
    fn random_runs_keep_the_invariants(params in spec_params(), ticks in prop::collection::vec(tick_params(), 1..60)) {
        let spec = build_spec(&params);
        let mut world = observed("r1");
        world.initialized = false;
        world.provider = params.provider;
        let mut status = CanaryStatus::default();
        let mut now = 0i64;
        let mut reverts: std::collections::BTreeMap<String, usize> = Default::default();
        for (i, t) in ticks.iter().enumerate() {
            now += t.dt;
            if i > 0 {
                world.initialized = true;
            }
            if let Some(n) = t.new_revision {
                world.revision = format!("r{n}");
            }
            world.canary = t.canary.clone();
            world.primary = t.primary.clone();
            world.operations = t.ops;

            let asked = needs(&spec, &status, &world);
            let report = report_for(&spec, asked, t);
            let plan = decide(&spec, &status, &world, &report, at(now));

            let used = consulted(&spec, &status, &world, &report, at(now));
            prop_assert!(subset(used, asked), "decide consulted {:?} but needs asked {:?}", used, asked);

            let again = decide(&spec, &round_trip(&status), &world, &report, at(now));
            prop_assert_eq!(&again, &plan, "a stored (serde round-tripped) status must give the same plan");
            prop_assert_eq!(&round_trip(&plan.status), &plan.status, "status must survive storage unchanged");

            check_tick(&spec, &status, &world, &report, &plan)?;

            // Apply the plan the way the controller would.
            let mut next = plan.status.clone();
            for effect in &plan.effects {
                match effect {
                    Effect::SetRoutes { primary, canary, mirrored } => {
                        world.routes = Some(Routes { primary: *primary, canary: *canary, mirrored: *mirrored });
                    }
                    Effect::RevertGit { revision, .. } => {
                        let count = reverts.entry(revision.clone()).or_default();
                        *count += 1;
                        prop_assert!(*count <= 1, "second Git revert of {}", revision);
                        if let Some(g) = next.gitops.as_mut() {
                            g.state = GitRevertState::Pushed;
                        }
                    }
                    Effect::ClearOperation(Operation::Retry) => {
                        reverts.remove(&world.revision);
                    }
                    _ => {}
                }
            }
            status = next;
        }
    }

    /// From any active state of a run, a spent failure budget rolls back at once: routes to the
    /// primary first, then the target to zero.
    #[test]
    fn threshold_reached_always_rolls_back(
        params in spec_params(),
        t in tick_params(),
        weight in prop_oneof![Just(0i32), 0i32..=100],
        iterations in prop_oneof![Just(0i32), 0i32..=5],
        extra in 0i32..3,
        waiting in any::<bool>(),
    ) {
        let spec = build_spec(&params);
        let phase = if waiting { CanaryPhase::WaitingPromotion } else { CanaryPhase::Progressing };
        let mut status = running(phase, weight.min(max_weight(&spec)));
        status.iterations = Some(iterations);
        status.failed_checks = Some(steps::threshold(&spec) + extra);
        let mut world = observed("r2");
        world.provider = params.provider;
        world.canary = t.canary.clone();
        world.primary = t.primary.clone();
        world.operations = Operations { pause: false, ..t.ops };
        let report = report_for(&spec, needs(&spec, &status, &world), &t);
        let plan = decide(&spec, &status, &world, &report, at(60));
        prop_assert_eq!(plan.status.phase, Some(CanaryPhase::Failed));
        let shapes = shapes(&plan);
        let routes = shapes.iter().position(|s| s == "SetRoutes(100,0)");
        let scale = shapes.iter().position(|s| s == "ScaleTargetToZero");
        prop_assert!(matches!((routes, scale), (Some(r), Some(s)) if r < s), "{:?}", shapes);
        prop_assert!(!shapes.iter().any(|s| s.starts_with("PromotePrimary")));
    }

    /// Any check failing in the tick: never a promotion, whatever the state and gates.
    #[test]
    fn failing_check_is_never_promoted(
        params in spec_params(),
        t in tick_params(),
        weight in prop_oneof![Just(0i32), 0i32..=100],
        iterations in prop_oneof![Just(0i32), 0i32..=5],
        waiting in any::<bool>(),
    ) {
        let spec = build_spec(&SpecParams { skip: false, ..params });
        let phase = if waiting { CanaryPhase::WaitingPromotion } else { CanaryPhase::Progressing };
        let mut status = running(phase, weight.min(max_weight(&spec)));
        status.iterations = Some(iterations);
        let mut world = observed("r2");
        world.provider = params.provider;
        world.operations = Operations { promote: true, ..t.ops };
        let asked = needs(&spec, &status, &world);
        let mut report = report_for(&spec, asked, &TickParams { metric: Verdict::Fail, hook: Verdict::Fail, ..t });
        report.gates = Gates { confirm_rollout: Some(true), confirm_traffic_increase: Some(true), confirm_promotion: Some(true) };
        let plan = decide(&spec, &status, &world, &report, at(60));
        prop_assert!(!plan.effects.iter().any(|e| matches!(e, Effect::PromotePrimary { .. })), "{:?}", shapes(&plan));
    }

    /// Liveness and exactly-once promotion: with ready workloads, open gates and passing checks,
    /// every strategy reaches Succeeded, promoting exactly once, and then stays quiet.
    #[test]
    fn healthy_release_promotes_exactly_once(params in spec_params()) {
        let spec = build_spec(&params);
        let mut status = settled(CanaryPhase::Succeeded, "r1");
        let mut world = observed("r2");
        world.provider = params.provider;
        let mut promotions = 0;
        let mut ticks = 0;
        while status.phase != Some(CanaryPhase::Succeeded) || ticks == 0 {
            ticks += 1;
            prop_assert!(ticks < 250, "no promotion after {} ticks: {:?}", ticks, status.phase);
            let asked = needs(&spec, &status, &world);
            let mut report = report_for(&spec, asked, &TickParams {
                new_revision: None,
                canary: Readiness::Ready,
                primary: Readiness::Ready,
                metric: Verdict::Pass,
                hook: Verdict::Pass,
                gates: (Some(true), Some(true), Some(true)),
                rollback: false,
                ops: Operations::default(),
                dt: 60,
            });
            report.rollback_requested = false;
            let plan = decide(&spec, &status, &world, &report, at(ticks * 60));
            promotions += plan.effects.iter().filter(|e| matches!(e, Effect::PromotePrimary { .. })).count();
            status = plan.status;
        }
        prop_assert_eq!(promotions, 1);
        prop_assert_eq!(status.last_promoted_spec.as_deref(), Some("r2"));
        let quiet = decide(&spec, &status, &world, &AnalysisReport::default(), at(100_000));
        prop_assert!(quiet.effects.is_empty());
    }
}
