//! The weighted proxy: the test bed's service mesh. It forwards real HTTP requests to the demo
//! app pods chosen by the routing state in the API stand-in, and exports Istio-shaped request
//! metrics.
//!
//! - Route: `http://<proxy>/<namespace>/<service>/<rest>` is sent to `/<rest>` on a pod of
//!   Service `<service>` (the query string is kept). `/metrics` on the proxy itself is the
//!   metrics page.
//! - Routing state (read through a kube-runtime reflector on Services, all namespaces): the
//!   Service's `spec.selector` picks pods from the simulator's [`Endpoints`] registry, as
//!   kube-proxy would. This is what Serin's `kubernetes` (blue/green) router switches between
//!   `app: <name>-primary` and `app: <name>`. Pods are chosen round robin. HTTPRoute weights
//!   are not implemented.
//! - Every answer gets the header [`WORKLOAD_HEADER`] naming the Deployment that served it;
//!   the demo app's own headers (`x-demo-version`, `x-demo-pod`) are passed through.
//! - Metrics, one series per destination Deployment and response code, labelled as Istio's
//!   destination sidecar would (`reporter="destination"`, `destination_workload`,
//!   `destination_workload_namespace`, `destination_service_name`,
//!   `destination_service_namespace`, `destination_app`, `response_code`):
//!   `istio_requests_total` and the `istio_request_duration_milliseconds` histogram. An
//!   upstream that cannot be reached counts as a 503 for that workload; a Service with no pods
//!   answers 503 without a series.

use std::{
    collections::BTreeMap,
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
    http::{HeaderName, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use kube::{
    Api, Client,
    runtime::{WatchStreamExt, reflector, reflector::ObjectRef, watcher},
};
use tokio::{sync::watch, task::JoinHandle};
use tracing::{debug, info, warn};

use crate::{
    error::BedError,
    metrics::{self, CounterVec, HistogramVec, Labels},
    simulator::{Endpoint, Endpoints},
    util,
};

/// Response header naming the Deployment that served a proxied request.
pub const WORKLOAD_HEADER: &str = "x-testbed-workload";

/// Largest request body forwarded.
const MAX_BODY: usize = 4 * 1024 * 1024;

struct ProxyState {
    services: reflector::Store<Service>,
    endpoints: Endpoints,
    http: reqwest::Client,
    next: AtomicU64,
    requests: CounterVec,
    durations: HistogramVec,
}

/// A running proxy; stops on drop.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Proxy {
    /// Starts the proxy on 127.0.0.1:`port` (0 = ephemeral), routing with the Services seen
    /// through `client` and the pods in `endpoints`. Returns once the Service cache is synced.
    pub async fn start(client: Client, endpoints: Endpoints, port: u16) -> Result<Self, BedError> {
        let listener = tokio::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, port))
            .await
            .map_err(BedError::io("bind the proxy"))?;
        let addr = listener.local_addr().map_err(BedError::io("proxy address"))?;
        let (reader, writer) = reflector::store();
        let (stop, mut stop_rx) = watch::channel(false);
        let api: Api<Service> = Api::all(client);
        let mut watch_stop = stop.subscribe();
        let watch_task = tokio::spawn(async move {
            let stream = reflector(writer, watcher(api, watcher::Config::default())).default_backoff();
            let mut stream = std::pin::pin!(stream);
            loop {
                tokio::select! {
                    _ = watch_stop.changed() => break,
                    event = stream.next() => match event {
                        Some(Err(err)) => warn!(%err, "proxy: service watch error"),
                        Some(Ok(_)) => {}
                        None => break,
                    },
                }
            }
        });
        let state = Arc::new(ProxyState {
            services: reader.clone(),
            endpoints,
            http: util::http_client()?,
            next: AtomicU64::new(0),
            requests: CounterVec::new("istio_requests_total", "Requests seen by the test bed proxy."),
            durations: HistogramVec::new(
                "istio_request_duration_milliseconds",
                "Request durations seen by the test bed proxy, in milliseconds.",
                metrics::MILLIS_BUCKETS,
            ),
        });
        let app = Router::new().fallback(handle).with_state(state);
        let serve_task = tokio::spawn(async move {
            let res = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop_rx.wait_for(|s| *s).await;
                })
                .await;
            if let Err(err) = res {
                warn!(%err, "proxy stopped with an error");
            }
        });
        let proxy = Proxy { addr, stop, tasks: vec![watch_task, serve_task] };
        tokio::time::timeout(Duration::from_secs(10), reader.wait_until_ready())
            .await
            .map_err(|_| BedError::Timeout(Duration::from_secs(10), "proxy service cache sync".into()))?
            .map_err(|e| BedError::Process(format!("proxy service cache: {e}")))?;
        info!(%addr, "proxy serving");
        Ok(proxy)
    }

    /// Listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// URL of a Service through the proxy: `http://<proxy>/<namespace>/<service>/`.
    pub fn service_url(&self, namespace: &str, service: &str) -> String {
        format!("http://{}/{namespace}/{service}/", self.addr)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.send_replace(true);
        for task in self.tasks.drain(..) {
            task.abort();
        }
    }
}

fn text(status: StatusCode, msg: String) -> Response {
    (status, msg).into_response()
}

async fn handle(State(state): State<Arc<ProxyState>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    if path == "/metrics" {
        let mut out = String::new();
        state.requests.render(&mut out);
        state.durations.render(&mut out);
        return ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], out).into_response();
    }
    let mut parts = path.trim_start_matches('/').splitn(3, '/');
    let (Some(namespace), Some(service)) = (parts.next(), parts.next()) else {
        return text(StatusCode::NOT_FOUND, "route is /<namespace>/<service>/<path>\n".into());
    };
    let (namespace, service) = (namespace.to_string(), service.to_string());
    let rest = format!("/{}", parts.next().unwrap_or(""));
    let Some(svc) = state.services.get(&ObjectRef::new(&service).within(&namespace)) else {
        return text(StatusCode::NOT_FOUND, format!("service {namespace}/{service} not found\n"));
    };
    let selector: BTreeMap<String, String> =
        svc.spec.as_ref().and_then(|s| s.selector.clone()).unwrap_or_default();
    let pods = state.endpoints.select(&namespace, &selector);
    if pods.is_empty() {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("no endpoints for {namespace}/{service} (selector {selector:?})\n"),
        );
    }
    let n = state.next.fetch_add(1, Ordering::Relaxed) as usize;
    let pod = &pods[n % pods.len()];
    let query = req.uri().query().map(|q| format!("?{q}")).unwrap_or_default();
    let url = format!("http://{}{rest}{query}", pod.addr);
    let start = Instant::now();
    let response = forward(&state.http, req, &url).await;
    let (status, response) = match response {
        Ok(r) => (r.status(), r),
        Err(msg) => {
            warn!(%url, %msg, "proxy: upstream failed");
            (StatusCode::SERVICE_UNAVAILABLE, text(StatusCode::SERVICE_UNAVAILABLE, format!("{msg}\n")))
        }
    };
    let labels = destination_labels(pod, &namespace, &service, status);
    state.requests.inc(labels.clone());
    state.durations.observe(labels, start.elapsed().as_secs_f64() * 1000.0);
    let mut response = response;
    if let Ok(v) = HeaderValue::from_str(&pod.deployment) {
        response.headers_mut().insert(HeaderName::from_static(WORKLOAD_HEADER), v);
    }
    debug!(%url, status = status.as_u16(), "proxied");
    response
}

async fn forward(http: &reqwest::Client, req: Request, url: &str) -> Result<Response, String> {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, MAX_BODY).await.map_err(|e| format!("request body: {e}"))?;
    let mut headers = parts.headers;
    headers.remove(header::HOST);
    let upstream = http
        .request(parts.method, url)
        .headers(headers)
        .body(body)
        .send()
        .await
        .map_err(|e| format!("upstream {url}: {e}"))?;
    let status = upstream.status();
    let headers = upstream.headers().clone();
    let bytes = upstream.bytes().await.map_err(|e| format!("upstream body {url}: {e}"))?;
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    for (name, value) in headers.iter() {
        if name != header::CONNECTION && name != header::TRANSFER_ENCODING && name != header::CONTENT_LENGTH {
            response.headers_mut().append(name.clone(), value.clone());
        }
    }
    Ok(response)
}

fn destination_labels(pod: &Endpoint, namespace: &str, service: &str, status: StatusCode) -> Labels {
    let app = pod.labels.get("app").map(String::as_str).unwrap_or(&pod.deployment);
    metrics::labels(&[
        ("reporter", "destination"),
        ("source_workload", "testbed-proxy"),
        ("destination_workload", &pod.deployment),
        ("destination_workload_namespace", &pod.namespace),
        ("destination_service_name", service),
        ("destination_service_namespace", namespace),
        ("destination_app", app),
        ("response_code", status.as_str()),
    ])
}
