//! Reconciler tests: `reconcile` for one Canary, caches filled from literal objects, every
//! external system faked in memory ([`fakes`]) and the Kubernetes API mocked ([`apiserver`]).
//! Each test asserts the exact API calls of a tick (method, path and query) and the essential
//! parts of their bodies. A fresh [`Context`](crate::controller::context::Context) per tick
//! throws away all in-memory state: only the Canary's stored status carries a release on.

mod apiserver;
mod fakes;
mod initialization;
mod promotion;
mod rollback;

use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use kube::runtime::controller::Action;
use serde_json::{Value, json};

use crate::controller::reconcile::reconcile;
use crate::controller::stores::testing::Objects;
use crate::crd::{AlertProvider, Canary};
use apiserver::Call;
use fakes::World;

/// Where the mock API keeps the objects of these tests.
pub(crate) mod paths {
    /// The target Deployment.
    pub const TARGET: &str = "/apis/apps/v1/namespaces/test/deployments/podinfo";
    /// The primary Deployment.
    pub const PRIMARY: &str = "/apis/apps/v1/namespaces/test/deployments/podinfo-primary";
    /// The apex Service.
    pub const APEX: &str = "/api/v1/namespaces/test/services/podinfo";
    /// The Canary's status subresource.
    pub const STATUS: &str = "/apis/serin.dev/v1alpha1/namespaces/test/canaries/podinfo/status";
    /// Events.
    pub const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/test/events";
}

/// The blue/green Canary of these tests: `kubernetes` router, one iteration, threshold 2, an
/// error-rate metric (max 1), a `rollout` smoke hook, an alert, and Git revert on an explicit
/// source.
pub fn canary() -> Canary {
    serde_json::from_value(json!({
        "apiVersion": "serin.dev/v1alpha1", "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": "test", "uid": "0c0ffee0-uid", "generation": 1,
            "resourceVersion": "7"},
        "spec": {
            "provider": "kubernetes",
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 80, "targetPort": 9898},
            "analysis": {"interval": "30s", "threshold": 2, "iterations": 1,
                "metrics": [{"name": "error-rate", "query": "sum(rate(http_errors_total[1m]))",
                    "thresholdRange": {"max": 1}}],
                "webhooks": [{"name": "smoke", "type": "rollout", "url": "http://hooks.test/smoke"}],
                "alerts": [{"name": "team", "severity": "info", "providerRef": {"name": "chat"}}]},
            "gitops": {"revert": true,
                "source": {"url": "https://git.example/apps.git", "branch": "main", "path": "apps/podinfo"}}
        }
    }))
    .expect("canary")
}

/// The target Deployment running `image`, rolled out with 2 replicas.
pub fn target(image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "podinfo", "namespace": "test", "generation": 1},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "podinfo"}},
            "template": {"metadata": {"labels": {"app": "podinfo"}},
                "spec": {"containers": [{"name": "app", "image": image}]}}},
        "status": {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2,
            "availableReplicas": 2}
    })
}

/// The AlertProvider `chat` of the Canary's alert.
pub fn alert_provider() -> AlertProvider {
    serde_json::from_value(json!({
        "apiVersion": "serin.dev/v1alpha1", "kind": "AlertProvider",
        "metadata": {"name": "chat", "namespace": "test"},
        "spec": {"type": "slack", "address": "https://chat.test/hook"}
    }))
    .expect("alert provider")
}

/// Caches holding `canary`, the AlertProvider and `deployments`.
pub fn objects(canary: &Canary, deployments: Vec<Deployment>) -> Objects {
    Objects {
        canaries: vec![canary.clone()],
        deployments,
        alert_providers: vec![alert_provider()],
        ..Objects::default()
    }
}

/// A Deployment from JSON.
pub fn deployment(value: Value) -> Deployment {
    serde_json::from_value(value).expect("deployment")
}

/// One reconcile of `canary` against caches holding `objects`, on a fresh Context. Returns
/// the action, the API calls it made, and the Canary with the status the API now stores
/// (`lastTick` cleared, as if the interval had passed).
pub async fn tick(world: &World, canary: &Canary, objects: Objects) -> (Action, Vec<Call>, Canary) {
    world.api.take_calls();
    let action = reconcile(Arc::new(canary.clone()), world.context(objects)).await.expect("reconcile");
    let calls = world.api.take_calls();
    let mut next = canary.clone();
    if let Some(stored) = world.api.get(paths::STATUS) {
        let mut status = stored["status"].clone();
        if let Some(map) = status.as_object_mut() {
            map.remove("lastTick");
        }
        next.status = Some(serde_json::from_value(status).expect("status"));
    }
    (action, calls, next)
}

/// `"METHOD uri"` of each call.
pub fn lines(calls: &[Call]) -> Vec<String> {
    calls.iter().map(Call::line).collect()
}

/// The reasons of the Events among `calls`, in order.
pub fn event_reasons(calls: &[Call]) -> Vec<String> {
    calls
        .iter()
        .filter(|c| c.uri.starts_with(paths::EVENTS))
        .map(|c| c.body["reason"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The calls that are not Events, as `"METHOD uri"`.
pub fn writes_and_reads(calls: &[Call]) -> Vec<String> {
    calls.iter().filter(|c| !c.uri.starts_with(paths::EVENTS)).map(Call::line).collect()
}

/// The body of the only call to `uri` with `method`.
pub fn body_of<'a>(calls: &'a [Call], method: &str, uri: &str) -> &'a Value {
    let found: Vec<_> = calls.iter().filter(|c| c.method.as_str() == method && c.uri == uri).collect();
    assert_eq!(found.len(), 1, "one {method} {uri} in {:#?}", lines(calls));
    &found[0].body
}

/// Runs initialisation to `Initialized` (its calls are asserted in `initialization`) and
/// returns the Canary with its stored status; the target is scaled to zero.
pub async fn initialized(world: &World) -> Canary {
    world.api.put(paths::TARGET, target("demo:1.0.0"));
    let canary = canary();
    let (_, _, canary) = tick(world, &canary, objects(&canary, vec![deployment(target("demo:1.0.0"))])).await;
    let caches = vec![deployment(target("demo:1.0.0")), world.rolled_out("podinfo-primary")];
    let (_, _, canary) = tick(world, &canary, objects(&canary, caches)).await;
    assert_eq!(canary.status.as_ref().and_then(|s| s.phase), Some(crate::crd::CanaryPhase::Initialized));
    canary
}

/// Git (through Flux) changes the target's image: the mock API stores the new template, the
/// target keeps its replica count.
pub fn release(world: &World, image: &str) {
    let mut object = world.api.get(paths::TARGET).expect("target");
    object["spec"]["template"]["spec"]["containers"][0]["image"] = image.into();
    world.api.put(paths::TARGET, object);
}

/// Caches as they are once the target and the primary have rolled out what the API stores.
pub fn rolled_out(world: &World, canary: &Canary) -> Objects {
    objects(canary, vec![world.rolled_out("podinfo"), world.rolled_out("podinfo-primary")])
}

/// kube-runtime moves the reconcile future by value several times per reconcile (into its span,
/// into a spawned task, out again); a tick nests every await of its effects, so unboxed it is
/// kilobytes copied each time.
#[tokio::test]
async fn the_reconcile_future_is_small_whatever_a_tick_awaits() {
    let world = World::new();
    let canary = canary();
    let future = reconcile(Arc::new(canary.clone()), world.context(objects(&canary, Vec::new())));
    let size = std::mem::size_of_val(&future);
    assert!(size <= 1024, "the reconcile future is {size} bytes; box what it awaits");
}
