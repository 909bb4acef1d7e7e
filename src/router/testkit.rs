//! Test fixtures for the routers: Canary specs and route contexts.

use serde_json::{Value, json};

use super::RouteContext;
use crate::crd::CanarySpec;
use crate::workload::primary::SelectorLabel;

/// A spec for `provider` with `service` and `analysis` merged over a minimal base.
pub fn spec(provider: &str, service: Value, analysis: Value) -> CanarySpec {
    let mut s = json!({"port": 9898});
    merge(&mut s, service);
    let mut a = json!({"interval": "1m", "threshold": 5, "stepWeight": 10, "maxWeight": 50});
    merge(&mut a, analysis);
    serde_json::from_value(json!({
        "provider": provider,
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
        "service": s,
        "analysis": a,
    }))
    .expect("spec")
}

/// A/B analysis (iterations and a header match).
pub fn ab_analysis() -> Value {
    json!({"stepWeight": null, "maxWeight": null, "iterations": 10,
        "match": [{"headers": {"x-canary": {"exact": "insider"}}}]})
}

fn merge(base: &mut Value, extra: Value) {
    if let (Some(b), Value::Object(e)) = (base.as_object_mut(), extra) {
        for (k, v) in e {
            if v.is_null() {
                b.remove(&k);
            } else {
                b.insert(k, v);
            }
        }
    }
}

/// The selector label `app=podinfo`.
pub fn label() -> SelectorLabel {
    SelectorLabel { key: "app".into(), value: "podinfo".into() }
}

/// Context for Canary `test/podinfo` with UID `uid-1`.
pub fn ctx<'a>(spec: &'a CanarySpec, label: &'a SelectorLabel) -> RouteContext<'a> {
    RouteContext {
        namespace: "test",
        name: "podinfo",
        uid: Some("uid-1"),
        spec,
        affinity_cookie: None,
        selector: label,
    }
}

/// The metadata every object Serin creates for `test/podinfo` carries.
pub fn owned_meta(name: &str) -> Value {
    json!({
        "name": name,
        "namespace": "test",
        "annotations": {
            "kustomize.toolkit.fluxcd.io/reconcile": "disabled",
            "helm.toolkit.fluxcd.io/driftDetection": "disabled",
            "serin.dev/created-for": "podinfo",
        },
        "ownerReferences": [{"apiVersion": "serin.dev/v1alpha1", "kind": "Canary", "name": "podinfo",
            "uid": "uid-1", "controller": true, "blockOwnerDeletion": true}],
    })
}

/// The weights tested everywhere.
pub const WEIGHTS: [i32; 4] = [0, 10, 50, 100];
