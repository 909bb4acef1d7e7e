//! The alert receiver: an HTTP server on 127.0.0.1 that stores every request body it gets
//! (Slack-, Teams-, Discord- or generic-webhook-shaped JSON; non-JSON bodies are stored as a
//! JSON string), answering 200. Tests read what arrived with [`AlertReceiver::received`] or
//! [`AlertReceiver::wait_for`]; other processes with `GET /alerts` (a JSON array).

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Router,
    extract::{Request, State},
    http::{Method, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tracing::info;

use crate::error::BedError;

/// Largest body stored.
const MAX_BODY: usize = 1024 * 1024;

/// One received request.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// Request path (e.g. `/slack`), so one receiver can stand for several providers.
    pub path: String,
    /// The body: parsed JSON, or a JSON string holding the raw text.
    pub body: Value,
}

type Store = Arc<Mutex<Vec<Alert>>>;

/// A running alert receiver; stops on drop.
#[derive(Debug)]
pub struct AlertReceiver {
    addr: SocketAddr,
    store: Store,
    task: Option<JoinHandle<()>>,
}

impl AlertReceiver {
    /// Starts the receiver on 127.0.0.1:`port` (0 = ephemeral).
    pub async fn start(port: u16) -> Result<Self, BedError> {
        let listener = tokio::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, port))
            .await
            .map_err(BedError::io("bind the alert receiver"))?;
        let addr = listener.local_addr().map_err(BedError::io("alert receiver address"))?;
        let store: Store = Arc::default();
        let app = Router::new().fallback(handle).with_state(store.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        info!(%addr, "alert receiver serving");
        Ok(AlertReceiver { addr, store, task: Some(task) })
    }

    /// Base URL; any path under it is accepted (`http://127.0.0.1:<port>/slack` …).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Everything received so far, oldest first.
    pub fn received(&self) -> Vec<Alert> {
        self.store.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Forgets everything received.
    pub fn clear(&self) {
        self.store.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Waits (polling every 50 ms) for an alert that `pred` accepts and returns it.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        pred: impl Fn(&Alert) -> bool,
    ) -> Result<Alert, BedError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(alert) = self.received().into_iter().find(|a| pred(a)) {
                return Ok(alert);
            }
            if Instant::now() >= deadline {
                return Err(BedError::Timeout(timeout, format!("alert; got {:?}", self.received())));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for AlertReceiver {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn handle(State(store): State<Store>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    if req.method() == Method::GET && path == "/alerts" {
        let alerts: Vec<Value> = store
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|a| json!({"path": a.path, "body": a.body}))
            .collect();
        return ([(header::CONTENT_TYPE, "application/json")], Value::Array(alerts).to_string())
            .into_response();
    }
    let bytes = match axum::body::to_bytes(req.into_body(), MAX_BODY).await {
        Ok(b) => b,
        Err(err) => return (axum::http::StatusCode::BAD_REQUEST, err.to_string()).into_response(),
    };
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    info!(%path, "alert received");
    store.lock().unwrap_or_else(|e| e.into_inner()).push(Alert { path, body });
    "ok".into_response()
}
