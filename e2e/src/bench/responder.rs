//! A Prometheus-API responder for benchmarks: answers `GET /api/v1/query` at once with one
//! sample, so thousands of canaries can be analysed without a Prometheus that holds their
//! series. The canary a query is about is the `app-NNNNN` name in it (see
//! [`super::fleet::name`]); a canary marked failing gets a 0 % success rate. Every answer is
//! counted and its handling time recorded, so the bench can report (and subtract) the
//! responder's share of a tick.

use std::{
    collections::{HashMap, HashSet},
    net::{Ipv4Addr, SocketAddr},
    sync::{Arc, Mutex, MutexGuard},
    time::{Instant, SystemTime},
};

use axum::{Router, extract::Query, extract::State, response::IntoResponse, routing::get};
use serde_json::json;
use tokio::task::JoinHandle;

use crate::error::BedError;

/// At most this many handling times are kept (a bounded sample; later ones are dropped).
const MAX_SAMPLES: usize = 2_000_000;

#[derive(Default)]
struct Inner {
    queries: u64,
    handling_micros: Vec<u32>,
    failing: HashSet<u32>,
    first_failing_answer: HashMap<u32, SystemTime>,
}

/// Shared state of the responder.
#[derive(Clone, Default)]
pub struct Responder {
    inner: Arc<Mutex<Inner>>,
}

/// A running responder; dropping it stops the server.
pub struct RunningResponder {
    /// The state (counters, failing canaries).
    pub responder: Responder,
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for RunningResponder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RunningResponder {
    /// `http://127.0.0.1:<port>`, the `--metrics-server` for the controller.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Counters read between two points in time.
#[derive(Debug, Clone, Copy, Default)]
pub struct ResponderStats {
    /// Queries answered so far.
    pub queries: u64,
    /// Handling times recorded so far (index into the sample).
    pub samples: usize,
}

impl Responder {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts the responder on an ephemeral port of 127.0.0.1.
    pub async fn start() -> Result<RunningResponder, BedError> {
        let responder = Responder::default();
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(BedError::io("bind the Prometheus responder"))?;
        let addr = listener.local_addr().map_err(BedError::io("responder address"))?;
        let app = Router::new().route("/api/v1/query", get(query)).with_state(responder.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(RunningResponder { responder, addr, task })
    }

    /// From now on, canary `index` fails its success-rate check.
    pub fn set_failing(&self, index: u32) {
        self.lock().failing.insert(index);
    }

    /// When the first failing answer for canary `index` was sent, if one was.
    pub fn first_failing_answer(&self, index: u32) -> Option<SystemTime> {
        self.lock().first_failing_answer.get(&index).copied()
    }

    /// The counters now.
    pub fn stats(&self) -> ResponderStats {
        let inner = self.lock();
        ResponderStats { queries: inner.queries, samples: inner.handling_micros.len() }
    }

    /// Handling times (µs) recorded since `since`.
    pub fn handling_micros_since(&self, since: ResponderStats) -> Vec<u32> {
        self.lock().handling_micros.get(since.samples..).map(<[u32]>::to_vec).unwrap_or_default()
    }
}

/// The canary index named in a query: the digits of the first `app-NNNNN`.
pub fn canary_index(query: &str) -> Option<u32> {
    let at = query.find(super::fleet::PREFIX)? + super::fleet::PREFIX.len();
    let digits: String = query[at..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The value a healthy canary reports for `query`: latency queries get 50 (ms), everything
/// else (success rate, request count) 100.
fn healthy_value(query: &str) -> f64 {
    if query.contains("duration") || query.contains("histogram_quantile") { 50.0 } else { 100.0 }
}

async fn query(
    State(responder): State<Responder>,
    Query(q): Query<HashMap<String, String>>,
) -> impl IntoResponse {
    let started = Instant::now();
    let text = q.get("query").map(String::as_str).unwrap_or_default();
    let index = canary_index(text);
    let success_rate = !(text.contains("duration") || text.contains("histogram_quantile"));
    let value = {
        let mut inner = responder.lock();
        inner.queries += 1;
        let failing = index.is_some_and(|i| inner.failing.contains(&i));
        if failing && success_rate {
            if let Some(i) = index {
                inner.first_failing_answer.entry(i).or_insert_with(SystemTime::now);
            }
            0.0
        } else {
            healthy_value(text)
        }
    };
    let now =
        SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
    let body = json!({
        "status": "success",
        "data": {"resultType": "vector", "result": [{"metric": {}, "value": [now, value.to_string()]}]},
    });
    let micros = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
    {
        let mut inner = responder.lock();
        if inner.handling_micros.len() < MAX_SAMPLES {
            inner.handling_micros.push(micros);
        }
    }
    ([(axum::http::header::CONTENT_TYPE, "application/json")], body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_canary_in_a_rendered_query() {
        let q = r#"sum(rate(istio_requests_total{destination_workload=~"app-00042"}[1m]))"#;
        assert_eq!(canary_index(q), Some(42));
        assert_eq!(canary_index("vector(1)"), None);
        assert_eq!(healthy_value("histogram_quantile(0.99, x)"), 50.0);
    }
}
