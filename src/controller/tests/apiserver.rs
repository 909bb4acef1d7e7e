//! A scripted Kubernetes API behind a `tower_test` mock: it records every request (method,
//! path with query, JSON body) and answers like a tiny API server. Objects are kept by path:
//! a PATCH merges its body into the stored object (creating it; a status write is such a merge
//! patch on the `/status` path, kept there), a PUT replaces it, a GET returns it or 404, a
//! POST (Events) echoes the body. That is enough for the reconciler's
//! reads-after-writes (the router reading the apex Service it just applied) without modelling
//! field ownership.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use http::{Method, Request, Response};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};
use tower_test::mock;

/// One request the client sent.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    /// HTTP method.
    pub method: Method,
    /// Path and query, exactly as sent.
    pub uri: String,
    /// The JSON body (`Null` when empty).
    pub body: Value,
}

impl Call {
    /// `"METHOD uri"`, for comparing call lists.
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.uri)
    }
}

#[derive(Default)]
struct State {
    objects: BTreeMap<String, Value>,
    calls: Vec<Call>,
}

/// The mock API and its client.
#[derive(Clone)]
pub struct MockApi {
    state: Arc<Mutex<State>>,
    /// A client whose requests reach this mock.
    pub client: Client,
}

/// RFC 7386 merge patch (also a fair stand-in for server-side apply of the fields sent).
fn merge(target: &mut Value, patch: &Value) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(target), Some(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    target.remove(key);
                } else {
                    merge(target.entry(key.clone()).or_insert(Value::Null), value);
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

fn not_found(path: &str) -> (u16, Value) {
    let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
        "message": format!("{path} not found"), "reason": "NotFound", "code": 404});
    (404, status)
}

impl MockApi {
    /// Starts the mock; it serves until every client clone is dropped.
    pub fn start() -> Self {
        let (service, mut handle) = mock::pair::<Request<Body>, Response<Body>>();
        let state = Arc::new(Mutex::new(State::default()));
        let served = state.clone();
        tokio::spawn(async move {
            while let Some((request, send)) = handle.next_request().await {
                let method = request.method().clone();
                let uri = request.uri().to_string();
                let bytes = request.into_body().collect_bytes().await.expect("request body");
                let body = if bytes.is_empty() {
                    Value::Null
                } else {
                    serde_json::from_slice(&bytes).expect("json")
                };
                let (status, reply) = served.lock().expect("state").answer(Call { method, uri, body });
                let response = Response::builder()
                    .status(status)
                    .body(Body::from(serde_json::to_vec(&reply).expect("json")))
                    .expect("response");
                send.send_response(response);
            }
        });
        MockApi { state, client: Client::new(service, "default") }
    }

    /// Stores `object` at `path` (e.g. `/apis/apps/v1/namespaces/test/deployments/podinfo`).
    pub fn put(&self, path: &str, object: Value) {
        self.state.lock().expect("state").objects.insert(path.to_string(), object);
    }

    /// The object stored at `path`.
    pub fn get(&self, path: &str) -> Option<Value> {
        self.state.lock().expect("state").objects.get(path).cloned()
    }

    /// The calls since the last `take_calls`, in order.
    pub fn take_calls(&self) -> Vec<Call> {
        std::mem::take(&mut self.state.lock().expect("state").calls)
    }
}

impl State {
    fn answer(&mut self, call: Call) -> (u16, Value) {
        let path = call.uri.split('?').next().unwrap_or_default().to_string();
        let reply = match call.method {
            Method::GET => {
                self.objects.get(&path).cloned().map(|o| (200, o)).unwrap_or_else(|| not_found(&path))
            }
            Method::PATCH => {
                let stored = self.objects.entry(path).or_insert_with(|| json!({}));
                merge(stored, &call.body);
                (200, stored.clone())
            }
            Method::PUT => {
                self.objects.insert(path, call.body.clone());
                (200, call.body.clone())
            }
            Method::POST => (201, call.body.clone()),
            _ => (405, json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 405})),
        };
        self.calls.push(call);
        reply
    }
}
