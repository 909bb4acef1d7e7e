//! [`TestBed`]: the whole end-to-end environment started with one call.
//!
//! It starts, all on 127.0.0.1 and under one temporary directory:
//! the API stand-in ([`ApiServer`]) with Serin's `crds/*.yaml` applied and a kubeconfig
//! written; the alert receiver; the Git server; the Deployment simulator; the weighted proxy;
//! real Prometheus scraping the proxy and the pods every second; and the GitOps sync loop
//! applying `<sync_path>` of the repository's `main` branch. Drop stops everything (processes are
//! killed by PID) and removes the directory.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use k8s_openapi::{
    api::apps::v1::Deployment,
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, ResourceExt,
    api::{Patch, PatchParams},
};
use tempfile::TempDir;
use tracing::info;

use crate::{
    ApiServer, ServerConfig,
    alerts::AlertReceiver,
    demo,
    error::BedError,
    git::GitServer,
    load::LoadGenerator,
    prometheus::{Prometheus, PrometheusConfig},
    proxy::{self, Proxy},
    simulator::{Endpoints, Simulator, SimulatorConfig},
    sync::{SyncConfig, SyncLoop},
    util,
};

/// Settings of a [`TestBed`].
#[derive(Debug, Clone)]
pub struct BedConfig {
    /// Path of the `serin-demo-app` binary (in integration tests:
    /// `env!("CARGO_BIN_EXE_serin-demo-app")`).
    pub demo_app: PathBuf,
    /// Directory of CRD manifests applied at start (Serin's `crds/`).
    pub crds_dir: PathBuf,
    /// Directory inside the Git repository the sync loop applies.
    pub sync_path: String,
    /// How often the sync loop polls Git.
    pub sync_interval: Duration,
    /// Whether the sync loop deletes objects removed from Git.
    pub prune: bool,
    /// Bookmark interval of the API stand-in's watches.
    pub bookmark_interval: Duration,
}

impl BedConfig {
    /// Defaults: Serin's `crds/`, sync path `clusters/testbed` every 500 ms with pruning,
    /// bookmarks every second.
    pub fn new(demo_app: impl Into<PathBuf>) -> Self {
        BedConfig {
            demo_app: demo_app.into(),
            crds_dir: Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds"),
            sync_path: "clusters/testbed".into(),
            sync_interval: Duration::from_millis(500),
            prune: true,
            bookmark_interval: Duration::from_secs(1),
        }
    }

    /// Like [`Self::new`] with the demo app found by [`util::find_demo_app`].
    pub fn from_env() -> Result<Self, BedError> {
        let demo_app = util::find_demo_app().ok_or_else(|| BedError::Missing {
            program: "serin-demo-app".into(),
            hint: "set SERIN_DEMO_APP or build it with `cargo build -p serin-e2e --bin serin-demo-app`"
                .into(),
        })?;
        Ok(Self::new(demo_app))
    }
}

/// What a batch of requests through the proxy saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Requests per serving Deployment ([`proxy::WORKLOAD_HEADER`]).
    pub by_workload: BTreeMap<String, usize>,
    /// Requests per demo app version ([`demo::VERSION_HEADER`]).
    pub by_version: BTreeMap<String, usize>,
    /// Requests per HTTP status code.
    pub by_status: BTreeMap<u16, usize>,
    /// Requests that got no HTTP answer at all.
    pub failed: usize,
}

/// The running test bed. Field order is drop order: consumers first, the API and the
/// directory last.
pub struct TestBed {
    sync: SyncLoop,
    proxy: Proxy,
    simulator: Simulator,
    prometheus: Prometheus,
    git: GitServer,
    alerts: AlertReceiver,
    client: Client,
    http: reqwest::Client,
    api: ApiServer,
    kubeconfig: PathBuf,
    dir: TempDir,
}

impl TestBed {
    /// Starts everything; takes well under a second plus CRD registration.
    pub async fn start(config: BedConfig) -> Result<Self, BedError> {
        let started = Instant::now();
        let dir =
            tempfile::Builder::new().prefix("serin-testbed-").tempdir().map_err(BedError::io("temp dir"))?;
        let api = ApiServer::start(ServerConfig {
            bookmark_interval: config.bookmark_interval,
            ..ServerConfig::default()
        })
        .await?;
        let kubeconfig = dir.path().join("kubeconfig");
        api.write_kubeconfig(&kubeconfig)?;
        let client = api.client()?;
        apply_crds(&client, &config.crds_dir).await?;
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        let route_crd: CustomResourceDefinition =
            serde_json::from_value(proxy::httproute_crd()).map_err(|e| BedError::Parse(e.to_string()))?;
        crds.patch(proxy::HTTPROUTE_CRD, &PatchParams::apply("testbed").force(), &Patch::Apply(&route_crd))
            .await?;
        let alerts = AlertReceiver::start(0).await?;
        let git = GitServer::start(&dir.path().join("git")).await?;
        let file_sd = dir.path().join("pods.json");
        util::write_atomically(&file_sd, b"[]")?;
        let simulator = Simulator::start(
            client.clone(),
            SimulatorConfig {
                file_sd: Some(file_sd.clone()),
                ..SimulatorConfig::new(config.demo_app.clone())
            },
        )?;
        let proxy = Proxy::start(client.clone(), simulator.endpoints(), 0, true).await?;
        let prometheus = Prometheus::start(PrometheusConfig {
            dir: dir.path().join("prometheus"),
            static_targets: vec![("proxy".into(), proxy.addr())],
            file_sd: Some(file_sd),
            scrape_interval_secs: 1,
            binary: None,
        })
        .await?;
        let sync_config = SyncConfig {
            url: git.url(),
            branch: crate::git::BRANCH.into(),
            path: config.sync_path.clone(),
            interval: config.sync_interval,
            prune: config.prune,
            checkout: dir.path().join("sync-checkout"),
            flux_objects: true,
        };
        crate::sync::create_flux_objects(&client, &sync_config).await?;
        let sync = SyncLoop::start(client.clone(), sync_config);
        info!(
            elapsed = ?started.elapsed(),
            api = %api.url(),
            proxy = %proxy.url(),
            prometheus = %prometheus.url(),
            git = %git.url(),
            alerts = %alerts.url(),
            "test bed up"
        );
        Ok(TestBed {
            sync,
            proxy,
            simulator,
            prometheus,
            git,
            alerts,
            client,
            http: util::http_client()?,
            api,
            kubeconfig,
            dir,
        })
    }

    /// The API stand-in.
    pub fn api(&self) -> &ApiServer {
        &self.api
    }

    /// A kube-rs client for the API stand-in.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The kubeconfig file for child processes (`serin controller --kubeconfig …` or
    /// `KUBECONFIG=…`).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// The temporary directory holding everything (removed on drop).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The weighted proxy.
    pub fn proxy(&self) -> &Proxy {
        &self.proxy
    }

    /// URL of a Service through the proxy.
    pub fn service_url(&self, namespace: &str, service: &str) -> String {
        self.proxy.service_url(namespace, service)
    }

    /// Prometheus (its [`Prometheus::url`] is the address for Serin's MetricTemplates).
    pub fn prometheus(&self) -> &Prometheus {
        &self.prometheus
    }

    /// Prometheus, to stop and restart it.
    pub fn prometheus_mut(&mut self) -> &mut Prometheus {
        &mut self.prometheus
    }

    /// The Git server.
    pub fn git(&self) -> &GitServer {
        &self.git
    }

    /// The sync loop.
    pub fn sync(&self) -> &SyncLoop {
        &self.sync
    }

    /// The alert receiver.
    pub fn alerts(&self) -> &AlertReceiver {
        &self.alerts
    }

    /// The simulator's pod registry.
    pub fn endpoints(&self) -> Endpoints {
        self.simulator.endpoints()
    }

    /// Commits `files` to Git and waits until the sync loop has applied that revision.
    pub async fn commit_and_sync(
        &self,
        files: &[(&str, Option<&str>)],
        message: &str,
        timeout: Duration,
    ) -> Result<String, BedError> {
        let sha = self.git.commit(files, message).await?;
        self.sync.wait_for_revision(&sha, timeout).await?;
        Ok(sha)
    }

    /// Waits until a Deployment's status says it has rolled out (observed generation, all
    /// replicas updated and available, no old ones) and returns it.
    pub async fn wait_deployment_ready(
        &self,
        namespace: &str,
        name: &str,
        timeout: Duration,
    ) -> Result<Deployment, BedError> {
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), namespace);
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(d) = api.get_opt(name).await?
                && deployment_rolled_out(&d)
            {
                return Ok(d);
            }
            if Instant::now() >= deadline {
                return Err(BedError::Timeout(timeout, format!("deployment {namespace}/{name} ready")));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends `count` (at most 10 000) sequential GETs to a Service through the proxy and tallies
    /// who answered.
    pub async fn send_traffic(&self, namespace: &str, service: &str, count: usize) -> Traffic {
        let url = self.service_url(namespace, service);
        let mut traffic = Traffic::default();
        for _ in 0..count.min(10_000) {
            match self.http.get(&url).timeout(Duration::from_secs(10)).send().await {
                Ok(resp) => {
                    let header = |name: &str| {
                        resp.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string()
                    };
                    *traffic.by_workload.entry(header(proxy::WORKLOAD_HEADER)).or_default() += 1;
                    *traffic.by_version.entry(header(demo::VERSION_HEADER)).or_default() += 1;
                    *traffic.by_status.entry(resp.status().as_u16()).or_default() += 1;
                }
                Err(_) => traffic.failed += 1,
            }
        }
        traffic
    }

    /// Starts bounded background traffic to Services through the proxy: one GET per Service per
    /// round, `pause` between rounds, for at most `limit`.
    pub fn start_load(
        &self,
        services: &[(&str, &str)],
        pause: Duration,
        limit: Duration,
    ) -> Result<LoadGenerator, BedError> {
        let urls = services.iter().map(|(ns, svc)| self.service_url(ns, svc)).collect();
        LoadGenerator::start(urls, pause, limit)
    }

    /// Stops everything in order, waiting for the simulator's pods to exit.
    pub async fn shutdown(self) {
        let TestBed {
            sync,
            proxy,
            simulator,
            prometheus,
            git,
            alerts,
            client,
            http,
            api,
            kubeconfig: _,
            dir,
        } = self;
        drop(sync);
        drop(proxy);
        simulator.shutdown().await;
        drop(prometheus);
        drop(git);
        drop(alerts);
        drop((client, http));
        api.shutdown().await;
        drop(dir);
    }
}

impl std::fmt::Debug for TestBed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestBed")
            .field("api", &self.api.url())
            .field("proxy", &self.proxy.url())
            .field("prometheus", &self.prometheus.url())
            .field("git", &self.git.url())
            .field("alerts", &self.alerts.url())
            .field("dir", &self.dir.path())
            .finish()
    }
}

/// Whether a Deployment's status shows a finished rollout (same rules as Serin's readiness
/// check with a 100% threshold).
pub fn deployment_rolled_out(d: &Deployment) -> bool {
    let (Some(spec), Some(status)) = (d.spec.as_ref(), d.status.as_ref()) else { return false };
    let desired = spec.replicas.unwrap_or(1);
    status.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
        && status.updated_replicas.unwrap_or(0) >= desired
        && status.replicas.unwrap_or(0) == status.updated_replicas.unwrap_or(0)
        && status.available_replicas.unwrap_or(0) >= desired
}

/// Applies every CRD in `dir` by server-side apply and waits until each is Established.
pub async fn apply_crds(client: &Client, dir: &Path) -> Result<(), BedError> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let objects = crate::sync::read_manifests(dir)?;
    for obj in objects {
        let crd: CustomResourceDefinition = serde_json::from_value(obj)
            .map_err(|e| BedError::Parse(format!("crd in {}: {e}", dir.display())))?;
        crds.patch(&crd.name_any(), &PatchParams::apply("testbed").force(), &Patch::Apply(&crd)).await?;
    }
    Ok(())
}

/// Reads a MetricTemplate manifest's `spec.query`.
pub fn metric_template_query(path: &Path) -> Result<String, BedError> {
    let text = std::fs::read_to_string(path).map_err(BedError::io(format!("read {}", path.display())))?;
    let value: serde_json::Value =
        serde_norway::from_str(&text).map_err(|e| BedError::Parse(format!("{}: {e}", path.display())))?;
    value["spec"]["query"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| BedError::Parse(format!("{} has no spec.query", path.display())))
}

/// Renders a builtin query the simple way: replaces `{{ namespace }}`, `{{ target }}` and
/// `{{ interval }}` (Serin's real renderer also knows `{{ variables.* }}` and more).
pub fn render_query(query: &str, namespace: &str, target: &str, interval: &str) -> String {
    query
        .replace("{{ namespace }}", namespace)
        .replace("{{ target }}", target)
        .replace("{{ interval }}", interval)
}
