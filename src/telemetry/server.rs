//! The controller's HTTP endpoints: `/metrics` (OpenMetrics text), `/healthz` (the process
//! answers) and `/readyz` (caches synced and leader election running: ready as leader or as a
//! warm standby).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

/// This replica's part in leader election.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Election not started yet.
    Starting = 0,
    /// Holds the lease and acts.
    Leader = 1,
    /// Keeps caches warm, acts on nothing.
    Standby = 2,
}

/// Readiness inputs, updated by the controller.
#[derive(Debug, Default)]
pub struct Health {
    caches_synced: AtomicBool,
    role: AtomicU8,
}

impl Health {
    /// Marks the watch caches as synced.
    pub fn set_synced(&self) {
        self.caches_synced.store(true, Ordering::Release);
    }

    /// Records this replica's role.
    pub fn set_role(&self, role: Role) {
        self.role.store(role as u8, Ordering::Release);
    }

    /// The recorded role.
    pub fn role(&self) -> Role {
        match self.role.load(Ordering::Acquire) {
            1 => Role::Leader,
            2 => Role::Standby,
            _ => Role::Starting,
        }
    }

    /// Why the replica is not ready, or `None` when it is.
    pub fn not_ready_reason(&self) -> Option<&'static str> {
        if !self.caches_synced.load(Ordering::Acquire) {
            Some("watch caches not synced yet")
        } else if self.role() == Role::Starting {
            Some("leader election not started yet")
        } else {
            None
        }
    }
}

/// Shared state of the endpoints.
#[derive(Clone)]
pub struct ServerState {
    /// Metrics to expose.
    pub registry: Arc<Registry>,
    /// Readiness inputs.
    pub health: Arc<Health>,
}

/// The endpoint routes.
pub fn router(state: ServerState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn metrics(State(state): State<ServerState>) -> impl IntoResponse {
    let mut body = String::new();
    match encode(&mut body, &state.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
            body,
        ),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "encoding metrics failed".to_string(),
        ),
    }
}

async fn readyz(State(state): State<ServerState>) -> impl IntoResponse {
    match state.health.not_ready_reason() {
        None => (StatusCode::OK, format!("ready ({:?})", state.health.role()).to_lowercase()),
        Some(reason) => (StatusCode::SERVICE_UNAVAILABLE, reason.to_string()),
    }
}

/// Serves the endpoints on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    state: ServerState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::telemetry::metrics::Metrics;

    async fn get(addr: std::net::SocketAddr, path: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut response = String::new();
        stream.read_to_string(&mut response).await.expect("read");
        response
    }

    #[tokio::test]
    async fn serves_metrics_health_and_readiness() {
        let mut registry = Registry::default();
        let _metrics = Metrics::register(&mut registry);
        let health = Arc::new(Health::default());
        let state = ServerState { registry: Arc::new(registry), health: health.clone() };
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, state, async {
            let _ = stopped.await;
        }));

        assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 200"));
        let metrics = get(addr, "/metrics").await;
        assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
        assert!(metrics.contains("serin_info_info{version=\"0.1.0\"} 1"), "{metrics}");

        let not_synced = get(addr, "/readyz").await;
        assert!(
            not_synced.starts_with("HTTP/1.1 503") && not_synced.ends_with("watch caches not synced yet"),
            "{not_synced}"
        );
        health.set_synced();
        assert!(get(addr, "/readyz").await.ends_with("leader election not started yet"));
        health.set_role(Role::Standby);
        let standby = get(addr, "/readyz").await;
        assert!(standby.starts_with("HTTP/1.1 200") && standby.ends_with("ready (standby)"), "{standby}");
        health.set_role(Role::Leader);
        assert!(get(addr, "/readyz").await.ends_with("ready (leader)"));

        stop.send(()).expect("stop");
        server.await.expect("joined").expect("served");
    }
}
