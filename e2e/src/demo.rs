//! The demo app: a small HTTP server whose behaviour follows the image it was "deployed" with.
//!
//! - `demo:1.0.0` answers 200;
//! - a tag containing `-errors-N` (e.g. `demo:2.0.0-errors-20`) answers exactly N of every 100
//!   requests with 500, spread evenly (deterministic, so tests can count);
//! - a tag containing `-slow-M` (e.g. `demo:2.0.0-slow-800`) adds M milliseconds to every answer.
//!
//! - a tag containing `-crash` (e.g. `demo:2.0.0-crash`) makes the binary exit with status 1
//!   before it listens (a pod that never becomes ready).
//!
//! Errors and latency can be combined (`demo:2-errors-10-slow-200`). Every answer carries the headers
//! [`VERSION_HEADER`] (the image tag) and [`POD_HEADER`] (the pod name). `/metrics` exports the
//! `http_request_duration_seconds` histogram with `method`, `path` and `status` labels;
//! `/healthz` answers 200 without counting. The binary `serin-demo-app` runs one instance.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Body,
    extract::{Request, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use tokio::net::TcpListener;

use crate::metrics::{self, HistogramVec};

/// Response header holding the image tag that answered.
pub const VERSION_HEADER: &str = "x-demo-version";
/// Response header holding the pod name that answered.
pub const POD_HEADER: &str = "x-demo-pod";

/// What an image tag asks the demo app to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Behaviour {
    /// The tag after the last `:` (the whole image if there is none).
    pub version: String,
    /// Percentage of requests answered with 500 (0–100).
    pub error_percent: u32,
    /// Extra latency per request.
    pub delay: Duration,
    /// Exit at start instead of serving.
    pub crash: bool,
}

impl Behaviour {
    /// Parses an image reference such as `demo:2.0.0-errors-20-slow-300`. Unknown parts are
    /// ignored; error percentages above 100 are clamped.
    pub fn from_image(image: &str) -> Self {
        let version = image.rsplit_once(':').map_or(image, |(_, tag)| tag).to_string();
        let parts: Vec<&str> = version.split('-').collect();
        let mut error_percent = 0;
        let mut delay = Duration::ZERO;
        for pair in parts.windows(2) {
            match pair[0] {
                "errors" => error_percent = pair[1].parse::<u32>().unwrap_or(0).min(100),
                "slow" => delay = Duration::from_millis(pair[1].parse::<u64>().unwrap_or(0)),
                _ => {}
            }
        }
        let crash = parts.contains(&"crash");
        Behaviour { version, error_percent, delay, crash }
    }

    /// Whether the request with 0-based sequence number `n` fails: exactly `error_percent` of
    /// every 100 consecutive requests do.
    pub fn fails(&self, n: u64) -> bool {
        let p = u64::from(self.error_percent);
        (n + 1) * p / 100 > n * p / 100
    }
}

/// Settings of one demo app instance.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// Behaviour derived from the image.
    pub behaviour: Behaviour,
    /// Pod name reported in [`POD_HEADER`].
    pub pod_name: String,
}

struct DemoState {
    config: DemoConfig,
    seq: AtomicU64,
    durations: HistogramVec,
}

/// Serves the demo app on `listener` until the future is dropped or the listener fails.
pub async fn serve(listener: TcpListener, config: DemoConfig) -> std::io::Result<()> {
    let state = Arc::new(DemoState {
        config,
        seq: AtomicU64::new(0),
        durations: HistogramVec::new(
            "http_request_duration_seconds",
            "Duration of HTTP requests served by the demo app.",
            metrics::SECONDS_BUCKETS,
        ),
    });
    let app = Router::new().fallback(handle).with_state(state);
    axum::serve(listener, app).await
}

/// Binds 127.0.0.1:`port` (0 = ephemeral) and returns the listener with its address.
pub async fn bind(port: u16) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, port)).await?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

async fn handle(State(state): State<Arc<DemoState>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    match path.as_str() {
        "/metrics" => {
            let mut out = String::new();
            state.durations.render(&mut out);
            ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], out).into_response()
        }
        "/healthz" | "/readyz" => "ok\n".into_response(),
        _ => {
            let start = Instant::now();
            let behaviour = &state.config.behaviour;
            if !behaviour.delay.is_zero() {
                tokio::time::sleep(behaviour.delay).await;
            }
            let n = state.seq.fetch_add(1, Ordering::SeqCst);
            let status = if behaviour.fails(n) { StatusCode::INTERNAL_SERVER_ERROR } else { StatusCode::OK };
            let body = format!("{} {} {}\n", behaviour.version, state.config.pod_name, status.as_u16());
            let mut resp = Response::new(Body::from(body));
            *resp.status_mut() = status;
            let headers = resp.headers_mut();
            if let Ok(v) = HeaderValue::from_str(&behaviour.version) {
                headers.insert(VERSION_HEADER, v);
            }
            if let Ok(v) = HeaderValue::from_str(&state.config.pod_name) {
                headers.insert(POD_HEADER, v);
            }
            state.durations.observe(
                metrics::labels(&[
                    ("method", req.method().as_str()),
                    ("path", "/"),
                    ("status", status.as_str()),
                ]),
                start.elapsed().as_secs_f64(),
            );
            resp
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_image_tags() {
        assert_eq!(
            Behaviour::from_image("demo:1.0.0"),
            Behaviour { version: "1.0.0".into(), error_percent: 0, delay: Duration::ZERO, crash: false }
        );
        let b = Behaviour::from_image("registry:5000/demo:2.0.0-errors-20-slow-800");
        assert_eq!(b.error_percent, 20);
        assert_eq!(b.delay, Duration::from_millis(800));
        assert_eq!(Behaviour::from_image("demo:x-errors-500").error_percent, 100);
        assert!(Behaviour::from_image("demo:2.0.0-crash").crash);
    }

    #[test]
    fn error_share_is_exact_per_hundred() {
        for p in [0, 1, 20, 50, 99, 100] {
            let b = Behaviour { version: "v".into(), error_percent: p, delay: Duration::ZERO, crash: false };
            let failures = (0..100).filter(|n| b.fails(*n)).count();
            assert_eq!(failures as u32, p);
        }
    }
}
