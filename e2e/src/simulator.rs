//! The Deployment simulator: the part of kube-controller-manager and the kubelet the test bed
//! needs. For every Deployment in the API stand-in it keeps `spec.replicas` local
//! `serin-demo-app` processes ("pods") running with the pod template's first container image,
//! replaces them when the template changes, and writes the Deployment status back through the
//! API as the deployment controller would.
//!
//! Design:
//! - A kube-runtime reflector watches Deployments in all namespaces; the loop reconciles every
//!   Deployment on each watch event and at least every [`SimulatorConfig::resync`].
//! - Rolling update is "surge everything": missing pods of the new template are started (each
//!   is ready once it answers `/healthz`), and only when all of them are ready are the old ones
//!   retired. Local processes start in milliseconds, so a rollout finishes within one pass.
//! - Order within a pass: the endpoint registry is updated first (new pods in, retired pods
//!   out), then retired pods are killed after [`DRAIN`] (a termination grace period for requests
//!   in flight), then the status is written. So once the status says "rolled out", every new
//!   request goes to the new pods, and no request is routed to a dead process.
//! - A pod is named `<deployment>-<template hash>-<5 characters>` like a ReplicaSet's pods, so
//!   the builtin `kubernetes` queries' `kubernetes_pod_name=~"<target>-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)"`
//!   matches canary pods and not `<target>-primary-…` pods.
//! - Endpoints live in a shared in-process registry, [`Endpoints`] (pod labels → 127.0.0.1
//!   port), read by the proxy. Nothing is written as Endpoints/EndpointSlices into the API.
//! - If [`SimulatorConfig::file_sd`] is set, the pod list is also written there as a Prometheus
//!   `file_sd` target file with the labels `kubernetes_namespace`, `kubernetes_pod_name`, `app`
//!   and `deployment` (the relabelling Flagger's Prometheus does), so the app's own
//!   `http_request_duration_seconds` series are scraped per pod.
//! - Status: `observedGeneration`, `replicas`, `updatedReplicas`, `readyReplicas`,
//!   `availableReplicas`, `unavailableReplicas`, and the `Available` and `Progressing`
//!   conditions (`NewReplicaSetAvailable` once complete, else `ReplicaSetUpdated`). It is
//!   written with a merge patch on `/status`, only when it changes.
//! - A pod process that exits is replaced on the next pass (like a restarted container). A pod
//!   that fails to start (e.g. image `demo:2.0.0-crash`) is retried at most once a second; the
//!   old pods keep serving, and once the rollout has not completed for
//!   `spec.progressDeadlineSeconds` (default 600) the `Progressing` condition turns `False`
//!   with reason `ProgressDeadlineExceeded`.
//! - Every process is started with `kill_on_drop` and a stdin pipe it watches: it is killed by
//!   PID when the simulator drops it, and exits on its own if the test process dies.

use std::{
    collections::{BTreeMap, HashMap, HashSet, hash_map::DefaultHasher},
    hash::{Hash, Hasher},
    net::SocketAddr,
    path::PathBuf,
    process::Stdio,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use kube::{
    Api, Client, ResourceExt,
    api::{Patch, PatchParams},
    runtime::{WatchStreamExt, reflector, watcher},
};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, ChildStdin, ChildStdout, Command},
    sync::watch,
    task::JoinHandle,
};
use tracing::{debug, info, warn};

use crate::{error::BedError, util};

/// One running pod: where it listens and what it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Namespace of the owning Deployment.
    pub namespace: String,
    /// Name of the owning Deployment (the Istio `destination_workload`).
    pub deployment: String,
    /// Pod name, `<deployment>-<hash>-<suffix>`.
    pub pod_name: String,
    /// The pod template's labels.
    pub labels: BTreeMap<String, String>,
    /// Image the pod runs.
    pub image: String,
    /// Listening address (127.0.0.1).
    pub addr: SocketAddr,
}

/// Shared registry of ready pods, written by the simulator and read by the proxy.
#[derive(Debug, Clone, Default)]
pub struct Endpoints {
    inner: Arc<RwLock<Vec<Endpoint>>>,
}

impl Endpoints {
    /// Every registered pod.
    pub fn all(&self) -> Vec<Endpoint> {
        self.inner.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Pods in `namespace` whose labels contain every pair of `selector` (a Service selector).
    /// An empty selector selects nothing, as for a Service.
    pub fn select(&self, namespace: &str, selector: &BTreeMap<String, String>) -> Vec<Endpoint> {
        if selector.is_empty() {
            return Vec::new();
        }
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|e| e.namespace == namespace && selector.iter().all(|(k, v)| e.labels.get(k) == Some(v)))
            .cloned()
            .collect()
    }

    /// Pods of one Deployment.
    pub fn of_deployment(&self, namespace: &str, name: &str) -> Vec<Endpoint> {
        self.all().into_iter().filter(|e| e.namespace == namespace && e.deployment == name).collect()
    }

    fn set(&self, endpoints: Vec<Endpoint>) -> bool {
        let mut guard = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if *guard == endpoints {
            return false;
        }
        *guard = endpoints;
        true
    }
}

/// Settings of the simulator.
#[derive(Debug, Clone)]
pub struct SimulatorConfig {
    /// Path of the `serin-demo-app` binary.
    pub demo_app: PathBuf,
    /// Prometheus `file_sd` file to keep up to date with the pods, if any.
    pub file_sd: Option<PathBuf>,
    /// Longest time between two reconcile passes.
    pub resync: Duration,
    /// Upper bound on pods started per Deployment per pass (a guard against runaway specs).
    pub max_replicas: i32,
}

impl SimulatorConfig {
    /// Defaults: no file_sd, resync every 250 ms, at most 10 replicas per Deployment.
    pub fn new(demo_app: PathBuf) -> Self {
        SimulatorConfig { demo_app, file_sd: None, resync: Duration::from_millis(250), max_replicas: 10 }
    }
}

/// A running simulator; stops (and kills its pods) on [`Simulator::shutdown`] or drop.
#[derive(Debug)]
pub struct Simulator {
    endpoints: Endpoints,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl Simulator {
    /// Starts the simulator against the API behind `client`.
    pub fn start(client: Client, config: SimulatorConfig) -> Result<Self, BedError> {
        if !config.demo_app.is_file() {
            return Err(BedError::Missing {
                program: config.demo_app.display().to_string(),
                hint: "build it with `cargo build -p serin-e2e --bin serin-demo-app`".into(),
            });
        }
        let endpoints = Endpoints::default();
        let (stop, stop_rx) = watch::channel(false);
        let state = State {
            client,
            config,
            endpoints: endpoints.clone(),
            pods: HashMap::new(),
            written: HashMap::new(),
            progress: HashMap::new(),
            draining: Vec::new(),
            http: util::http_client()?,
        };
        let task = tokio::spawn(state.run(stop_rx));
        Ok(Simulator { endpoints, stop, task: Some(task) })
    }

    /// The endpoint registry the simulator keeps up to date.
    pub fn endpoints(&self) -> Endpoints {
        self.endpoints.clone()
    }

    /// Stops the loop and kills every pod, waiting (bounded) for them to exit.
    pub async fn shutdown(mut self) {
        self.stop.send_replace(true);
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(Duration::from_secs(5), &mut task).await.is_err()
        {
            task.abort();
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.stop.send_replace(true);
        if let Some(task) = self.task.take() {
            // Dropping the task's state drops every Child, and kill_on_drop kills each by PID.
            task.abort();
        }
    }
}

/// One pod process.
struct Pod {
    endpoint: Endpoint,
    template_hash: String,
    child: Child,
    // Kept open: the demo app exits when its stdin closes.
    _stdin: Option<ChildStdin>,
    _stdout: BufReader<ChildStdout>,
}

impl Pod {
    async fn kill(mut self) {
        let pid = self.child.id();
        if let Err(err) = self.child.kill().await {
            warn!(pod = %self.endpoint.pod_name, ?pid, %err, "killing pod process failed");
        } else {
            debug!(pod = %self.endpoint.pod_name, ?pid, "pod process killed");
        }
    }
}

type Key = (String, String);

/// Rollout progress of one Deployment's current template.
struct Progress {
    hash: String,
    since: Instant,
    last_failure: Option<Instant>,
}

/// How long a replaced or removed pod keeps running after it stops receiving new requests.
pub const DRAIN: Duration = Duration::from_millis(500);

/// Pause between failed pod starts of the same template.
const START_BACKOFF: Duration = Duration::from_secs(1);

struct State {
    client: Client,
    config: SimulatorConfig,
    endpoints: Endpoints,
    pods: HashMap<Key, Vec<Pod>>,
    written: HashMap<Key, Value>,
    progress: HashMap<Key, Progress>,
    draining: Vec<JoinHandle<()>>,
    http: reqwest::Client,
}

impl State {
    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let api: Api<Deployment> = Api::all(self.client.clone());
        let (reader, writer) = reflector::store();
        let stream = reflector(writer, watcher(api, watcher::Config::default())).default_backoff();
        let mut stream = std::pin::pin!(stream);
        let mut synced = false;
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                event = stream.next() => match event {
                    Some(Err(err)) => warn!(%err, "deployment watch error"),
                    Some(Ok(watcher::Event::InitDone)) => synced = true,
                    Some(Ok(_)) => {}
                    None => break,
                },
                _ = tokio::time::sleep(self.config.resync) => {}
            }
            if !synced {
                continue;
            }
            let deployments = reader.state();
            self.reconcile_all(&deployments).await;
        }
        for (_, pods) in self.pods.drain() {
            for pod in pods {
                pod.kill().await;
            }
        }
        // Aborting drops each draining Pod, and kill_on_drop kills its process by PID.
        for task in self.draining.drain(..) {
            task.abort();
        }
        self.endpoints.set(Vec::new());
        info!("deployment simulator stopped");
    }

    async fn reconcile_all(&mut self, deployments: &[Arc<Deployment>]) {
        let mut seen = HashSet::new();
        for deployment in deployments {
            let key = (deployment.namespace().unwrap_or_default(), deployment.name_any());
            seen.insert(key.clone());
            if deployment.metadata.deletion_timestamp.is_some() {
                continue;
            }
            self.reconcile(&key, deployment).await;
        }
        let gone: Vec<Key> = self.pods.keys().filter(|k| !seen.contains(*k)).cloned().collect();
        for key in gone {
            info!(namespace = %key.0, deployment = %key.1, "deployment gone; stopping its pods");
            self.written.remove(&key);
            self.progress.remove(&key);
            let pods = self.pods.remove(&key).unwrap_or_default();
            self.publish();
            self.retire(pods);
        }
        self.draining.retain(|t| !t.is_finished());
    }

    /// Stops `pods` after [`DRAIN`]: they are no longer published, so no new request reaches
    /// them, and requests in flight can finish (like a termination grace period).
    fn retire(&mut self, pods: Vec<Pod>) {
        for pod in pods {
            debug!(pod = %pod.endpoint.pod_name, "pod draining");
            self.draining.push(tokio::spawn(async move {
                tokio::time::sleep(DRAIN).await;
                pod.kill().await;
            }));
        }
    }

    /// Writes the current pods to the endpoint registry and, when they changed, the file_sd file.
    fn publish(&self) {
        let mut all: Vec<Endpoint> = self.pods.values().flatten().map(|p| p.endpoint.clone()).collect();
        all.sort_by(|a, b| a.pod_name.cmp(&b.pod_name));
        if self.endpoints.set(all.clone())
            && let Some(path) = &self.config.file_sd
            && let Err(err) = write_file_sd(path, &all)
        {
            warn!(%err, "writing the Prometheus file_sd targets failed");
        }
    }

    async fn reconcile(&mut self, key: &Key, deployment: &Deployment) {
        let (namespace, name) = key;
        let Some(spec) = deployment.spec.as_ref() else { return };
        let desired = spec.replicas.unwrap_or(1).clamp(0, self.config.max_replicas) as usize;
        let template = serde_json::to_value(&spec.template).unwrap_or(Value::Null);
        let hash = template_hash(&template);
        let image = spec
            .template
            .spec
            .as_ref()
            .and_then(|s| s.containers.first())
            .and_then(|c| c.image.clone())
            .unwrap_or_default();
        let labels: BTreeMap<String, String> =
            spec.template.metadata.as_ref().and_then(|m| m.labels.clone()).unwrap_or_default();

        let mut pods = self.pods.remove(key).unwrap_or_default();
        // Replace crashed processes.
        let mut alive = Vec::with_capacity(pods.len());
        for mut pod in pods.drain(..) {
            match pod.child.try_wait() {
                Ok(None) => alive.push(pod),
                Ok(Some(status)) => warn!(pod = %pod.endpoint.pod_name, %status, "pod process exited"),
                Err(err) => warn!(pod = %pod.endpoint.pod_name, %err, "pod process state unknown"),
            }
        }
        let (mut updated, old): (Vec<Pod>, Vec<Pod>) =
            alive.into_iter().partition(|p| p.template_hash == hash);
        let progress = self.progress.entry(key.clone()).or_insert_with(|| Progress {
            hash: hash.clone(),
            since: Instant::now(),
            last_failure: None,
        });
        if progress.hash != hash {
            *progress = Progress { hash: hash.clone(), since: Instant::now(), last_failure: None };
        }
        let backing_off = progress.last_failure.is_some_and(|t| t.elapsed() < START_BACKOFF);
        let mut failed = false;
        if !image.is_empty() && !backing_off {
            while updated.len() < desired {
                let endpoint = Endpoint {
                    namespace: namespace.clone(),
                    deployment: name.clone(),
                    pod_name: format!("{name}-{hash}-{}", pod_suffix()),
                    labels: labels.clone(),
                    image: image.clone(),
                    addr: SocketAddr::from(([127, 0, 0, 1], 0)),
                };
                match self.spawn(endpoint, &hash).await {
                    Ok(pod) => updated.push(pod),
                    Err(err) => {
                        warn!(%namespace, deployment = %name, %err, "starting a pod failed");
                        failed = true;
                        break;
                    }
                }
            }
        }
        let mut to_stop = Vec::new();
        while updated.len() > desired {
            if let Some(pod) = updated.pop() {
                to_stop.push(pod);
            }
        }
        let mut remaining_old = Vec::new();
        if updated.len() >= desired {
            to_stop.extend(old);
        } else {
            remaining_old = old;
        }
        let ready = updated.len() + remaining_old.len();
        let deadline = Duration::from_secs(spec.progress_deadline_seconds.unwrap_or(600).max(0) as u64);
        let mut deadline_exceeded = false;
        if let Some(progress) = self.progress.get_mut(key) {
            if failed {
                progress.last_failure = Some(Instant::now());
            }
            if updated.len() >= desired {
                progress.since = Instant::now();
            }
            deadline_exceeded = updated.len() < desired && progress.since.elapsed() > deadline;
        }
        let generation = deployment.metadata.generation.unwrap_or(0);
        let status = deployment_status(generation, desired, updated.len(), ready, deadline_exceeded);
        updated.extend(remaining_old);
        self.pods.insert(key.clone(), updated);
        // Route to the new pods before the old ones go, and before the status says so.
        self.publish();
        self.retire(to_stop);
        if self.written.get(key) != Some(&status) {
            let body = json!({"status": with_timestamps(&status)});
            let api: Api<Deployment> = Api::namespaced(self.client.clone(), namespace);
            match api.patch_status(name, &PatchParams::default(), &Patch::Merge(&body)).await {
                Ok(_) => {
                    debug!(%namespace, deployment = %name, %status, "deployment status written");
                    self.written.insert(key.clone(), status);
                }
                Err(err) => warn!(%namespace, deployment = %name, %err, "writing deployment status failed"),
            }
        }
    }

    async fn spawn(&self, mut endpoint: Endpoint, hash: &str) -> Result<Pod, BedError> {
        let mut child = Command::new(&self.config.demo_app)
            .args(["--port", "0", "--exit-on-stdin-eof", "--image", &endpoint.image])
            .args(["--pod-name", &endpoint.pod_name])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(BedError::io(format!("start {}", self.config.demo_app.display())))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().ok_or_else(|| BedError::Process("demo app has no stdout".into()))?;
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        let read = tokio::time::timeout(Duration::from_secs(10), stdout.read_line(&mut line)).await;
        let addr = match read {
            Ok(Ok(n)) if n > 0 => line
                .trim()
                .strip_prefix("listening ")
                .and_then(|a| a.parse::<SocketAddr>().ok())
                .ok_or_else(|| BedError::Process(format!("demo app printed {line:?}"))),
            Ok(Ok(_)) => Err(BedError::Process("demo app exited before listening".into())),
            Ok(Err(err)) => Err(BedError::Io { context: "read demo app stdout".into(), source: err }),
            Err(_) => Err(BedError::Timeout(Duration::from_secs(10), "demo app did not start".into())),
        };
        let addr = match addr {
            Ok(addr) => addr,
            Err(err) => {
                let _ = child.kill().await;
                return Err(err);
            }
        };
        endpoint.addr = addr;
        let healthy = self
            .http
            .get(format!("http://{addr}/healthz"))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map(|r| r.status().is_success());
        if !matches!(healthy, Ok(true)) {
            let _ = child.kill().await;
            return Err(BedError::Process(format!("pod {} at {addr} is not healthy", endpoint.pod_name)));
        }
        info!(pod = %endpoint.pod_name, image = %endpoint.image, %addr, pid = ?child.id(), "pod started");
        Ok(Pod { endpoint, template_hash: hash.to_string(), child, _stdin: stdin, _stdout: stdout })
    }
}

/// A short, stable hash of a pod template, like a ReplicaSet's `pod-template-hash`.
fn template_hash(template: &Value) -> String {
    let mut hasher = DefaultHasher::new();
    template.to_string().hash(&mut hasher);
    let hex = format!("{:016x}", hasher.finish());
    hex[..9].to_string()
}

fn pod_suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..5].to_string()
}

/// The status the deployment controller would report, without timestamps (for change checks).
/// `deadline_exceeded`: the rollout has not completed within `progressDeadlineSeconds`.
fn deployment_status(
    generation: i64,
    desired: usize,
    updated: usize,
    ready: usize,
    deadline_exceeded: bool,
) -> Value {
    let complete = updated >= desired && ready == updated;
    let available = updated.min(ready) >= desired;
    let (available_reason, available_message) = if available {
        ("MinimumReplicasAvailable", "Deployment has minimum availability.")
    } else {
        ("MinimumReplicasUnavailable", "Deployment does not have minimum availability.")
    };
    let (progress_status, progress_reason, progress_message) = if complete {
        ("True", "NewReplicaSetAvailable", "ReplicaSet has successfully progressed.")
    } else if deadline_exceeded {
        ("False", "ProgressDeadlineExceeded", "ReplicaSet has timed out progressing.")
    } else {
        ("True", "ReplicaSetUpdated", "ReplicaSet is progressing.")
    };
    let mut status = json!({
        "observedGeneration": generation,
        "replicas": ready,
        "updatedReplicas": updated,
        "readyReplicas": ready,
        "availableReplicas": ready,
        "conditions": [
            {
                "type": "Available",
                "status": if available { "True" } else { "False" },
                "reason": available_reason,
                "message": available_message,
            },
            {
                "type": "Progressing",
                "status": progress_status,
                "reason": progress_reason,
                "message": progress_message,
            }
        ]
    });
    let unavailable = desired.saturating_sub(ready);
    if unavailable > 0 {
        status["unavailableReplicas"] = json!(unavailable);
    }
    status
}

fn with_timestamps(status: &Value) -> Value {
    let now = format!("{:.0}", jiff::Timestamp::now());
    let mut status = status.clone();
    if let Some(conditions) = status.get_mut("conditions").and_then(Value::as_array_mut) {
        for c in conditions {
            c["lastUpdateTime"] = json!(now);
            c["lastTransitionTime"] = json!(now);
        }
    }
    status
}

fn write_file_sd(path: &std::path::Path, endpoints: &[Endpoint]) -> Result<(), BedError> {
    let groups: Vec<Value> = endpoints
        .iter()
        .map(|e| {
            json!({
                "targets": [e.addr.to_string()],
                "labels": {
                    "kubernetes_namespace": e.namespace,
                    "kubernetes_pod_name": e.pod_name,
                    "deployment": e.deployment,
                    "app": e.labels.get("app").cloned().unwrap_or_default(),
                }
            })
        })
        .collect();
    let body = serde_json::to_vec_pretty(&groups).map_err(|e| BedError::Parse(e.to_string()))?;
    util::write_atomically(path, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_is_complete_only_when_all_updated_pods_are_ready() {
        let s = deployment_status(3, 2, 2, 2, false);
        assert_eq!(s["observedGeneration"], 3);
        assert_eq!(s["conditions"][1]["reason"], "NewReplicaSetAvailable");
        assert!(s.get("unavailableReplicas").is_none());
        let s = deployment_status(3, 2, 1, 1, false);
        assert_eq!(s["conditions"][1]["reason"], "ReplicaSetUpdated");
        assert_eq!(s["unavailableReplicas"], 1);
        let s = deployment_status(3, 2, 0, 2, true);
        assert_eq!(s["conditions"][1]["status"], "False");
        assert_eq!(s["conditions"][1]["reason"], "ProgressDeadlineExceeded");
    }

    #[test]
    fn selector_matches_subsets_in_one_namespace() {
        let endpoints = Endpoints::default();
        let ep = |ns: &str, app: &str| Endpoint {
            namespace: ns.into(),
            deployment: app.into(),
            pod_name: format!("{app}-abc-def"),
            labels: BTreeMap::from([("app".to_string(), app.to_string()), ("x".into(), "y".into())]),
            image: "demo:1".into(),
            addr: SocketAddr::from(([127, 0, 0, 1], 1)),
        };
        endpoints.set(vec![ep("a", "podinfo"), ep("a", "podinfo-primary"), ep("b", "podinfo")]);
        let sel = BTreeMap::from([("app".to_string(), "podinfo".to_string())]);
        assert_eq!(endpoints.select("a", &sel).len(), 1);
        assert!(endpoints.select("a", &BTreeMap::new()).is_empty());
    }
}
