//! Micro-benchmark (issue 10): building the status merge patch of one analysis tick, the
//! field-by-field [`status_patch`] against diffing both whole statuses as JSON values
//! ([`merge_patch`] of two `serde_json::to_value`s, what the controller did before).
//!
//! `cargo bench --bench status_patch` (optional argument: iterations, default 200,000). The
//! status is what a Gateway API canary of `serin-bench controller` carries mid-release: four
//! conditions, two metric results with their queries, specs' hashes, tracked configs; the tick
//! moves the weight, the last tick and both metric values. Prints nanoseconds per patch.

use std::hint::black_box;
use std::time::Instant;

use serde_json::{Value, json};
use serin::controller::status::{merge_patch, status_patch};
use serin::crd::CanaryStatus;

fn status(weight: i32, tick: &str, success: f64, latency: f64) -> Result<CanaryStatus, serde_json::Error> {
    let condition = |type_: &str, status: &str, reason: &str| {
        json!({"type": type_, "status": status, "reason": reason,
               "message": "New revision detected, progressing canary analysis.",
               "observedGeneration": 2, "lastTransitionTime": "2026-11-22T10:00:00Z"})
    };
    let result = |name: &str, value: f64, min: Option<f64>, max: Option<f64>, query: &str| {
        json!({"name": name, "value": value, "thresholdMin": min, "thresholdMax": max, "verdict": "pass",
               "query": query, "time": tick})
    };
    serde_json::from_value(json!({
        "phase": "Progressing",
        "failedChecks": 0,
        "noDataChecks": 0,
        "canaryWeight": weight,
        "iterations": 0,
        "trackedConfigs": {"ConfigMap/app-config": "5f2b8c1d9e", "Secret/app-secret": "a1c3e5f7b9"},
        "lastAppliedSpec": "7d9f8c6b5a",
        "lastPromotedSpec": "6c8e7b5a49",
        "lastTransitionTime": "2026-11-22T10:00:00Z",
        "observedGeneration": 2,
        "revision": "7d9f8c6b5a-5f2b8c1d9e",
        "conditions": [
            condition("Promoted", "Unknown", "Progressing"),
            condition("Ready", "False", "Progressing"),
            condition("Reconciling", "True", "Progressing"),
            condition("Stalled", "False", "Progressing"),
        ],
        "analysis": [
            result("request-success-rate", success, Some(99.0), None,
                "sum(rate(istio_requests_total{reporter=\"destination\",destination_workload_namespace=\"bench\",destination_workload=\"app-0001\",response_code!~\"5.*\"}[1m])) / sum(rate(istio_requests_total{reporter=\"destination\",destination_workload_namespace=\"bench\",destination_workload=\"app-0001\"}[1m])) * 100"),
            result("request-duration", latency, None, Some(500.0),
                "histogram_quantile(0.99, sum(rate(istio_request_duration_milliseconds_bucket{reporter=\"destination\",destination_workload_namespace=\"bench\",destination_workload=\"app-0001\"}[1m])) by (le))"),
        ],
        "lastTick": tick,
    }))
}

fn per_call(iterations: u32, mut f: impl FnMut() -> Value) -> f64 {
    let started = Instant::now();
    for _ in 0..iterations {
        black_box(f());
    }
    started.elapsed().as_nanos() as f64 / f64::from(iterations)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let iterations: u32 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let from = status(10, "2026-11-22T10:05:00Z", 99.8, 41.0)?;
    let to = status(11, "2026-11-22T10:06:00Z", 99.7, 43.5)?;
    let whole = || -> Result<Value, serde_json::Error> {
        Ok(merge_patch(&serde_json::to_value(&from)?, &serde_json::to_value(&to)?))
    };
    let by_field = || status_patch(Some(&from), &to);
    if whole()? != by_field()? {
        return Err("the two patches differ".into());
    }
    println!("status merge patch of one analysis tick ({iterations} iterations): {}", by_field()?);
    for round in 1..=3 {
        let whole_ns = per_call(iterations, || whole().unwrap_or(Value::Null));
        let field_ns = per_call(iterations, || by_field().unwrap_or(Value::Null));
        println!(
            "round {round}: both statuses as JSON values, diffed: {whole_ns:.0} ns; field by field: {field_ns:.0} ns"
        );
    }
    Ok(())
}
