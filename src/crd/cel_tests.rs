//! Each CEL rule in the schema, checked on valid and invalid fragments with kube's client-side
//! CEL evaluator — the same rules the API server enforces.

use serde_json::{Value, json};

use super::alert_provider::AlertProviderSpec;
use super::canary::{
    AnalysisSpec, CanarySpec, ComparativeSettings, GitSource, MetricCheck, MirrorBackendRef, ScalerReplicas,
    SessionAffinity, ThresholdRange,
};
use super::common::StringMatch;

type Validate = fn(&Value) -> Result<(), String>;

macro_rules! cel {
    ($t:ty) => {
        |v: &Value| {
            <$t>::validate_cel(v, None)
                .map_err(|e| e.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))
        }
    };
}

fn check(name: &str, validate: Validate, value: Value, want_error: Option<&str>) {
    let result = validate(&value);
    match (want_error, result) {
        (None, Ok(())) => {}
        (None, Err(e)) => panic!("{name}: expected valid, got {e}"),
        (Some(want), Err(e)) => assert!(e.contains(want), "{name}: expected {want:?}, got {e:?}"),
        (Some(want), Ok(())) => panic!("{name}: expected error {want:?}, got valid"),
    }
}

#[test]
fn analysis_rules() {
    let v: Validate = cel!(AnalysisSpec);
    let strategy = "set exactly one strategy input";
    let cases = [
        ("stepWeight alone", json!({"stepWeight": 10}), None),
        ("stepWeights alone", json!({"stepWeights": [1, 10]}), None),
        ("iterations alone", json!({"iterations": 5}), None),
        ("no strategy", json!({"threshold": 1}), Some(strategy)),
        ("stepWeight and iterations", json!({"stepWeight": 10, "iterations": 5}), Some(strategy)),
        ("stepWeight and stepWeights", json!({"stepWeight": 10, "stepWeights": [5]}), Some(strategy)),
        ("maxWeight equal", json!({"stepWeight": 10, "maxWeight": 10}), None),
        (
            "maxWeight below",
            json!({"stepWeight": 20, "maxWeight": 10}),
            Some("maxWeight must be at least stepWeight"),
        ),
        ("mirrorWeight with mirror", json!({"iterations": 2, "mirror": true, "mirrorWeight": 50}), None),
        (
            "mirrorWeight without mirror",
            json!({"iterations": 2, "mirrorWeight": 50}),
            Some("mirrorWeight needs mirror: true"),
        ),
        (
            "mirrorWeight with mirror off",
            json!({"iterations": 2, "mirror": false, "mirrorWeight": 5}),
            Some("needs mirror"),
        ),
        (
            "match with iterations",
            json!({"iterations": 2, "match": [{"headers": {"x": {"exact": "1"}}}]}),
            None,
        ),
        (
            "match without iterations",
            json!({"stepWeight": 5, "match": [{}]}),
            Some("match (A/B testing) needs iterations"),
        ),
        ("stepWeightPromotion on canary", json!({"stepWeight": 5, "stepWeightPromotion": 50}), None),
        (
            "stepWeightPromotion on iterations",
            json!({"iterations": 5, "stepWeightPromotion": 50}),
            Some("stepWeightPromotion applies"),
        ),
    ];
    for (name, value, want) in cases {
        check(name, v, value, want);
    }
}

#[test]
fn metric_rules() {
    let v: Validate = cel!(MetricCheck);
    let cases = [
        ("builtin", json!({"name": "request-success-rate"}), None),
        ("template", json!({"name": "errors", "templateRef": {"name": "t"}}), None),
        ("inline query", json!({"name": "errors", "query": "up"}), None),
        ("custom without query", json!({"name": "errors"}), Some("needs templateRef or query")),
        ("both", json!({"name": "e", "query": "up", "templateRef": {"name": "t"}}), Some("not both")),
        (
            "threshold and range",
            json!({"name": "request-duration", "threshold": 5, "thresholdRange": {"max": 5}}),
            Some("thresholdRange or the deprecated threshold"),
        ),
    ];
    for (name, value, want) in cases {
        check(name, v, value, want);
    }
    let settings = json!({"direction": "increase", "confidence": 0.95, "allowedIncrease": 1.1});
    check(
        "comparative settings with the comparative judge",
        v,
        json!({"name": "lat", "query": "up", "judge": "comparative", "comparative": settings}),
        None,
    );
    for (name, judge) in [("without judge", json!(null)), ("with the threshold judge", json!("threshold"))] {
        let mut metric = json!({"name": "lat", "query": "up", "comparative": settings});
        if !judge.is_null() {
            metric["judge"] = judge;
        }
        check(name, v, metric, Some("comparative settings need judge: comparative"));
    }
    let comparative: Validate = cel!(ComparativeSettings);
    let cases = [
        ("empty", json!({}), None),
        ("confidence 0.98", json!({"confidence": 0.98}), None),
        ("confidence 1", json!({"confidence": 1}), Some("confidence must lie strictly between 0 and 1")),
        ("confidence 0", json!({"confidence": 0.0}), Some("confidence must lie strictly between 0 and 1")),
        ("allowedDecrease 0.9", json!({"allowedDecrease": 0.9}), None),
        ("allowedDecrease 1", json!({"allowedDecrease": 1}), None),
        (
            "allowedDecrease 1.2",
            json!({"allowedDecrease": 1.2}),
            Some("allowedDecrease is a ratio in (0, 1]"),
        ),
        ("allowedDecrease 0", json!({"allowedDecrease": 0}), Some("allowedDecrease is a ratio in (0, 1]")),
    ];
    for (name, value, want) in cases {
        check(name, comparative, value, want);
    }
    let range: Validate = cel!(ThresholdRange);
    check("min only", range, json!({"min": 1}), None);
    check("equal bounds", range, json!({"min": 1, "max": 1}), None);
    check("inverted", range, json!({"min": 2, "max": 1}), Some("min must not exceed max"));
}

#[test]
fn spec_rules() {
    let v: Validate = cel!(CanarySpec);
    let base = |provider: &str, extra: Value| {
        let mut spec = json!({
            "provider": provider,
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "app"},
            "service": {"port": 80},
            "analysis": {"stepWeight": 10}
        });
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            for (k, val) in extra {
                spec.insert(k.clone(), val.clone());
            }
        }
        spec
    };
    let ingress =
        json!({"ingressRef": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "app"}});
    let gateway = json!({"service": {"port": 80, "gatewayRefs": [{"name": "gw"}]}});
    let no_refs = json!({"service": {"port": 80, "gatewayRefs": []}});
    let cases = [
        ("istio", base("istio", json!({})), None),
        ("nginx with ingressRef", base("nginx", ingress), None),
        ("nginx without ingressRef", base("nginx", json!({})), Some("provider nginx needs ingressRef")),
        ("gatewayapi with refs", base("gatewayapi:v1", gateway), None),
        ("gatewayapi without refs", base("gatewayapi:v1beta1", json!({})), Some("needs service.gatewayRefs")),
        ("gatewayapi with empty refs", base("gatewayapi:v1", no_refs), Some("needs service.gatewayRefs")),
    ];
    for (name, value, want) in cases {
        check(name, v, value, want);
    }
}

#[test]
fn smaller_rules() {
    let m: Validate = cel!(StringMatch);
    check("one match", m, json!({"exact": "a"}), None);
    check("empty match", m, json!({}), None);
    check("two matches", m, json!({"exact": "a", "regex": "b"}), Some("set only one of"));

    let s: Validate = cel!(SessionAffinity);
    check("distinct cookies", s, json!({"cookieName": "a", "primaryCookieName": "b"}), None);
    check("same cookies", s, json!({"cookieName": "a", "primaryCookieName": "a"}), Some("must differ"));

    let g: Validate = cel!(GitSource);
    check("auto", g, json!({"auto": true}), None);
    check("url", g, json!({"url": "https://x/y.git"}), None);
    check("neither", g, json!({"branch": "main"}), Some("set either auto: true or url"));
    check("auto false without url", g, json!({"auto": false}), Some("set either"));
    check("both", g, json!({"auto": true, "url": "https://x/y.git"}), Some("set either"));

    let r: Validate = cel!(ScalerReplicas);
    check("ordered replicas", r, json!({"minReplicas": 1, "maxReplicas": 3}), None);
    check("inverted replicas", r, json!({"minReplicas": 4, "maxReplicas": 3}), Some("must not exceed"));

    let b: Validate = cel!(MirrorBackendRef);
    check("service with port", b, json!({"name": "s", "port": 80}), None);
    check("service without port", b, json!({"name": "s"}), Some("needs a port"));
    check("other kind without port", b, json!({"name": "s", "group": "x.io", "kind": "Backend"}), None);

    let a: Validate = cel!(AlertProviderSpec);
    check("address", a, json!({"type": "slack", "address": "https://x"}), None);
    check("secret", a, json!({"type": "slack", "secretRef": {"name": "s"}}), None);
    check("neither", a, json!({"type": "slack"}), Some("set address, or secretRef"));
}
