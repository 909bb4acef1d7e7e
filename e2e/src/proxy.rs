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
//!   `app: <name>-primary` and `app: <name>`. Pods are chosen round robin.
//! - Gateway API (when started with `gateway_api`): if an HTTPRoute named `<service>` exists
//!   in `<namespace>` (`gateway.networking.k8s.io/v1`, reflector on all namespaces), its first
//!   rule's `backendRefs` decide: a backend Service is chosen by smooth weighted round robin
//!   (exact splits, like nginx; `weight` defaults to 1, 0 means none), then that Service's
//!   selector picks the pod. This is how Flagger-style routers split `<name>-primary` and
//!   `<name>-canary`. Matches, filters, hostnames and parentRefs are ignored. The HTTPRoute CRD
//!   must be registered: [`HTTPROUTE_CRD`] is a minimal one (`TestBed` applies it).
//! - Every answer gets the header [`WORKLOAD_HEADER`] naming the Deployment that served it;
//!   the demo app's own headers (`x-demo-version`, `x-demo-pod`) are passed through.
//! - Metrics, one series per reporter, destination Deployment and response code, labelled as
//!   Istio's gateway and destination sidecar would (`reporter="source"` and
//!   `reporter="destination"`, `destination_workload`,
//!   `destination_workload_namespace`, `destination_service_name`,
//!   `destination_service_namespace`, `destination_app`, `response_code`):
//!   `istio_requests_total` and the `istio_request_duration_milliseconds` histogram. An
//!   upstream that cannot be reached counts as a 503 for that workload; a Service with no pods
//!   answers 503 without a series.

use std::{
    collections::{BTreeMap, HashMap},
    net::SocketAddr,
    sync::{
        Arc, Mutex,
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
    api::{ApiResource, DynamicObject, GroupVersionKind},
    runtime::{WatchStreamExt, reflector, reflector::ObjectRef, watcher},
};
use serde_json::{Value, json};
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

/// A minimal CustomResourceDefinition for Gateway API HTTPRoutes (`v1` and `v1beta1`, any
/// content kept, status subresource), enough for routers to read and patch routes.
pub fn httproute_crd() -> Value {
    let version = |name: &str, storage: bool| {
        json!({
            "name": name, "served": true, "storage": storage,
            "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
            "subresources": {"status": {}},
        })
    };
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "httproutes.gateway.networking.k8s.io"},
        "spec": {
            "group": "gateway.networking.k8s.io",
            "names": {
                "kind": "HTTPRoute",
                "listKind": "HTTPRouteList",
                "plural": "httproutes",
                "singular": "httproute",
            },
            "scope": "Namespaced",
            "versions": [version("v1", true), version("v1beta1", false)],
        },
    })
}

/// Name of the CRD [`httproute_crd`] defines.
pub const HTTPROUTE_CRD: &str = "httproutes.gateway.networking.k8s.io";

fn httproute_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute"),
        "httproutes",
    )
}

/// Smooth weighted round robin state per route: the weights it was built for and the current
/// scores.
type WrrState = HashMap<String, (Vec<(String, i64)>, Vec<i64>)>;

struct ProxyState {
    services: reflector::Store<Service>,
    routes: Option<reflector::Store<DynamicObject>>,
    wrr: Mutex<WrrState>,
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
    /// Starts the proxy on 127.0.0.1:`port` (0 = ephemeral), routing with the Services (and,
    /// with `gateway_api`, the HTTPRoutes) seen through `client` and the pods in `endpoints`.
    /// Returns once the caches are synced.
    pub async fn start(
        client: Client,
        endpoints: Endpoints,
        port: u16,
        gateway_api: bool,
    ) -> Result<Self, BedError> {
        let listener = tokio::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, port))
            .await
            .map_err(BedError::io("bind the proxy"))?;
        let addr = listener.local_addr().map_err(BedError::io("proxy address"))?;
        let (reader, writer) = reflector::store();
        let (stop, mut stop_rx) = watch::channel(false);
        let api: Api<Service> = Api::all(client.clone());
        let mut tasks = Vec::new();
        let mut route_reader = None;
        if gateway_api {
            let ar = httproute_resource();
            let writer = reflector::store::Writer::new(ar.clone());
            route_reader = Some(writer.as_reader());
            let routes: Api<DynamicObject> = Api::all_with(client, &ar);
            let mut watch_stop = stop.subscribe();
            tasks.push(tokio::spawn(async move {
                let stream = reflector(writer, watcher(routes, watcher::Config::default())).default_backoff();
                let mut stream = std::pin::pin!(stream);
                loop {
                    tokio::select! {
                        _ = watch_stop.changed() => break,
                        event = stream.next() => match event {
                            Some(Err(err)) => warn!(%err, "proxy: httproute watch error"),
                            Some(Ok(_)) => {}
                            None => break,
                        },
                    }
                }
            }));
        }
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
        tasks.push(watch_task);
        let state = Arc::new(ProxyState {
            services: reader.clone(),
            routes: route_reader.clone(),
            wrr: Mutex::new(HashMap::new()),
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
        tasks.push(serve_task);
        let proxy = Proxy { addr, stop, tasks };
        tokio::time::timeout(Duration::from_secs(10), reader.wait_until_ready())
            .await
            .map_err(|_| BedError::Timeout(Duration::from_secs(10), "proxy service cache sync".into()))?
            .map_err(|e| BedError::Process(format!("proxy service cache: {e}")))?;
        if let Some(routes) = route_reader {
            tokio::time::timeout(Duration::from_secs(10), routes.wait_until_ready())
                .await
                .map_err(|_| BedError::Timeout(Duration::from_secs(10), "proxy httproute cache sync".into()))?
                .map_err(|e| BedError::Process(format!("proxy httproute cache: {e}")))?;
        }
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
    let namespace = namespace.to_string();
    let rest = format!("/{}", parts.next().unwrap_or(""));
    let service = match pick_backend(&state, &namespace, service) {
        Ok(backend) => backend,
        Err(msg) => return text(StatusCode::SERVICE_UNAVAILABLE, msg),
    };
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
    let elapsed_ms = start.elapsed().as_secs_f64() * 1000.0;
    for reporter in REPORTERS {
        let labels = request_labels(reporter, pod, &namespace, &service, status);
        state.requests.inc(labels.clone());
        state.durations.observe(labels, elapsed_ms);
    }
    let mut response = response;
    if let Ok(v) = HeaderValue::from_str(&pod.deployment) {
        response.headers_mut().insert(HeaderName::from_static(WORKLOAD_HEADER), v);
    }
    debug!(%url, status = status.as_u16(), "proxied");
    response
}

/// The Service to send to: the route's weighted choice if an HTTPRoute named `name` exists,
/// else `name` itself.
fn pick_backend(state: &ProxyState, namespace: &str, name: &str) -> Result<String, String> {
    let Some(routes) = &state.routes else { return Ok(name.to_string()) };
    let Some(route) = routes.get(&ObjectRef::new_with(name, httproute_resource()).within(namespace)) else {
        return Ok(name.to_string());
    };
    let backends = route_backends(&route.data);
    let key = format!("{namespace}/{name}");
    let mut wrr = state.wrr.lock().unwrap_or_else(|e| e.into_inner());
    smooth_wrr(&mut wrr, &key, &backends)
        .ok_or_else(|| format!("httproute {key} has no backend with weight > 0\n"))
}

/// The first rule's backendRefs as (Service name, weight), dropping weight 0.
fn route_backends(route: &Value) -> Vec<(String, i64)> {
    route["spec"]["rules"][0]["backendRefs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|b| b["kind"].as_str().unwrap_or("Service") == "Service")
        .filter_map(|b| Some((b["name"].as_str()?.to_string(), b["weight"].as_i64().unwrap_or(1))))
        .filter(|(_, w)| *w > 0)
        .collect()
}

/// Smooth weighted round robin (nginx's): exact proportions, evenly interleaved. The state of a
/// route resets when its weights change.
fn smooth_wrr(state: &mut WrrState, key: &str, backends: &[(String, i64)]) -> Option<String> {
    if backends.is_empty() {
        return None;
    }
    let entry = state.entry(key.to_string()).or_insert_with(|| (Vec::new(), Vec::new()));
    if entry.0 != backends {
        *entry = (backends.to_vec(), vec![0; backends.len()]);
    }
    let total: i64 = backends.iter().map(|(_, w)| w).sum();
    for (score, (_, w)) in entry.1.iter_mut().zip(backends) {
        *score += w;
    }
    let (best, _) = entry.1.iter().enumerate().max_by_key(|(i, s)| (**s, -(*i as i64)))?;
    entry.1[best] -= total;
    Some(backends[best].0.clone())
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

/// The proxy is both the calling gateway (`reporter="source"`, what the Gateway API builtins
/// for Istio query) and the destination sidecar (`reporter="destination"`, what the `istio`
/// builtins query); Istio reports every request from both sides too.
const REPORTERS: [&str; 2] = ["source", "destination"];

fn request_labels(
    reporter: &str,
    pod: &Endpoint,
    namespace: &str,
    service: &str,
    status: StatusCode,
) -> Labels {
    let app = pod.labels.get("app").map(String::as_str).unwrap_or(&pod.deployment);
    metrics::labels(&[
        ("reporter", reporter),
        ("source_workload", "testbed-proxy"),
        ("destination_workload", &pod.deployment),
        ("destination_workload_namespace", &pod.namespace),
        ("destination_service_name", service),
        ("destination_service_namespace", namespace),
        ("destination_app", app),
        ("response_code", status.as_str()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smooth_wrr_splits_exactly_and_resets_on_change() {
        let mut state = WrrState::new();
        let backends = vec![("p".to_string(), 90), ("c".to_string(), 10)];
        let picks: Vec<String> = (0..100).filter_map(|_| smooth_wrr(&mut state, "r", &backends)).collect();
        assert_eq!(picks.iter().filter(|p| *p == "c").count(), 10);
        let backends = vec![("p".to_string(), 0), ("c".to_string(), 100)];
        let backends: Vec<_> = backends.into_iter().filter(|(_, w)| *w > 0).collect();
        assert!((0..10).all(|_| smooth_wrr(&mut state, "r", &backends).as_deref() == Some("c")));
        assert_eq!(smooth_wrr(&mut state, "r", &[]), None);
    }

    #[test]
    fn route_backends_default_weight_and_drop_zero() {
        let route = json!({"spec": {"rules": [{"backendRefs": [
            {"name": "a-primary", "port": 80, "weight": 0},
            {"name": "a-canary", "port": 80},
            {"name": "x", "kind": "ServiceImport", "weight": 5},
        ]}]}});
        assert_eq!(route_backends(&route), vec![("a-canary".to_string(), 1)]);
    }
}
