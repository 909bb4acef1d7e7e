//! The benchmark fleet: N Deployments with their Canaries in one namespace, created with
//! bounded concurrency, and a rollout-status writer standing in for the Deployment controller
//! (no pods run: every Deployment is reported rolled out as soon as its generation changes).

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
    runtime::{WatchStreamExt, watcher},
};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::{error::BedError, manifests};

/// Namespace of every benchmark object.
pub const NAMESPACE: &str = "bench";
/// Name prefix of the benchmark apps; the responder finds the canary by it.
pub const PREFIX: &str = "app-";
/// Requests in flight while creating or patching the fleet.
const CONCURRENCY: usize = 16;

/// Name of app `index`: `app-00042`.
pub fn name(index: u32) -> String {
    format!("{PREFIX}{index:05}")
}

/// How the Canaries analyse.
#[derive(Debug, Clone)]
pub struct CanaryShape {
    /// `analysis.interval` in seconds.
    pub interval_secs: u64,
    /// `analysis.threshold`.
    pub threshold: u32,
    /// `analysis.stepWeight`.
    pub step_weight: u32,
    /// `analysis.maxWeight`.
    pub max_weight: u32,
    /// Builtin metrics to check (`request-success-rate`, `request-duration`).
    pub metrics: Vec<&'static str>,
}

/// The Canary of app `index`: Gateway API router, builtin metrics.
pub fn canary(index: u32, shape: &CanaryShape) -> Value {
    let name = name(index);
    let metrics: Vec<Value> = shape
        .metrics
        .iter()
        .map(|m| match *m {
            "request-duration" => json!({"name": m, "interval": "1m", "thresholdRange": {"max": 500}}),
            _ => json!({"name": m, "interval": "1m", "thresholdRange": {"min": 99}}),
        })
        .collect();
    json!({
        "apiVersion": "serin.dev/v1alpha1",
        "kind": "Canary",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "provider": "gatewayapi:v1",
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "progressDeadlineSeconds": 3600,
            "service": {
                "port": 80,
                "hosts": [format!("{name}.bench.local")],
                "gatewayRefs": [{"name": "gateway", "namespace": NAMESPACE}],
            },
            "analysis": {
                "interval": format!("{}s", shape.interval_secs),
                "threshold": shape.threshold,
                "stepWeight": shape.step_weight,
                "maxWeight": shape.max_weight,
                "metrics": metrics,
            },
        },
    })
}

/// Creates the namespace and `count` Deployments (image `demo:1.0.0`, 1 replica) with their
/// Canaries.
pub async fn create(client: &Client, count: u32, shape: &CanaryShape) -> Result<(), BedError> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = serde_json::from_value(manifests::namespace(NAMESPACE))
        .map_err(|e| BedError::Parse(e.to_string()))?;
    namespaces.create(&PostParams::default(), &ns).await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    let canaries: Api<kube::api::DynamicObject> = Api::namespaced_with(
        client.clone(),
        NAMESPACE,
        &kube::api::ApiResource {
            group: "serin.dev".into(),
            version: "v1alpha1".into(),
            api_version: "serin.dev/v1alpha1".into(),
            kind: "Canary".into(),
            plural: "canaries".into(),
        },
    );
    futures::stream::iter(0..count)
        .map(|i| {
            let (deployments, canaries) = (deployments.clone(), canaries.clone());
            async move {
                let d: Deployment =
                    serde_json::from_value(manifests::deployment(NAMESPACE, &name(i), "demo:1.0.0", 1))
                        .map_err(|e| BedError::Parse(e.to_string()))?;
                deployments.create(&PostParams::default(), &d).await?;
                let c =
                    serde_json::from_value(canary(i, shape)).map_err(|e| BedError::Parse(e.to_string()))?;
                canaries.create(&PostParams::default(), &c).await?;
                Ok::<(), BedError>(())
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// Changes app `index`'s image: a new revision the controller starts a release for.
pub async fn release(client: &Client, index: u32, image: &str) -> Result<(), BedError> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "demo", "image": image}]}}}});
    deployments.patch(&name(index), &PatchParams::default(), &Patch::Strategic(&patch)).await?;
    Ok(())
}

/// The rollout status a finished Deployment controller would write, or `None` if `d` already
/// has it.
fn rolled_out_status(d: &Deployment) -> Option<Value> {
    let generation = d.metadata.generation.unwrap_or(0);
    let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let status = d.status.clone().unwrap_or_default();
    let done = status.observed_generation == Some(generation)
        && status.replicas.unwrap_or(0) == replicas
        && status.updated_replicas.unwrap_or(0) == replicas
        && status.available_replicas.unwrap_or(0) == replicas;
    (!done).then(|| {
        json!({"status": {
            "observedGeneration": generation,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
            "unavailableReplicas": 0,
            "conditions": [
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
            ],
        }})
    })
}

/// Marks every Deployment of the namespace rolled out whenever it changes, until dropped.
pub struct RolloutWriter {
    task: JoinHandle<()>,
}

impl Drop for RolloutWriter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RolloutWriter {
    /// Starts watching.
    pub fn start(client: Client) -> Self {
        let api: Api<Deployment> = Api::namespaced(client, NAMESPACE);
        let task = tokio::spawn(async move {
            let events = watcher(api.clone(), watcher::Config::default()).default_backoff().applied_objects();
            events
                .for_each_concurrent(CONCURRENCY, |d| {
                    let api = api.clone();
                    async move {
                        let Ok(d) = d else {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            return;
                        };
                        if let (Some(name), Some(status)) =
                            (d.metadata.name.as_deref(), rolled_out_status(&d))
                        {
                            let _ =
                                api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status)).await;
                        }
                    }
                })
                .await;
        });
        RolloutWriter { task }
    }
}
