//! HTTP routing: parses Kubernetes API paths and query parameters and dispatches to discovery,
//! the verbs and watches. Also the [`ApiServer`] handle used by tests and the binary.

use std::{
    collections::HashMap,
    net::{Ipv4Addr, SocketAddr},
    path::Path,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::{Query, State, rejection::QueryRejection},
    http::{HeaderMap, Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};
use tokio::{sync::watch, task::JoinHandle};

use crate::{
    audit::{self, AuditRecord},
    delete::{self, DeleteParams},
    discovery,
    error::{ApiError, ServerError},
    kubeconfig, ops,
    ops::{Target, WriteParams},
    patch::PatchKind,
    resource::ResourceInfo,
    selector::{FieldSelector, LabelSelector, Selectors},
    store::{Key, Store, StoreConfig},
    watch::{self as watching, WatchRequest},
};

/// Server tunables.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Interval between BOOKMARK events on watches that allow them.
    pub bookmark_interval: Duration,
    /// Number of changes kept for watch replay (older versions get 410 Gone).
    pub history_limit: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig { bookmark_interval: Duration::from_secs(5), history_limit: 10_000 }
    }
}

/// Shared state of a running server.
#[derive(Debug)]
pub struct AppState {
    store: Mutex<Store>,
    /// Interval between bookmarks.
    pub bookmark_interval: Duration,
    /// `host:port` the server listens on.
    pub server_address: String,
    /// Set to `true` on shutdown; watches end.
    pub shutdown: watch::Sender<bool>,
    /// Bumped to make every open watch end with a 410 Gone ERROR event.
    pub expire: watch::Sender<u64>,
    /// Number of open watch streams.
    pub open_watches: AtomicUsize,
    /// Every resource request, in order (see [`crate::audit`]).
    pub audit: Mutex<Vec<AuditRecord>>,
}

impl AppState {
    /// Locks the store (a poisoned lock is recovered: the store has no invariants spanning a panic).
    pub fn lock(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A JSON response.
pub fn json_response(code: StatusCode, body: &Value) -> Response {
    (code, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn ok(body: &Value) -> Response {
    json_response(StatusCode::OK, body)
}

fn not_found_path(path: &str) -> ApiError {
    ApiError::NoRoute(path.into())
}

/// A parsed resource path.
struct ResourcePath {
    group: String,
    version: String,
    namespace: Option<String>,
    plural: String,
    name: Option<String>,
    subresource: Option<String>,
}

/// Parses the part after `/api/v1` or `/apis/<g>/<v>`.
fn parse_resource_path(group: &str, version: &str, rest: &[&str]) -> Option<ResourcePath> {
    let namespaced_form = rest.first() == Some(&"namespaces")
        && rest.len() >= 3
        && !(group.is_empty() && rest.len() == 3 && matches!(rest[2], "status" | "finalize"));
    let (namespace, tail) =
        if namespaced_form { (rest.get(1).map(|s| s.to_string()), &rest[2..]) } else { (None, rest) };
    let (plural, name, subresource) = match tail {
        [p] => (p, None, None),
        [p, n] => (p, Some(n.to_string()), None),
        [p, n, s] => (p, Some(n.to_string()), Some(s.to_string())),
        _ => return None,
    };
    Some(ResourcePath {
        group: group.into(),
        version: version.into(),
        namespace,
        plural: plural.to_string(),
        name,
        subresource,
    })
}

fn flag(q: &HashMap<String, String>, key: &str) -> bool {
    q.get(key).is_some_and(|v| v == "true" || v == "1")
}

fn selectors(q: &HashMap<String, String>) -> Result<Selectors, ApiError> {
    Ok(Selectors {
        labels: LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or_default())?,
        fields: FieldSelector::parse(q.get("fieldSelector").map(String::as_str).unwrap_or_default())?,
    })
}

fn write_params(q: &HashMap<String, String>, headers: &HeaderMap, apply: bool) -> WriteParams {
    let from_agent = || {
        headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.split('/').next().unwrap_or(ua).to_string())
            .unwrap_or_else(|| "unknown".into())
    };
    let field_manager = match q.get("fieldManager") {
        Some(m) if !m.is_empty() => m.clone(),
        _ if apply => String::new(),
        _ => from_agent(),
    };
    WriteParams {
        field_manager,
        force: flag(q, "force"),
        dry_run: q.get("dryRun").is_some_and(|d| d == "All"),
    }
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
}

fn delete_params(q: &HashMap<String, String>, body: &[u8]) -> Result<DeleteParams, ApiError> {
    let opts = if body.iter().all(u8::is_ascii_whitespace) { json!({}) } else { parse_json(body)? };
    let dry_run = q.get("dryRun").is_some_and(|d| d == "All")
        || opts["dryRun"].as_array().is_some_and(|a| a.iter().any(|d| d == "All"));
    Ok(DeleteParams {
        propagation: q
            .get("propagationPolicy")
            .cloned()
            .or_else(|| opts["propagationPolicy"].as_str().map(str::to_string)),
        precondition_rv: opts["preconditions"]["resourceVersion"].as_str().map(str::to_string),
        precondition_uid: opts["preconditions"]["uid"].as_str().map(str::to_string),
        dry_run,
    })
}

/// Resolves the resource and checks the path shape against its scope.
fn resolve(state: &AppState, p: &ResourcePath, path: &str) -> Result<ResourceInfo, ApiError> {
    let info = state
        .lock()
        .registry
        .find(&p.group, &p.version, &p.plural)
        .cloned()
        .ok_or_else(|| not_found_path(path))?;
    if p.namespace.is_some() && !info.namespaced {
        return Err(not_found_path(path));
    }
    if let Some(sub) = &p.subresource
        && !(sub == "status" && info.has_status)
    {
        return Err(not_found_path(path));
    }
    if info.namespaced && p.namespace.is_none() && p.name.is_some() {
        return Err(not_found_path(path));
    }
    Ok(info)
}

/// Handles one resource request and writes it to the audit log.
fn audited_request(
    state: &Arc<AppState>,
    method: &Method,
    p: ResourcePath,
    path: &str,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let mut record = AuditRecord {
        user: audit::user(headers),
        verb: audit::verb(method, p.name.is_some(), flag(q, "watch")).to_string(),
        group: p.group.clone(),
        resource: p.plural.clone(),
        subresource: p.subresource.clone(),
        namespace: p.namespace.clone(),
        name: p.name.clone(),
        code: 0,
    };
    let result = resource_request(state, method, p, path, q, headers, body);
    record.code = match &result {
        Ok(response) => response.status().as_u16(),
        Err(e) => e.code(),
    };
    state.audit.lock().unwrap_or_else(|e| e.into_inner()).push(record);
    result
}

/// Handles one resource request.
fn resource_request(
    state: &Arc<AppState>,
    method: &Method,
    p: ResourcePath,
    path: &str,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let info = resolve(state, &p, path)?;
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if matches!(*method, Method::POST | Method::PUT) && content_type.contains("protobuf") {
        return Err(ApiError::UnsupportedMediaType(format!(
            "the body of the request was in an unknown format - accepted media types include: application/json; got {content_type}"
        )));
    }
    let target = Target { info, namespace: p.namespace.clone(), subresource: p.subresource.clone() };
    match (method.clone(), p.name.as_deref()) {
        (Method::GET, name) if flag(q, "watch") && p.subresource.is_none() => {
            let mut selectors = selectors(q)?;
            if let Some(n) = name {
                // Watching a single object: the same as a metadata.name field selector.
                selectors.fields = FieldSelector::parse(&format!(
                    "metadata.name={n}{}",
                    q.get("fieldSelector").map(|f| format!(",{f}")).unwrap_or_default()
                ))?;
            }
            let req = WatchRequest {
                target,
                selectors,
                resource_version: q.get("resourceVersion").cloned().unwrap_or_default(),
                bookmarks: flag(q, "allowWatchBookmarks"),
                timeout: q.get("timeoutSeconds").and_then(|t| t.parse().ok()).map(Duration::from_secs),
                send_initial_events: flag(q, "sendInitialEvents"),
            };
            let stream = watching::start(state.clone(), req)?;
            Ok(Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::TRANSFER_ENCODING, "chunked")
                .body(Body::from_stream(stream))
                .map_err(|e| ApiError::Internal(e.to_string()))?)
        }
        (Method::GET, None) => Ok(ok(&ops::list(&state.lock(), &target, &selectors(q)?))),
        (Method::GET, Some(name)) => Ok(ok(&ops::get(&state.lock(), &target, name)?)),
        (Method::POST, None) => {
            let obj =
                ops::create(&mut state.lock(), &target, parse_json(body)?, &write_params(q, headers, false))?;
            Ok(json_response(StatusCode::CREATED, &obj))
        }
        (Method::PUT, Some(name)) => Ok(ok(&ops::update(
            &mut state.lock(),
            &target,
            name,
            parse_json(body)?,
            &write_params(q, headers, false),
        )?)),
        (Method::PATCH, Some(name)) => {
            let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
            let kind = PatchKind::from_content_type(ct)?;
            let params = write_params(q, headers, kind == PatchKind::Apply);
            let (obj, created) = ops::patch(&mut state.lock(), &target, name, kind, body, &params)?;
            Ok(json_response(if created { StatusCode::CREATED } else { StatusCode::OK }, &obj))
        }
        (Method::DELETE, Some(name)) => {
            Ok(ok(&delete::delete(&mut state.lock(), &target, name, &delete_params(q, body)?)?))
        }
        (Method::DELETE, None) => {
            let d = delete_params(q, body)?;
            Ok(ok(&delete::delete_collection(&mut state.lock(), &target, &selectors(q)?, &d)?))
        }
        (m, _) => Err(ApiError::MethodNotAllowed(format!(
            "the server does not allow this method ({m}) on the requested resource"
        ))),
    }
}

/// The single entry point: discovery, health and resource paths.
async fn handle(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let q = match query {
        Ok(Query(q)) => q,
        Err(e) => return ApiError::BadRequest(format!("invalid query: {e}")).into_response(),
    };
    let path = uri.path().to_string();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let get = method == Method::GET;
    let result = match segs.as_slice() {
        ["version"] if get => Ok(ok(&discovery::version())),
        ["healthz" | "livez" | "readyz"] if get => Ok("ok".into_response()),
        ["api"] if get => Ok(ok(&discovery::core_versions(&state.server_address))),
        ["apis"] if get => Ok(ok(&discovery::group_list(&state.lock().registry))),
        ["api", "v1"] if get => discovery::resource_list(&state.lock().registry, "", "v1")
            .map(|v| ok(&v))
            .ok_or_else(|| not_found_path(&path)),
        ["apis", g] if get => {
            discovery::group(&state.lock().registry, g).map(|v| ok(&v)).ok_or_else(|| not_found_path(&path))
        }
        ["apis", g, v] if get => discovery::resource_list(&state.lock().registry, g, v)
            .map(|v| ok(&v))
            .ok_or_else(|| not_found_path(&path)),
        ["api", "v1", rest @ ..] => match parse_resource_path("", "v1", rest) {
            Some(p) => audited_request(&state, &method, p, &path, &q, &headers, &body),
            None => Err(not_found_path(&path)),
        },
        ["apis", g, v, rest @ ..] => match parse_resource_path(g, v, rest) {
            Some(p) => audited_request(&state, &method, p, &path, &q, &headers, &body),
            None => Err(not_found_path(&path)),
        },
        _ => Err(not_found_path(&path)),
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

/// A running API stand-in on 127.0.0.1.
#[derive(Debug)]
pub struct ApiServer {
    addr: SocketAddr,
    state: Arc<AppState>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl ApiServer {
    /// Starts a server on an ephemeral port.
    pub async fn start(config: ServerConfig) -> Result<Self, ServerError> {
        Self::bind(0, config).await
    }

    /// Starts a server on `127.0.0.1:port` (0 = ephemeral), with the usual namespaces present.
    pub async fn bind(port: u16, config: ServerConfig) -> Result<Self, ServerError> {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
        let addr = listener.local_addr()?;
        let store = Store::new(&StoreConfig { history_limit: config.history_limit });
        let state = Arc::new(AppState {
            store: Mutex::new(store),
            bookmark_interval: config.bookmark_interval,
            server_address: addr.to_string(),
            shutdown: watch::channel(false).0,
            expire: watch::channel(0).0,
            open_watches: AtomicUsize::new(0),
            audit: Mutex::new(Vec::new()),
        });
        seed_namespaces(&state);
        let app = Router::new().fallback(handle).with_state(state.clone());
        let mut stop = state.shutdown.subscribe();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await
        });
        Ok(ApiServer { addr, state, task: Some(task) })
    }

    /// Listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig document pointing at this server (namespace `default`).
    pub fn kubeconfig(&self) -> String {
        kubeconfig::render(&self.url())
    }

    /// Writes [`Self::kubeconfig`] to `path`.
    pub fn write_kubeconfig(&self, path: &Path) -> Result<(), ServerError> {
        std::fs::write(path, self.kubeconfig()).map_err(|e| ServerError::Kubeconfig(e.to_string()))
    }

    /// A kube-rs client configuration for this server.
    pub fn client_config(&self) -> Result<kube::Config, ServerError> {
        let uri = self
            .url()
            .parse()
            .map_err(|e: axum::http::uri::InvalidUri| ServerError::Kubeconfig(e.to_string()))?;
        Ok(kube::Config::new(uri))
    }

    /// A kube-rs client for this server.
    pub fn client(&self) -> Result<kube::Client, ServerError> {
        kube::Client::try_from(self.client_config()?).map_err(|e| ServerError::Kubeconfig(e.to_string()))
    }

    /// The latest resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.state.lock().current_rv()
    }

    /// Number of watch streams currently open.
    pub fn open_watches(&self) -> usize {
        self.state.open_watches.load(Ordering::SeqCst)
    }

    /// Every resource request served so far, in order: who (the impersonated user), which verb
    /// on which resource, and the answer's status code.
    pub fn audit_log(&self) -> Vec<AuditRecord> {
        self.state.audit.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// How many requests the audit log holds (a cheap position for [`Self::audit_since`]).
    pub fn audit_len(&self) -> usize {
        self.state.audit.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// The audit records from position `from` on (see [`Self::audit_len`]); copies only those,
    /// so benchmarks can count the requests of a time window without cloning the whole log.
    pub fn audit_since(&self, from: usize) -> Vec<AuditRecord> {
        let log = self.state.audit.lock().unwrap_or_else(|e| e.into_inner());
        log.get(from..).map(<[AuditRecord]>::to_vec).unwrap_or_default()
    }

    /// Drops the watch history: watches from any earlier resourceVersion get 410 Gone.
    pub fn compact_history(&self) {
        self.state.lock().compact();
    }

    /// Compacts the history and ends every open watch with an ERROR 410 Gone event, as an
    /// apiserver does when its watch cache falls behind etcd compaction.
    pub fn expire_watches(&self) {
        self.compact_history();
        self.state.expire.send_modify(|g| *g += 1);
    }

    /// Stops the server: ends watches, then waits (bounded) for connections to close.
    pub async fn shutdown(mut self) {
        self.state.shutdown.send_replace(true);
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(Duration::from_secs(5), &mut task).await.is_err()
        {
            task.abort();
        }
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.state.shutdown.send_replace(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Creates `default`, `kube-system`, `kube-public` and `kube-node-lease`.
fn seed_namespaces(state: &AppState) {
    let mut store = state.lock();
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let rv = store.next_rv();
        let obj = json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": { "name": ns, "uid": uuid::Uuid::new_v4().to_string(), "resourceVersion": rv.to_string(),
                          "creationTimestamp": ops::now(), "labels": { "kubernetes.io/metadata.name": ns } },
            "spec": { "finalizers": ["kubernetes"] },
            "status": { "phase": "Active" },
        });
        let key = Key {
            group: String::new(),
            plural: "namespaces".into(),
            namespace: String::new(),
            name: ns.into(),
        };
        store.put(key, obj, rv);
    }
}
