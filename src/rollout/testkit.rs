//! Test builders shared by the table tests and the property tests.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use crate::crd::canary::{CanarySpec, Provider};
use crate::crd::status::{CanaryPhase, CanaryStatus, MetricResult, ProgressWait, Verdict, WaitReason};

use super::observed::{Observed, Operations, Readiness, Routes};
use super::plan::{Effect, Plan};
use super::report::{AnalysisReport, CheckKind, CheckResult};

pub const METRIC: &str = "request-success-rate";

/// Seconds since the epoch as a timestamp (tests count time from 1_000_000).
pub fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_000_000 + seconds).expect("valid timestamp")
}

pub fn time(seconds: i64) -> Time {
    Time(at(seconds))
}

/// A canary spec: interval 1m, threshold 2, maxWeight 30, stepWeight 10, one metric.
pub fn spec_json() -> Value {
    json!({
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
        "service": {"port": 9898},
        "analysis": {
            "interval": "1m",
            "threshold": 2,
            "maxWeight": 30,
            "stepWeight": 10,
            "metrics": [{"name": METRIC, "thresholdRange": {"min": 99}}]
        }
    })
}

pub fn spec_from(value: Value) -> CanarySpec {
    serde_json::from_value(value).expect("valid spec")
}

/// Merges `patch` into `spec.analysis` (top-level keys replace).
pub fn analysis(spec: &mut CanarySpec, patch: Value) {
    let mut value = serde_json::to_value(&*spec).expect("serializes");
    if let (Some(target), Value::Object(patch)) =
        (value.get_mut("analysis").and_then(Value::as_object_mut), patch)
    {
        for (key, v) in patch {
            if v.is_null() {
                target.remove(&key);
            } else {
                target.insert(key, v);
            }
        }
    }
    *spec = spec_from(value);
}

/// Adds webhooks of the given types, named after the type.
pub fn hooks(spec: &mut CanarySpec, types: &[&str]) {
    let list: Vec<Value> = types
        .iter()
        .map(|t| json!({"name": format!("{t}-hook"), "type": t, "url": "http://hook/"}))
        .collect();
    analysis(spec, json!({ "webhooks": list }));
}

pub fn observed(revision: &str) -> Observed {
    Observed {
        generation: Some(1),
        revision: revision.to_string(),
        tracked_configs: BTreeMap::new(),
        initialized: true,
        canary: Readiness::Ready,
        primary: Readiness::Ready,
        routes: Some(Routes::STABLE),
        operations: Operations::default(),
        deleting: false,
        provider: Provider::Istio,
    }
}

/// A settled status on `revision` (promoted and applied).
pub fn settled(phase: CanaryPhase, revision: &str) -> CanaryStatus {
    CanaryStatus {
        phase: Some(phase),
        failed_checks: Some(0),
        no_data_checks: Some(0),
        canary_weight: Some(0),
        iterations: Some(0),
        tracked_configs: Some(BTreeMap::new()),
        last_applied_spec: Some(revision.to_string()),
        last_promoted_spec: Some(revision.to_string()),
        revision: Some(revision.to_string()),
        last_transition_time: Some(time(0)),
        ..CanaryStatus::default()
    }
}

/// A run of `r2` over the promoted `r1`, in `phase`, at `weight`, waiting since t=0.
pub fn running(phase: CanaryPhase, weight: i32) -> CanaryStatus {
    let mut status = settled(phase, "r2");
    status.last_promoted_spec = Some("r1".to_string());
    status.canary_weight = Some(weight);
    status.waiting = Some(ProgressWait { reason: WaitReason::CanaryNotReady, since: time(0) });
    status
}

pub fn check(kind: CheckKind, name: &str, verdict: Verdict) -> CheckResult {
    CheckResult::new(kind, name, verdict, None)
}

/// A report where the metric has `verdict`.
pub fn metric(verdict: Verdict) -> AnalysisReport {
    AnalysisReport { checks: vec![check(CheckKind::Metric, METRIC, verdict)], ..AnalysisReport::default() }
}

pub fn result(name: &str, verdict: Verdict) -> MetricResult {
    check(CheckKind::Metric, name, verdict).result
}

/// A compact, exact description of an effect, for ordered comparisons.
pub fn shape(effect: &Effect) -> String {
    match effect {
        Effect::Initialize => "Initialize".into(),
        Effect::SetRoutes { primary, canary, mirrored } => {
            format!("SetRoutes({primary},{canary}{})", if *mirrored { ",mirrored" } else { "" })
        }
        Effect::ScaleTargetUp => "ScaleTargetUp".into(),
        Effect::ScaleTargetToZero => "ScaleTargetToZero".into(),
        Effect::PromotePrimary { revision } => format!("PromotePrimary({revision})"),
        Effect::RevertGit { revision, .. } => format!("RevertGit({revision})"),
        Effect::RunPostRolloutHooks { phase } => format!("PostRollout({phase})"),
        Effect::Event { type_, reason, .. } => format!("Event({type_:?},{reason})"),
        Effect::Notify { severity, kind, .. } => format!("Notify({severity:?},{kind:?})"),
        Effect::ClearOperation(op) => format!("Clear({op:?})"),
        Effect::RestoreOnDeletion => "RestoreOnDeletion".into(),
        Effect::RemoveFinalizer => "RemoveFinalizer".into(),
    }
}

pub fn shapes(plan: &Plan) -> Vec<String> {
    plan.effects.iter().map(shape).collect()
}
