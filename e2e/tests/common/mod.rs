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
