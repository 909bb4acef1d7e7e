//! Shared steps of the benchmarks: registering the CRDs, waiting for the fleet to reach a
//! phase (bounded, failing early when the controller died).

use std::{
    path::Path,
    time::{Duration, Instant},
};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};

use super::ticks::TickRecorder;
use crate::{
    bed::apply_crds, error::BedError, proxy, scenario::controller::ControllerProcess, server::ApiServer,
};

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
