//! The real reconcile loop (`serin controller`'s `run`) against the Kubernetes API stand-in,
//! with the `kubernetes` (blue/green) router: initialisation, a promoted release, and a release
//! rolled back by a failing webhook. A small task plays the Deployment controller: it copies
//! each Deployment's desired replicas into its status, as a rolled-out Deployment reports.

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use serin::analysis::builtin::GatewayMetrics;
use serin::controller::context::Settings;
use serin::controller::run::{RunConfig, run};
use serin::crd::{Canary, CanaryPhase, Provider};
use serin_e2e::{ApiServer, ServerConfig};

const NS: &str = "default";

pub(crate) async fn install_crds(client: &Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in serin::crd::all_crds() {
        let name = crd.name_any();
        api.patch(&name, &PatchParams::apply("test").force(), &Patch::Apply(&crd))
            .await
            .expect("CRD applied");
    }
}

/// Plays the Deployment controller: status follows spec at once.
pub(crate) async fn deployment_status_loop(client: Client) {
    let api: Api<Deployment> = Api::namespaced(client, NS);
    loop {
        if let Ok(list) = api.list(&ListParams::default()).await {
            for d in list.items {
                let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                let generation = d.metadata.generation.unwrap_or(1);
                let current = d.status.as_ref();
                let done = current.is_some_and(|s| {
                    s.observed_generation == Some(generation) && s.available_replicas.unwrap_or(0) == replicas
                });
                if !done {
                    let status = json!({"status": {"observedGeneration": generation, "replicas": replicas,
                        "updatedReplicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas}});
                    let _ = api
                        .patch_status(&d.name_any(), &PatchParams::default(), &Patch::Merge(&status))
                        .await;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A webhook receiver answering with the status code in `code`.
pub(crate) async fn hook_server(code: Arc<AtomicU16>) -> String {
    let app = Router::new().route(
        "/",
        post(move || {
            let code = code.clone();
            async move { StatusCode::from_u16(code.load(Ordering::SeqCst)).unwrap_or(StatusCode::OK) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/")
}

/// A running test bed: the API stand-in with Serin's CRDs, the Deployment-status loop, a
/// `podinfo` Deployment (`demo:1.0.0`) and a Canary with `spec`.
struct Bed {
    server: ApiServer,
    client: Client,
    deployments: Api<Deployment>,
    canaries: Api<Canary>,
}

async fn bed(replicas: i32, canary_spec: serde_json::Value) -> Bed {
    let server = ApiServer::start(ServerConfig {
        bookmark_interval: Duration::from_millis(500),
        ..ServerConfig::default()
    })
    .await
    .expect("API stand-in starts");
    let client = server.client().expect("client");
    install_crds(&client).await;
    tokio::spawn(deployment_status_loop(client.clone()));
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let target = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "podinfo", "namespace": NS},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "podinfo"}},
            "template": {"metadata": {"labels": {"app": "podinfo"}},
                "spec": {"containers": [{"name": "app", "image": "demo:1.0.0"}]}}}
    });
    deployments
        .create(&PostParams::default(), &serde_json::from_value(target).expect("deployment"))
        .await
        .expect("target created");
    let canaries: Api<Canary> = Api::namespaced(client.clone(), NS);
    let canary = json!({"apiVersion": "serin.dev/v1alpha1", "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": NS}, "spec": canary_spec});
    canaries
        .create(&PostParams::default(), &serde_json::from_value(canary).expect("canary"))
        .await
        .expect("canary created");
    Bed { server, client, deployments, canaries }
}

pub(crate) async fn wait_for<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..600 {
        if let Some(value) = probe().await {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

fn image_of(d: &Deployment) -> String {
    d.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.containers[0].image.clone())
        .unwrap_or_default()
}

fn replicas_of(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(-1)
}

pub(crate) async fn set_image(deployments: &Api<Deployment>, image: &str) {
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}});
    deployments.patch("podinfo", &PatchParams::apply("flux").force(), &Patch::Apply(&json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "podinfo"},
        "spec": {"selector": {"matchLabels": {"app": "podinfo"}},
            "template": {"metadata": {"labels": {"app": "podinfo"}}, "spec": patch["spec"]["template"]["spec"]}}
    }))).await.expect("image updated");
}

pub(crate) async fn phase(canaries: &Api<Canary>) -> Option<CanaryPhase> {
    canaries.get("podinfo").await.ok().and_then(|c| c.status).and_then(|s| s.phase)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blue_green_release_is_promoted_then_a_failing_one_is_rolled_back() {
    let hook_code = Arc::new(AtomicU16::new(200));
    let hook_url = hook_server(hook_code.clone()).await;
    let Bed { server, client, deployments, canaries } = bed(
        2,
        json!({"provider": "kubernetes",
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
        "progressDeadlineSeconds": 60,
        "service": {"port": 80, "targetPort": 9898},
        "analysis": {"interval": "1s", "threshold": 2, "iterations": 2,
            "webhooks": [{"name": "smoke", "type": "rollout", "url": hook_url, "timeout": "2s"}]}}),
    )
    .await;
    let controller = tokio::spawn(run(client.clone(), run_config()));

    // Initialisation: primary, Services, apex on the primary, target scaled to zero.
    wait_for("Initialized", async || {
        (phase(&canaries).await == Some(CanaryPhase::Initialized)).then_some(())
    })
    .await;
    let primary = deployments.get("podinfo-primary").await.expect("primary exists");
    assert_eq!(image_of(&primary), "demo:1.0.0");
    assert_eq!(
        primary
            .spec
            .as_ref()
            .and_then(|s| s.selector.match_labels.clone())
            .and_then(|m| m.get("app").cloned())
            .as_deref(),
        Some("podinfo-primary")
    );
    let services: Api<Service> = Api::namespaced(client.clone(), NS);
    let apex_selector = async || {
        services
            .get("podinfo")
            .await
            .ok()
            .and_then(|s| s.spec)
            .and_then(|s| s.selector)
            .and_then(|s| s.get("app").cloned())
    };
    assert_eq!(apex_selector().await.as_deref(), Some("podinfo-primary"));
    for name in ["podinfo-primary", "podinfo-canary"] {
        services.get(name).await.unwrap_or_else(|e| panic!("service {name}: {e}"));
    }
    wait_for("target scaled to zero", async || {
        (replicas_of(&deployments.get("podinfo").await.ok()?) == 0).then_some(())
    })
    .await;

    // A healthy release: analysed, switched, promoted.
    set_image(&deployments, "demo:2.0.0").await;
    wait_for("Succeeded", async || (phase(&canaries).await == Some(CanaryPhase::Succeeded)).then_some(()))
        .await;
    let primary = deployments.get("podinfo-primary").await.expect("primary");
    assert_eq!(image_of(&primary), "demo:2.0.0", "the primary runs the promoted version");
    assert_eq!(apex_selector().await.as_deref(), Some("podinfo-primary"), "traffic back on the primary");
    wait_for("target scaled to zero after promotion", async || {
        (replicas_of(&deployments.get("podinfo").await.ok()?) == 0).then_some(())
    })
    .await;
    let status = canaries.get("podinfo").await.expect("canary").status.expect("status");
    assert_eq!(status.last_promoted_spec, status.last_applied_spec);

    // A failing release: the rollout webhook answers 500; two failed checks roll it back.
    hook_code.store(500, Ordering::SeqCst);
    set_image(&deployments, "demo:3.0.0").await;
    wait_for("Failed", async || (phase(&canaries).await == Some(CanaryPhase::Failed)).then_some(())).await;
    let status = canaries.get("podinfo").await.expect("canary").status.expect("status");
    assert!(status.failed_checks.unwrap_or(0) >= 2, "{status:?}");
    let quarantined = status.failed_revisions.unwrap_or_default();
    assert_eq!(quarantined.len(), 1, "the failed revision is quarantined");
    assert_eq!(
        image_of(&deployments.get("podinfo-primary").await.expect("primary")),
        "demo:2.0.0",
        "primary untouched"
    );
    assert_eq!(apex_selector().await.as_deref(), Some("podinfo-primary"), "traffic on the primary");
    wait_for("target scaled to zero after rollback", async || {
        (replicas_of(&deployments.get("podinfo").await.ok()?) == 0).then_some(())
    })
    .await;

    controller.abort();
    server.shutdown().await;
}

fn run_config() -> RunConfig {
    RunConfig {
        namespace: Some(NS.into()),
        settings: Settings {
            default_provider: Provider::Kubernetes,
            metrics_server: None,
            gateway_metrics: GatewayMetrics::Envoy,
            cluster_name: None,
            max_concurrent_canaries: None,
            default_alert_provider: None,
            shard: None,
        },
        listen: "127.0.0.1:0".parse().expect("addr"),
        leader_election: None,
        git_cache_dir: None,
        workers: serin::cli::DEFAULT_WORKERS,
    }
}

/// Kills the controller mid-analysis and starts a fresh one (no in-memory state): the run
/// continues from the stored status and the release is promoted exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_controller_continues_the_run_and_promotes_once() {
    let Bed { server, client, deployments, canaries } = bed(
        1,
        json!({"provider": "kubernetes",
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
        "service": {"port": 80},
        "analysis": {"interval": "1s", "threshold": 1, "iterations": 6}}),
    )
    .await;

    let first = tokio::spawn(run(client.clone(), run_config()));
    wait_for("Initialized", async || {
        (phase(&canaries).await == Some(CanaryPhase::Initialized)).then_some(())
    })
    .await;
    set_image(&deployments, "demo:2.0.0").await;
    let iterations = async || canaries.get("podinfo").await.ok()?.status?.iterations;
    let before = wait_for("two iterations", async || iterations().await.filter(|i| *i >= 2)).await;
    first.abort();
    let _ = first.await;
    assert_eq!(phase(&canaries).await, Some(CanaryPhase::Progressing));

    let second = tokio::spawn(run(client.clone(), run_config()));
    let after = wait_for("a tick of the new controller", async || {
        let status = canaries.get("podinfo").await.ok()?.status?;
        (status.phase == Some(CanaryPhase::Succeeded) || status.iterations != Some(before)).then_some(status)
    })
    .await;
    assert!(
        after.phase == Some(CanaryPhase::Succeeded) || after.iterations.unwrap_or(0) > before,
        "the run continued from iteration {before}, not from the start: {after:?}"
    );
    wait_for("Succeeded", async || (phase(&canaries).await == Some(CanaryPhase::Succeeded)).then_some(()))
        .await;
    let primary = deployments.get("podinfo-primary").await.expect("primary");
    assert_eq!(image_of(&primary), "demo:2.0.0");
    // Created once, its template changed once by the promotion: a second promotion would have
    // been a no-op apply, but a re-run from the start would show as a second Progressing run.
    assert_eq!(primary.metadata.generation, Some(2), "one promotion");
    let status = canaries.get("podinfo").await.expect("canary").status.expect("status");
    assert_eq!(status.last_promoted_spec, status.last_applied_spec);
    second.abort();
    server.shutdown().await;
}
