//! A blue/green release promoted: new revision, one iteration, all traffic to the canary for a
//! checked tick, primary updated, traffic back to the primary, target scaled down.

use pretty_assertions::assert_eq;
use serde_json::json;

use super::fakes::{World, hook_names};
use super::*;
use crate::crd::CanaryPhase;

const APPLY_PRIMARY: &str =
    "/apis/apps/v1/namespaces/test/deployments/podinfo-primary?&force=true&fieldManager=serin";
const ROUTE: &str = "/api/v1/namespaces/test/services/podinfo?&force=true&fieldManager=serin-router";
const SCALE_TARGET: &str = "/apis/apps/v1/namespaces/test/deployments/podinfo?&fieldManager=serin";
const WRITE_STATUS: &str =
    "/apis/serin.dev/v1alpha1/namespaces/test/canaries/podinfo/status?&fieldManager=serin";

fn phase(canary: &Canary) -> Option<CanaryPhase> {
    canary.status.as_ref().and_then(|s| s.phase)
}

#[tokio::test]
async fn a_passing_release_is_promoted_with_exactly_these_calls() {
    let world = World::new();
    let canary = initialized(&world).await;
    world.metrics.set(0.0);
    release(&world, "demo:2.0.0");
    let read_route = format!("GET {}", paths::APEX);
    let status = format!("PATCH {WRITE_STATUS}");

    // New revision: the target is scaled back up to the primary's replicas.
    let (_, calls, canary) = tick(&world, &canary, rolled_out(&world, &canary)).await;
    assert_eq!(
        writes_and_reads(&calls),
        vec![read_route.clone(), format!("PATCH {SCALE_TARGET}"), status.clone()]
    );
    assert_eq!(body_of(&calls, "PATCH", SCALE_TARGET), &json!({"spec": {"replicas": 2}}));
    assert_eq!(event_reasons(&calls), vec!["NewRevision"]);
    assert_eq!(phase(&canary), Some(CanaryPhase::Progressing));
    let revision = canary.status.as_ref().and_then(|s| s.last_applied_spec.clone()).expect("revision");

    // Pre-rollout stage (no pre-rollout hooks), then iteration 1/1: only status changes.
    let (_, calls, canary) = tick(&world, &canary, rolled_out(&world, &canary)).await;
    assert_eq!(writes_and_reads(&calls), vec![read_route.clone(), status.clone()]);
    assert_eq!(event_reasons(&calls), vec!["Advance"]);
    assert_eq!(canary.status.as_ref().and_then(|s| s.iterations), Some(1));
    // The status write is a merge patch of what changed, not the whole status.
    let written = &body_of(&calls, "PATCH", WRITE_STATUS)["status"];
    assert_eq!(written["iterations"], json!(1));
    assert!(written.get("lastAppliedSpec").is_none() && written.get("phase").is_none(), "{written}");
    assert!(world.webhooks.calls().is_empty() && world.metrics.queries().is_empty());

    // Checks pass: all traffic to the canary (the apex selects the target's pods).
    let (_, calls, canary) = tick(&world, &canary, rolled_out(&world, &canary)).await;
    assert_eq!(writes_and_reads(&calls), vec![read_route.clone(), format!("PATCH {ROUTE}"), status.clone()]);
    assert_eq!(body_of(&calls, "PATCH", ROUTE)["spec"], json!({"selector": {"app": "podinfo"}}));
    assert_eq!(canary.status.as_ref().and_then(|s| s.canary_weight), Some(100));
    assert_eq!(hook_names(&world), vec!["smoke"]);
    assert_eq!(world.metrics.queries(), vec!["sum(rate(http_errors_total[1m]))"]);

    // Checks pass again with all traffic on the canary: promote (copy the template).
    let (_, calls, canary) = tick(&world, &canary, rolled_out(&world, &canary)).await;
    assert_eq!(
        writes_and_reads(&calls),
        vec![read_route.clone(), format!("PATCH {APPLY_PRIMARY}"), status.clone()]
    );
    let primary = body_of(&calls, "PATCH", APPLY_PRIMARY);
    assert_eq!(primary["spec"]["template"]["spec"]["containers"][0]["image"], "demo:2.0.0");
    assert_eq!(
        primary["spec"]["template"]["metadata"]["annotations"]["serin.dev/revision"],
        revision.as_str()
    );
    assert_eq!(primary["spec"]["selector"], json!({"matchLabels": {"app": "podinfo-primary"}}));
    assert_eq!(primary["spec"]["replicas"], 2);
    assert_eq!(event_reasons(&calls), vec!["Promoting"]);
    assert_eq!(phase(&canary), Some(CanaryPhase::Promoting));

    // The primary runs the new template: traffic back to it.
    let (_, calls, canary) = tick(&world, &canary, rolled_out(&world, &canary)).await;
    assert_eq!(writes_and_reads(&calls), vec![read_route.clone(), format!("PATCH {ROUTE}"), status.clone()]);
    assert_eq!(body_of(&calls, "PATCH", ROUTE)["spec"], json!({"selector": {"app": "podinfo-primary"}}));
    assert_eq!(event_reasons(&calls), vec!["Finalising"]);
    assert_eq!(phase(&canary), Some(CanaryPhase::Finalising));

    // Finalising: the target goes to zero, Succeeded.
    let (_, calls, canary) = tick(&world, &canary, rolled_out(&world, &canary)).await;
    assert_eq!(writes_and_reads(&calls), vec![read_route.clone(), format!("PATCH {SCALE_TARGET}"), status]);
    assert_eq!(body_of(&calls, "PATCH", SCALE_TARGET), &json!({"spec": {"replicas": 0}}));
    assert_eq!(event_reasons(&calls), vec!["Succeeded"]);
    let settled = canary.status.clone().expect("status");
    assert_eq!(settled.phase, Some(CanaryPhase::Succeeded));
    assert_eq!(settled.last_promoted_spec.as_deref(), Some(revision.as_str()));
    let titles: Vec<_> = world.notifiers.wait_for(3).await.into_iter().map(|(_, n)| n.title).collect();
    assert_eq!(titles, vec!["Initialized", "New revision", "Promoted"]);

    // Deciding again promotes nothing twice: a read, no write.
    let (_, calls, _) = tick(&world, &canary, rolled_out(&world, &canary)).await;
    assert_eq!(lines(&calls), vec![read_route]);
    assert!(world.git.requests().is_empty(), "a promotion reverts nothing");
}
