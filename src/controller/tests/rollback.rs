//! A failing release rolled back: failed checks up to the threshold, then traffic to the
//! primary, the target scaled down, the Git revert, the alert with the revert commit; deciding
//! again repeats none of it.

use pretty_assertions::assert_eq;
use serde_json::json;

use super::fakes::{REVERT_SHA, World};
use super::*;
use crate::crd::CanaryPhase;
use crate::crd::status::GitRevertState;

const SCALE_TARGET: &str = "/apis/apps/v1/namespaces/test/deployments/podinfo?&fieldManager=serin";
const ROUTE: &str = "/api/v1/namespaces/test/services/podinfo?&force=true&fieldManager=serin-router";
const WRITE_STATUS: &str =
    "/apis/serin.dev/v1alpha1/namespaces/test/canaries/podinfo/status?&fieldManager=serin";

#[tokio::test]
async fn a_failing_release_is_rolled_back_and_reverted_once() {
    let world = World::new();
    let canary = initialized(&world).await;
    release(&world, "demo:2.0.0");
    world.metrics.set(5.0); // error rate above the maximum of 1
    let read_route = format!("GET {}", paths::APEX);
    let status = format!("PATCH {WRITE_STATUS}");

    // New revision, then the pre-rollout stage: the run is on.
    let (_, _, canary) = tick(&world, &canary, rolled_out(&world, &canary)).await;
    let (_, _, canary) = tick(&world, &canary, rolled_out(&world, &canary)).await;
    let revision = canary.status.as_ref().and_then(|s| s.last_applied_spec.clone()).expect("revision");
    assert_eq!(canary.status.as_ref().and_then(|s| s.iterations), Some(1));

    // First failed check: halt, count it, touch nothing.
    let (_, calls, canary) = tick(&world, &canary, rolled_out(&world, &canary)).await;
    assert_eq!(writes_and_reads(&calls), vec![read_route.clone(), status.clone()]);
    assert_eq!(event_reasons(&calls), vec!["CheckFailed"]);
    assert_eq!(canary.status.as_ref().and_then(|s| s.failed_checks), Some(1));

    // Second failed check reaches the threshold: roll back in this tick.
    let (_, calls, canary) = tick(&world, &canary, rolled_out(&world, &canary)).await;
    assert_eq!(
        writes_and_reads(&calls),
        vec![read_route.clone(), format!("PATCH {ROUTE}"), format!("PATCH {SCALE_TARGET}"), status]
    );
    assert_eq!(body_of(&calls, "PATCH", ROUTE)["spec"], json!({"selector": {"app": "podinfo-primary"}}));
    assert_eq!(body_of(&calls, "PATCH", SCALE_TARGET), &json!({"spec": {"replicas": 0}}));
    // Traffic and scale first (above), then the revert, then the rollback's own Event.
    assert_eq!(event_reasons(&calls), vec!["CheckFailed", "GitReverted", "FailedChecksThresholdReached"]);
    let last_write = calls.iter().rposition(|c| c.method != http::Method::POST && c.uri != WRITE_STATUS);
    let revert_event = calls.iter().position(|c| c.body["reason"] == "GitReverted");
    assert!(last_write < revert_event, "the revert comes after the traffic and scale changes");

    let requests = world.git.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.failed.revision, revision);
    assert_eq!(request.failed.images, vec!["demo:2.0.0"]);
    assert_eq!(
        (request.source.url.as_str(), request.source.branch.as_str()),
        ("https://git.example/apps.git", "main")
    );
    assert_eq!(request.canary.to_string(), "test/podinfo");
    assert_eq!(request.failed_checks, vec!["error-rate"]);

    let failed = canary.status.clone().expect("status");
    assert_eq!(failed.phase, Some(CanaryPhase::Failed));
    assert_eq!(failed.failed_checks, Some(2));
    let gitops = failed.gitops.clone().expect("revert recorded");
    assert_eq!((gitops.state, gitops.revert_commit.as_deref()), (GitRevertState::Pushed, Some(REVERT_SHA)));
    let quarantined: Vec<_> = failed.failed_revisions.iter().flatten().map(|f| f.revision.clone()).collect();
    assert_eq!(quarantined, vec![revision]);
    let alerts = world.notifiers.wait_for(3).await;
    let rollback = alerts.iter().map(|(_, n)| n).find(|n| n.title == "Rolled back").expect("rollback alert");
    assert_eq!(rollback.fields.get("Revert commit").map(String::as_str), Some(REVERT_SHA));

    // Deciding again from the stored status (fresh Context): no second revert, no write.
    let (_, calls, _) = tick(&world, &canary, rolled_out(&world, &canary)).await;
    assert_eq!(lines(&calls), vec![read_route]);
    assert_eq!(world.git.requests().len(), 1);
}
