//! `--max-concurrent-canaries` with the real reconcile loop against the API stand-in: two
//! canaries get a new release at the same moment under a limit of one; one progresses, the
//! other keeps its phase with the `Queued` condition, and starts once the first is promoted.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use serin::analysis::builtin::GatewayMetrics;
use serin::controller::context::Settings;
use serin::controller::run::{RunConfig, run};
use serin::crd::{Canary, CanaryPhase, Provider};
use serin_e2e::{ApiServer, ServerConfig};

use crate::controller_blue_green::{deployment_status_loop, install_crds, wait_for};

const APPS: [&str; 2] = ["alpha", "beta"];

fn deployment(name: &str, image: &str) -> serde_json::Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image}]}}}})
}

async fn phases(canaries: &Api<Canary>) -> Vec<Option<CanaryPhase>> {
    let mut out = Vec::new();
    for name in APPS {
        out.push(canaries.get(name).await.ok().and_then(|c| c.status).and_then(|s| s.phase));
    }
    out
}

fn queued(canary: &Canary) -> bool {
    canary.status.iter().flat_map(|s| s.conditions.iter().flatten()).any(|c| {
        c.type_ == "Reconciling"
            && c.reason == "Queued"
            && c.message.contains("--max-concurrent-canaries is 1")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_release_waits_for_the_first_under_a_limit_of_one() {
    let server = ApiServer::start(ServerConfig {
        bookmark_interval: Duration::from_millis(500),
        ..ServerConfig::default()
    })
    .await
    .expect("API stand-in");
    let client = server.client().expect("client");
    install_crds(&client).await;
    tokio::spawn(deployment_status_loop(client.clone()));
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let canaries: Api<Canary> = Api::namespaced(client.clone(), "default");
    for name in APPS {
        let d: Deployment = serde_json::from_value(deployment(name, "demo:1.0.0")).expect("deployment");
        deployments.create(&PostParams::default(), &d).await.expect("target");
        let c: Canary = serde_json::from_value(json!({"apiVersion": "serin.dev/v1alpha1", "kind": "Canary",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"provider": "kubernetes",
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                "service": {"port": 80},
                "analysis": {"interval": "1s", "threshold": 1, "iterations": 4}}}))
        .expect("canary");
        canaries.create(&PostParams::default(), &c).await.expect("canary");
    }
    let config = RunConfig {
        namespace: Some("default".into()),
        settings: Settings {
            default_provider: Provider::Kubernetes,
            metrics_server: None,
            gateway_metrics: GatewayMetrics::Envoy,
            cluster_name: None,
            max_concurrent_canaries: Some(1),
            default_alert_provider: None,
            shard: None,
        },
        listen: "127.0.0.1:0".parse().expect("addr"),
        leader_election: None,
        git_cache_dir: None,
        workers: serin::cli::DEFAULT_WORKERS,
    };
    let controller = tokio::spawn(run(client.clone(), config));
    let initialized = Some(CanaryPhase::Initialized);
    wait_for("both Initialized", async || (phases(&canaries).await == [initialized; 2]).then_some(())).await;

    // Both targets change at once.
    for name in APPS {
        let apply = deployment(name, "demo:2.0.0");
        deployments
            .patch(name, &PatchParams::apply("flux").force(), &Patch::Apply(&apply))
            .await
            .expect("new image");
    }
    let (first, second) = wait_for("one progressing, one queued", async || {
        let list: Vec<Canary> =
            futures::future::join_all(APPS.map(|n| canaries.get(n))).await.into_iter().flatten().collect();
        let running = list
            .iter()
            .position(|c| c.status.as_ref().and_then(|s| s.phase) == Some(CanaryPhase::Progressing))?;
        let other = 1 - running;
        queued(&list[other]).then_some((APPS[running], APPS[other]))
    })
    .await;

    // While the first runs, the second never leaves Initialized.
    let mut first_done = false;
    for _ in 0..600 {
        let a = canaries.get(first).await.expect("first").status.and_then(|s| s.phase);
        let b = canaries.get(second).await.expect("second").status.and_then(|s| s.phase);
        if a == Some(CanaryPhase::Succeeded) {
            first_done = true;
            break;
        }
        assert_eq!(b, initialized, "{second} started while {first} was {a:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(first_done, "{first} was promoted");
    wait_for("the second promoted", async || {
        (canaries.get(second).await.ok()?.status?.phase == Some(CanaryPhase::Succeeded)).then_some(())
    })
    .await;
    let second = canaries.get(second).await.expect("second");
    assert!(!queued(&second), "the Queued condition is gone once it ran: {:?}", second.status);
    controller.abort();
    server.shutdown().await;
}
