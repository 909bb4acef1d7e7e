//! End-to-end scenarios (issue 9): the real `serin controller` binary against the test bed —
//! API stand-in, simulated Deployments running the demo app, the weighted proxy, real
//! Prometheus, a real Git server with a Flux-like sync loop, and the alert receiver.
//!
//! A [`Harness`] starts the bed and the controller, commits the [`app::App`] to Git the way a
//! team would, keeps load on the app, and watches its Canary ([`observe::CanaryObserver`]).
//! [`scenarios`] holds the scenarios; each checks observable outcomes (API objects, Git
//! history, traffic, alerts) and returns an error saying what was wrong, so the same code
//! serves the tests (`tests/scenarios/` in the `serin` package) and the demo binary
//! (`serin-e2e-demo`).

pub mod app;
pub mod chaos;
pub mod controller;
pub mod loadtester;
pub mod observe;
pub mod scenarios;

use std::{path::PathBuf, time::Duration};

use k8s_openapi::api::{apps::v1::Deployment, core::v1::Namespace};
use kube::{
    Api,
    api::{ObjectMeta, PostParams},
};

use crate::{
    bed::{BedConfig, TestBed},
    error::BedError,
    load::LoadGenerator,
};
use app::App;
use controller::{ControllerConfig, ControllerProcess};
use observe::CanaryObserver;

/// How long a scenario waits for the first promotion (Initialized) after the app is in Git.
pub const INSTALL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a release may take from the commit to its end (Succeeded or Failed).
pub const RELEASE_TIMEOUT: Duration = Duration::from_secs(120);

/// Settings of a [`Harness`].
#[derive(Debug, Clone)]
pub struct HarnessConfig {
    /// The `serin` binary.
    pub serin: PathBuf,
    /// The test bed.
    pub bed: BedConfig,
    /// Print the Canary's timeline and each step as it happens (the demo).
    pub live: bool,
    /// How many controller replicas (more than one runs them with leader election).
    pub replicas: usize,
}

impl HarnessConfig {
    /// One controller, quiet.
    pub fn new(serin: impl Into<PathBuf>, bed: BedConfig) -> Self {
        HarnessConfig { serin: serin.into(), bed, live: false, replicas: 1 }
    }
}

/// A test bed with `serin controller` running against it and one app under GitOps.
pub struct Harness {
    /// Load on the app's Services while a scenario runs (stopped on drop).
    load: Vec<LoadGenerator>,
    /// The Canary's timeline.
    pub observer: CanaryObserver,
    /// The controller replicas.
    pub controllers: Vec<ControllerProcess>,
    /// The app being released.
    pub app: App,
    /// The image the cluster's Git currently holds for the app.
    pub image: String,
    /// The commit that put it there.
    pub commit: String,
    /// The `serin` binary (for the load tester).
    pub serin: PathBuf,
    live: bool,
    /// The bed (dropped last).
    pub bed: TestBed,
}

impl Harness {
    /// Starts the bed and the controller(s); nothing is in Git yet.
    pub async fn start(config: HarnessConfig) -> Result<Self, BedError> {
        let bed = TestBed::start(config.bed).await?;
        let client = bed.client();
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let system = Namespace {
            metadata: ObjectMeta { name: Some("serin-system".into()), ..Default::default() },
            ..Default::default()
        };
        namespaces.create(&PostParams::default(), &system).await?;
        let app = App::new("test", "podinfo", &bed.alerts().url());
        let observer = CanaryObserver::start(client, &app.namespace, &app.name, config.live);
        let mut controllers = Vec::new();
        for replica in 0..config.replicas.max(1) {
            let identity = (config.replicas > 1).then(|| format!("serin-{replica}"));
            controllers.push(ControllerProcess::start(controller_config(
                &bed,
                &config.serin,
                replica,
                identity,
            )?)?);
        }
        Ok(Harness {
            load: Vec::new(),
            observer,
            controllers,
            app,
            image: String::new(),
            commit: String::new(),
            serin: config.serin,
            live: config.live,
            bed,
        })
    }

    /// Prints a scenario step in the live view.
    pub fn step(&self, text: &str) {
        tracing::info!("{text}");
        if self.live {
            println!("\n==> {text}");
        }
    }

    /// Commits the app with `image` and waits until Serin initialised it (primary running,
    /// Canary `Initialized`); then starts load on its Service.
    pub async fn install(&mut self, image: &str) -> Result<(), BedError> {
        self.step(&format!("commit {} ({image}) with its Canary to Git", self.app.name));
        self.commit = self.commit_image(image, &format!("deploy {} {}", self.app.name, tag(image))).await?;
        self.observer.wait_for_phase("Initialized", INSTALL_TIMEOUT).await.map_err(|e| self.with_log(e))?;
        let primary = format!("{}-primary", self.app.name);
        self.bed.wait_deployment_ready(&self.app.namespace, &primary, Duration::from_secs(30)).await?;
        let service = self.app.name.clone();
        self.add_load(&service)
    }

    /// Keeps load (one GET every ~10 ms, at most 10 minutes) on a Service of the app's
    /// namespace through the proxy until shutdown.
    pub fn add_load(&mut self, service: &str) -> Result<(), BedError> {
        let load = self.bed.start_load(
            &[(&self.app.namespace, service)],
            Duration::from_millis(10),
            Duration::from_secs(600),
        )?;
        self.load.push(load);
        Ok(())
    }

    /// Commits the app with a new image (a release) and waits for the sync loop to apply it;
    /// returns the commit.
    pub async fn release(&mut self, image: &str) -> Result<String, BedError> {
        self.step(&format!("release {image}: commit it to Git"));
        let sha = self.commit_image(image, &format!("release {} {}", self.app.name, tag(image))).await?;
        Ok(sha)
    }

    /// Commits a change of the app's Canary alone (same image: no new revision, no release),
    /// e.g. after changing [`App::analysis`]; waits for the sync.
    pub async fn configure(&mut self, what: &str) -> Result<(), BedError> {
        self.step(&format!("commit a Canary change to Git: {what}"));
        let image = self.image.clone();
        self.commit = self.commit_image(&image, &format!("{}: {what}", self.app.name)).await?;
        Ok(())
    }

    async fn commit_image(&mut self, image: &str, message: &str) -> Result<String, BedError> {
        let manifests = self.app.manifests(image);
        let sha = self
            .bed
            .commit_and_sync(&[(&self.app.path(), Some(&manifests))], message, Duration::from_secs(20))
            .await?;
        self.image = image.to_string();
        Ok(sha)
    }

    /// The image of the app's Deployment in the cluster now.
    pub async fn deployed_image(&self) -> Result<String, BedError> {
        let api: Api<Deployment> = Api::namespaced(self.bed.client(), &self.app.namespace);
        let d = api.get(&self.app.name).await?;
        let image = d
            .spec
            .and_then(|s| s.template.spec)
            .and_then(|s| s.containers.into_iter().next())
            .and_then(|c| c.image);
        image.ok_or_else(|| BedError::Parse(format!("deployment {} has no image", self.app.name)))
    }

    /// Adds the controller logs to a timeout or check failure.
    pub fn with_log(&self, e: BedError) -> BedError {
        let logs: Vec<String> = self
            .controllers
            .iter()
            .map(|c| format!("--- {} (last 40 lines)\n{}", c.log_file().display(), c.log_tail(40)))
            .collect();
        BedError::Process(format!("{e}\n{}", logs.join("\n")))
    }

    /// Stops the observer, the load, the controllers and the bed, in that order.
    pub async fn shutdown(self) {
        let Harness { load, observer, controllers, bed, .. } = self;
        drop(observer);
        for load in load {
            load.stop().await;
        }
        for c in &controllers {
            c.terminate(Duration::from_secs(10));
        }
        bed.shutdown().await;
    }
}

/// The version the demo app reports for an image (`demo:2.0.0` → `2.0.0`).
pub fn tag(image: &str) -> &str {
    image.rsplit_once(':').map_or(image, |(_, t)| t)
}

fn controller_config(
    bed: &TestBed,
    serin: &std::path::Path,
    replica: usize,
    identity: Option<String>,
) -> Result<ControllerConfig, BedError> {
    let dir = bed.dir().join(format!("controller-{replica}"));
    std::fs::create_dir_all(&dir).map_err(BedError::io(format!("create {}", dir.display())))?;
    let mut config = ControllerConfig::new(
        serin,
        bed.kubeconfig_path(),
        bed.prometheus().url(),
        &dir,
        dir.join("controller.log"),
    )?;
    config.leader_identity = identity;
    Ok(config)
}
