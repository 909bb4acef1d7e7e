//! Initialisation: Services, primary and apex route in the first tick; the target scaled to
//! zero once the primary is ready.

use pretty_assertions::assert_eq;
use serde_json::json;

use super::fakes::World;
use super::*;
use crate::crd::CanaryPhase;

const APPLY: &str = "?&force=true&fieldManager=serin";

#[tokio::test]
async fn initialization_creates_services_primary_and_route_then_scales_the_target_down() {
    let world = World::new();
    world.api.put(paths::TARGET, target("demo:1.0.0"));
    let canary = canary();

    // Tick 1: nothing exists yet.
    let (action, calls, canary) =
        tick(&world, &canary, objects(&canary, vec![deployment(target("demo:1.0.0"))])).await;
    let svc = "/api/v1/namespaces/test/services";
    assert_eq!(
        writes_and_reads(&calls),
        vec![
            format!("GET {}", paths::APEX), // the router's current split: none yet
            format!("PATCH {svc}/podinfo{APPLY}"),
            format!("PATCH {svc}/podinfo-primary{APPLY}"),
            format!("PATCH {svc}/podinfo-canary{APPLY}"),
            format!("PATCH {}{APPLY}", paths::PRIMARY),
            format!("GET {}", paths::APEX), // router reconcile: the fresh apex has no selector
            format!("PATCH {}?&force=true&fieldManager=serin-router", paths::APEX),
            format!("PATCH {}?&fieldManager=serin", paths::STATUS),
        ]
    );
    assert_eq!(event_reasons(&calls), vec!["Initializing"]);
    assert_eq!(calls[1].uri, format!("{}?", paths::EVENTS), "the Event comes before the writes");
    let owner = json!([{"apiVersion": "serin.dev/v1alpha1", "controller": true, "kind": "Canary",
        "name": "podinfo", "uid": "0c0ffee0-uid"}]);
    let apex = body_of(&calls, "PATCH", &format!("{svc}/podinfo{APPLY}"));
    assert_eq!(apex["spec"]["selector"], serde_json::Value::Null, "the router owns the apex selector");
    assert_eq!(apex["metadata"]["ownerReferences"], owner);
    assert_eq!(apex["spec"]["ports"][0]["targetPort"], 9898);
    let primary_svc = body_of(&calls, "PATCH", &format!("{svc}/podinfo-primary{APPLY}"));
    assert_eq!(primary_svc["spec"]["selector"], json!({"app": "podinfo-primary"}));
    let canary_svc = body_of(&calls, "PATCH", &format!("{svc}/podinfo-canary{APPLY}"));
    assert_eq!(canary_svc["spec"]["selector"], json!({"app": "podinfo"}));
    let primary = body_of(&calls, "PATCH", &format!("{}{APPLY}", paths::PRIMARY));
    assert_eq!(primary["metadata"]["ownerReferences"], owner);
    assert_eq!(primary["spec"]["replicas"], 2);
    assert_eq!(primary["spec"]["selector"], json!({"matchLabels": {"app": "podinfo-primary"}}));
    assert_eq!(primary["spec"]["template"]["metadata"]["labels"], json!({"app": "podinfo-primary"}));
    assert_eq!(primary["spec"]["template"]["spec"]["containers"][0]["image"], "demo:1.0.0");
    let route = body_of(&calls, "PATCH", &format!("{}?&force=true&fieldManager=serin-router", paths::APEX));
    assert_eq!(route["spec"], json!({"selector": {"app": "podinfo-primary"}}));
    let status = canary.status.clone().expect("status written");
    assert_eq!(status.phase, Some(CanaryPhase::Initializing));
    assert_eq!(action, Action::requeue(std::time::Duration::from_secs(30)));

    // Tick 2, on a fresh Context (a restart): the primary has rolled out.
    let caches = vec![deployment(target("demo:1.0.0")), world.rolled_out("podinfo-primary")];
    let (_, calls, canary) = tick(&world, &canary, objects(&canary, caches.clone())).await;
    assert_eq!(
        writes_and_reads(&calls),
        vec![
            format!("GET {}", paths::APEX),
            format!("PATCH {}?&fieldManager=serin", paths::TARGET),
            format!("PATCH {}?&fieldManager=serin", paths::STATUS),
        ]
    );
    assert_eq!(
        body_of(&calls, "PATCH", &format!("{}?&fieldManager=serin", paths::TARGET)),
        &json!({"spec": {"replicas": 0}})
    );
    assert_eq!(event_reasons(&calls), vec!["Initialized"]);
    let status = canary.status.clone().expect("status");
    assert_eq!(status.phase, Some(CanaryPhase::Initialized));
    assert_eq!(status.last_promoted_spec, status.last_applied_spec);
    assert!(status.last_promoted_spec.is_some());
    let sent = world.notifiers.wait_for(1).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!((sent[0].0.as_str(), sent[0].1.title.as_str()), ("https://chat.test/hook", "Initialized"));

    // Tick 3: settled, nothing changed: one read, no write.
    let mut scaled = caches;
    scaled[0] = deployment(world.api.get(paths::TARGET).expect("target"));
    let (_, calls, _) = tick(&world, &canary, objects(&canary, scaled)).await;
    assert_eq!(lines(&calls), vec![format!("GET {}", paths::APEX)]);
    assert!(world.webhooks.calls().is_empty(), "no analysis during initialisation");
    assert!(world.metrics.queries().is_empty());
}

#[tokio::test]
async fn a_daemonset_target_is_refused_with_the_field_named_and_nothing_is_created() {
    let world = World::new();
    let mut canary = canary();
    canary.spec.target_ref.kind = crate::crd::canary::TargetKind::DaemonSet;
    let (_, calls, canary) = tick(&world, &canary, objects(&canary, Vec::new())).await;
    assert_eq!(
        lines(&calls),
        vec![format!("PATCH {}?&fieldManager=serin", paths::STATUS), format!("POST {}?", paths::EVENTS)]
    );
    let message = "invalid spec: spec.targetRef.kind: DaemonSet targets are not supported by Serin yet; \
                   release a Deployment";
    assert_eq!(calls[1].body["reason"], "InvalidSpec");
    assert_eq!(calls[1].body["note"], message);
    let conditions = canary.status.and_then(|s| s.conditions).unwrap_or_default();
    let stalled = conditions.iter().find(|c| c.type_ == "Stalled").expect("Stalled condition");
    assert_eq!((stalled.status.as_str(), stalled.message.as_str()), ("True", message));
}
