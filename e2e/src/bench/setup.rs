//! Shared steps of the benchmarks: registering the CRDs, waiting for the fleet to reach a
//! phase (bounded, failing early when the controller died).

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};

use super::{
    fleet::RolloutWriter,
    responder::{Responder, RunningResponder},
    ticks::TickRecorder,
};
use crate::{
    bed::apply_crds, error::BedError, proxy, scenario::controller::ControllerProcess, server::ApiServer,
};

/// What every benchmark starts with: a fresh API stand-in with Serin's CRDs, a kubeconfig for
/// the controller, the Prometheus-API responder, the writer that marks Deployments rolled
/// out, and the tick recorder.
pub struct BenchCluster {
    /// The API stand-in.
    pub api: ApiServer,
    /// The bench's own client ([`bench_client`]).
    pub client: Client,
    /// Temporary directory holding the kubeconfig (removed on drop).
    pub dir: tempfile::TempDir,
    /// The kubeconfig for the controller.
    pub kubeconfig: PathBuf,
    /// Answers the controller's metric queries.
    pub responder: RunningResponder,
    /// Marks Deployments rolled out (stops on drop).
    pub writer: RolloutWriter,
    /// Records every canary's ticks.
    pub recorder: TickRecorder,
}

impl BenchCluster {
    /// Starts everything; `history_limit` sizes the stand-in's watch history.
    pub async fn start(history_limit: usize) -> Result<Self, BedError> {
        let api = ApiServer::start(crate::server::ServerConfig {
            bookmark_interval: Duration::from_secs(60),
            history_limit,
        })
        .await?;
        let client = bench_client(&api)?;
        let dir =
            tempfile::Builder::new().prefix("serin-bench-").tempdir().map_err(BedError::io("temp dir"))?;
        let kubeconfig = dir.path().join("kubeconfig");
        api.write_kubeconfig(&kubeconfig)?;
        register_crds(&client).await?;
        let responder = Responder::start().await?;
        let writer = RolloutWriter::start(client.clone());
        let recorder = TickRecorder::start(client.clone());
        Ok(BenchCluster { api, client, dir, kubeconfig, responder, writer, recorder })
    }
}

/// The user the bench's own requests impersonate, so they can be told from the controller's
/// in the audit log (the stand-in records `Impersonate-User`).
pub const BENCH_USER: &str = "serin-bench";

/// A client for the bench's own requests (fleet, rollout status, watches).
pub fn bench_client(api: &ApiServer) -> Result<Client, BedError> {
    let mut config = api.client_config()?;
    config.auth_info.impersonate = Some(BENCH_USER.into());
    Client::try_from(config).map_err(|e| BedError::Process(format!("bench client: {e}")))
}

/// Applies Serin's `crds/` and the HTTPRoute CRD the Gateway API router writes.
pub async fn register_crds(client: &Client) -> Result<(), BedError> {
    apply_crds(client, &Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds")).await?;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let route: CustomResourceDefinition =
        serde_json::from_value(proxy::httproute_crd()).map_err(|e| BedError::Parse(e.to_string()))?;
    crds.patch(proxy::HTTPROUTE_CRD, &PatchParams::apply("serin-bench").force(), &Patch::Apply(&route))
        .await?;
    Ok(())
}

/// Waits until `count` canaries are in one of `phases`, printing progress every 10 s.
pub async fn wait_for(
    recorder: &TickRecorder,
    controller: &ControllerProcess,
    count: usize,
    phases: &[&str],
    timeout: Duration,
    started: Instant,
) -> Result<(), BedError> {
    let deadline = Instant::now() + timeout;
    let mut report = Instant::now() + Duration::from_secs(10);
    loop {
        let done = recorder.count_in(phases);
        if done >= count {
            return Ok(());
        }
        if !controller.is_running() {
            return Err(BedError::Process(format!(
                "the controller exited; log tail:\n{}",
                controller.log_tail(20)
            )));
        }
        if Instant::now() >= deadline {
            return Err(BedError::Timeout(timeout, format!("{done} of {count} canaries in {phases:?}")));
        }
        if Instant::now() >= report {
            eprintln!("  {:.0?}: {done} of {count} canaries in {phases:?}", started.elapsed());
            report += Duration::from_secs(10);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
