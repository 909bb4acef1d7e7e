//! Shared helpers for the API stand-in tests: start a server on an ephemeral port and build a
//! kube-rs client for it; bound every test in time.
#![allow(dead_code)]

use std::{future::Future, time::Duration};

use kube::Client;
use serin_e2e::{ApiServer, ServerConfig};

/// Upper bound for any single test body.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Starts a server with the given config and returns it with a client.
pub async fn start_with(config: ServerConfig) -> (ApiServer, Client) {
    let server = ApiServer::start(config).await.expect("server starts");
    let client = server.client().expect("client builds");
    (server, client)
}

/// Starts a server with fast bookmarks (200 ms) and returns it with a client.
pub async fn start() -> (ApiServer, Client) {
    start_with(ServerConfig { bookmark_interval: Duration::from_millis(200), ..ServerConfig::default() })
        .await
}

/// Runs `fut` under [`TEST_TIMEOUT`].
pub async fn bounded<F: Future>(fut: F) -> F::Output {
    tokio::time::timeout(TEST_TIMEOUT, fut).await.expect("test finished in time")
}

/// The HTTP status code of a kube API error, if it is one.
pub fn code(err: &kube::Error) -> Option<u16> {
    match err {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

/// The `reason` of a kube API error, if it is one.
pub fn reason(err: &kube::Error) -> Option<String> {
    match err {
        kube::Error::Api(s) => Some(s.reason.clone()),
        _ => None,
    }
}

/// Logs to the test output when `RUST_LOG` is set (e.g. `RUST_LOG=serin_e2e=debug`).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// A test bed configuration using the demo app Cargo built for this test run.
pub fn bed_config() -> serin_e2e::BedConfig {
    serin_e2e::BedConfig::new(env!("CARGO_BIN_EXE_serin-demo-app"))
}

/// Upper bound for a test bed test body (startup, traffic, Prometheus warm-up).
pub const BED_TIMEOUT: Duration = Duration::from_secs(90);

/// Runs `fut` under [`BED_TIMEOUT`].
pub async fn bed_bounded<F: Future>(fut: F) -> F::Output {
    tokio::time::timeout(BED_TIMEOUT, fut).await.expect("test finished in time")
}
