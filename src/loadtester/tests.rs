//! End-to-end tests over HTTP: a load tester and a tiny target server, both on 127.0.0.1:0.
//! Loads are short (≤ 2 s) and rate assertions are loose.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::any;
use serde_json::{Value, json};

use super::{Config, LoadTester, namespace_regexp, serve};
use crate::webhook::caller::{HookCall, HttpCaller, SecretHeaders, WebhookCaller};
use crate::webhook::payload::CanaryWebhookPayload;

struct Running {
    base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn start(app: Router) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Self { base, stop: Some(stop), task }
    }

    async fn tester(config: Config) -> Self {
        let tester = Arc::new(LoadTester::new(config).expect("tester"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = serve(listener, tester, async {
                let _ = stopped.await;
            })
            .await;
        });
        Self { base, stop: Some(stop), task }
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.abort();
        let _ = self.task.await;
    }
}

/// A target: `/ok` answers 200, `/fail` 500, `/half` 500 to every other request, `/expect` 200
/// only with `Host: podinfo.example` and `X-Canary: insider`; counts every request.
async fn target() -> (Running, Arc<AtomicU64>) {
    let hits = Arc::new(AtomicU64::new(0));
    let counter = hits.clone();
    let app = Router::new().route(
        "/{what}",
        any(move |axum::extract::Path(what): axum::extract::Path<String>, headers: axum::http::HeaderMap| {
            let counter = counter.clone();
            async move {
                let hit = counter.fetch_add(1, Ordering::Relaxed);
                let header =
                    |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                match what.as_str() {
                    "fail" => StatusCode::INTERNAL_SERVER_ERROR,
                    "expect" if header("host") != "podinfo.example" || header("x-canary") != "insider" => {
                        StatusCode::INTERNAL_SERVER_ERROR
                    }
                    "half" if hit.is_multiple_of(2) => StatusCode::INTERNAL_SERVER_ERROR,
                    _ => StatusCode::OK,
                }
            }
        }),
    );
    (Running::start(app).await, hits)
}

fn payload(metadata: Value) -> Value {
    json!({"name": "podinfo", "namespace": "test", "phase": "Progressing", "checksum": "rev1", "metadata": metadata})
}

async fn post(base: &str, path: &str, body: Value) -> (u16, String) {
    let response =
        reqwest::Client::new().post(format!("{base}{path}")).json_body(&body).send().await.expect("send");
    let status = response.status().as_u16();
    (status, response.text().await.expect("text"))
}

trait JsonBody {
    fn json_body(self, body: &Value) -> Self;
}

impl JsonBody for reqwest::RequestBuilder {
    fn json_body(self, body: &Value) -> Self {
        self.header("content-type", "application/json").body(body.to_string())
    }
}

/// Polls `load-result` until the load has finished (at most ~6 s).
async fn finished_result(base: &str, metadata: Value) -> (u16, Value) {
    for _ in 0..60 {
        let (status, body) = post(base, "/", payload(metadata.clone())).await;
        if status != 404 {
            let value: Value = serde_json::from_str(&body).expect("json result");
            if value["summary"]["state"] == "finished" {
                return (status, value);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("load did not finish");
}

#[tokio::test]
async fn native_load_at_a_rate_sends_about_the_expected_count_and_reports_it() {
    let (target, hits) = target().await;
    let tester = Running::tester(Config::default()).await;
    let metadata = json!({"type": "load", "task": "steady", "url": format!("{}/ok", target.base),
        "rate": "40", "duration": "1s"});
    let (status, body) = post(&tester.base, "/", payload(metadata)).await;
    assert_eq!((status, body.as_str()), (202, "load steady started"));

    let (status, result) =
        finished_result(&tester.base, json!({"type": "load-result", "task": "steady"})).await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["verdict"], "passed");
    let requests = result["summary"]["requests"].as_u64().expect("requests");
    assert!((20..=60).contains(&requests), "40 req/s for 1 s sent {requests}");
    assert_eq!(hits.load(Ordering::Relaxed), requests);
    assert_eq!(result["summary"]["errors"], 0);
    assert!(result["summary"]["p50Ms"].as_f64().is_some() && result["summary"]["p99Ms"].as_f64().is_some());
    assert_eq!(result["summary"]["statuses"]["200"], requests);

    let metrics =
        reqwest::get(format!("{}/metrics", tester.base)).await.expect("get").text().await.expect("text");
    assert!(
        metrics.contains(&format!(
            "serin_loadtester_requests_total{{name=\"podinfo\",namespace=\"test\"}} {requests}"
        )),
        "{metrics}"
    );
    tester.stop().await;
    target.stop().await;
}

#[tokio::test]
async fn hey_commands_run_natively_once_while_running() {
    let (target, hits) = target().await;
    let tester = Running::tester(Config::default()).await;
    let cmd = format!(
        "hey -z 1s -q 10 -c 2 -m GET -H 'X-Canary: insider' -host podinfo.example {}/expect",
        target.base
    );
    let (status, first) = post(&tester.base, "/", payload(json!({"cmd": cmd}))).await;
    assert_eq!(status, 202, "{first}");
    assert!(first.ends_with("started"), "{first}");
    let (status, second) = post(&tester.base, "/", payload(json!({"type": "cmd", "cmd": cmd}))).await;
    assert_eq!(status, 202);
    assert!(second.ends_with("is already running"), "{second}");

    // No task name: the canary's latest load.
    let (status, result) = finished_result(&tester.base, json!({"type": "load-result"})).await;
    assert_eq!(status, 200, "{result}");
    let requests = result["summary"]["requests"].as_u64().expect("requests");
    assert!((10..=30).contains(&requests), "20 req/s for 1 s sent {requests}");
    assert_eq!(hits.load(Ordering::Relaxed), requests, "a second load ran");
    assert_eq!(result["summary"]["errors"], 0, "Host or X-Canary header not sent: {result}");
    tester.stop().await;
    target.stop().await;
}

#[tokio::test]
async fn failed_loads_are_reported_as_failures() {
    let (target, _) = target().await;
    let tester = Running::tester(Config::default()).await;
    let errors = json!({"type": "load", "task": "errors", "url": format!("{}/half", target.base),
        "requests": "10", "concurrency": "1", "maxErrorRate": "5"});
    assert_eq!(post(&tester.base, "/", payload(errors)).await.0, 202);
    let (status, result) =
        finished_result(&tester.base, json!({"type": "load-result", "task": "errors"})).await;
    assert_eq!(status, 500, "{result}");
    assert_eq!(result["verdict"], "failed");
    assert_eq!(result["reason"], "error rate 50.00% is above maxErrorRate 5%", "{result}");
    let statuses = &result["summary"]["statuses"];
    assert_eq!((statuses["500"].as_u64(), statuses["200"].as_u64()), (Some(5), Some(5)));
    // The result call's own budget overrides the load's.
    let (status, lenient) =
        finished_result(&tester.base, json!({"type": "load-result", "task": "errors", "maxErrorRate": "60"}))
            .await;
    assert_eq!((status, lenient["verdict"].as_str()), (200, Some("passed")), "{lenient}");

    let all = json!({"type": "load", "task": "all", "url": format!("{}/fail", target.base), "requests": "4"});
    assert_eq!(post(&tester.base, "/", payload(all)).await.0, 202);
    let (status, result) = finished_result(&tester.base, json!({"type": "load-result", "task": "all"})).await;
    assert_eq!((status, result["reason"].as_str()), (500, Some("all 4 requests failed")), "{result}");

    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
    let refused = json!({"type": "load", "task": "refused", "url": format!("http://{closed}/"),
        "requests": "5", "concurrency": "1"});
    assert_eq!(post(&tester.base, "/", payload(refused)).await.0, 202);
    let (status, result) =
        finished_result(&tester.base, json!({"type": "load-result", "task": "refused"})).await;
    assert_eq!(status, 500, "{result}");
    let reason = result["reason"].as_str().expect("reason");
    assert!(reason.starts_with("all 5 requests failed (first error: connect"), "{reason}");

    // Unknown task, and a result of another revision, are not found.
    let (status, _) = post(&tester.base, "/", payload(json!({"type": "load-result", "task": "nope"}))).await;
    assert_eq!(status, 404);
    let mut other = payload(json!({"type": "load-result", "task": "errors"}));
    other["checksum"] = json!("rev2");
    assert_eq!(post(&tester.base, "/", other).await.0, 404);
    tester.stop().await;
    target.stop().await;
}

#[tokio::test]
async fn gates_open_close_check_and_survive_a_restart() {
    let dir = std::env::temp_dir().join(format!("serin-loadtester-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let state: PathBuf = dir.join("gates.json");
    let _ = std::fs::remove_file(&state);
    let config = Config { state_file: Some(state.clone()), ..Config::default() };
    let canary = json!({"name": "podinfo", "namespace": "test"});

    let first = Running::tester(config.clone()).await;
    assert_eq!(post(&first.base, "/gate/approve", json!({})).await, (200, "Approved".into()));
    assert_eq!(post(&first.base, "/gate/halt", json!({})).await, (403, "Forbidden".into()));
    assert_eq!(post(&first.base, "/gate/check", payload(json!({}))).await.0, 403);
    assert_eq!(post(&first.base, "/gate/open", canary.clone()).await, (202, "Gate opened".into()));
    assert_eq!(post(&first.base, "/gate/check", payload(json!({}))).await, (200, "Approved".into()));
    assert_eq!(post(&first.base, "/rollback/check", payload(json!({}))).await.0, 403);
    assert_eq!(post(&first.base, "/rollback/open", canary.clone()).await.0, 202);
    first.stop().await;

    let second = Running::tester(config.clone()).await;
    // The controller's own caller sees the gate open after the restart.
    let call = HookCall {
        name: "approval".into(),
        kind: crate::crd::canary::WebhookType::ConfirmPromotion,
        url: format!("{}/gate/check", second.base),
        timeout: Duration::from_secs(5),
        retries: 0,
        headers: Default::default(),
        secret_headers: SecretHeaders::default(),
        disable_tls: false,
        mute_alert: false,
        payload: CanaryWebhookPayload {
            name: "podinfo".into(),
            namespace: "test".into(),
            phase: "Progressing".into(),
            checksum: "rev1".into(),
            metadata: Default::default(),
        },
    };
    let report = HttpCaller::new().expect("caller").call(&call).await;
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(post(&second.base, "/rollback/check", payload(json!({}))).await.0, 200);
    assert_eq!(post(&second.base, "/gate/close", canary.clone()).await, (202, "Gate closed".into()));
    assert_eq!(post(&second.base, "/gate/check", payload(json!({}))).await.0, 403);
    assert_eq!(post(&second.base, "/rollback/close", canary.clone()).await.0, 202);
    assert_eq!(post(&second.base, "/rollback/check", payload(json!({}))).await.0, 403);

    // A gate opened for one release closes when the next release checks it.
    assert_eq!(post(&second.base, "/gate/open", canary.clone()).await.0, 202);
    assert_eq!(post(&second.base, "/gate/check", payload(json!({}))).await.0, 200);
    let mut next = payload(json!({}));
    next["checksum"] = json!("rev2");
    assert_eq!(post(&second.base, "/gate/check", next).await.0, 403);
    assert_eq!(post(&second.base, "/gate/open", json!({"name": "podinfo"})).await.0, 400);
    second.stop().await;

    let third = Running::tester(config).await;
    assert_eq!(
        post(&third.base, "/gate/check", payload(json!({}))).await.0,
        403,
        "auto-close was not persisted"
    );
    third.stop().await;
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[tokio::test]
async fn shell_is_refused_without_allow_shell() {
    let tester = Running::tester(Config::default()).await;
    for metadata in [
        json!({"type": "bash", "cmd": "echo hi"}),
        json!({"cmd": "echo hi"}),
        json!({"type": "kubectl", "cmd": "get pods"}),
    ] {
        let (status, body) = post(&tester.base, "/", payload(metadata.clone())).await;
        assert_eq!(status, 403, "{metadata}: {body}");
        assert!(body.contains("--allow-shell"), "{body}");
    }
    tester.stop().await;
}

#[tokio::test]
async fn shell_runs_with_allow_shell() {
    let tester = Running::tester(Config { allow_shell: true, ..Config::default() }).await;
    let ok = json!({"type": "bash", "cmd": "echo hi", "returnCmdOutput": "true"});
    assert_eq!(post(&tester.base, "/", payload(ok)).await, (200, "hi\n".into()));
    let (status, body) =
        post(&tester.base, "/", payload(json!({"type": "bash", "cmd": "echo oops >&2; exit 3"}))).await;
    assert_eq!(status, 500);
    assert!(body.contains("oops"), "{body}");
    let background = json!({"cmd": "sleep 0.2"});
    assert_eq!(post(&tester.base, "/", payload(background.clone())).await, (202, "command started".into()));
    assert_eq!(
        post(&tester.base, "/", payload(background)).await,
        (202, "command is already running".into())
    );
    tester.stop().await;
}

#[tokio::test]
async fn bad_requests_and_the_namespace_authorizer() {
    let config =
        Config { namespace_regexp: Some(namespace_regexp("test|staging").expect("re")), ..Config::default() };
    let tester = Running::tester(config).await;
    let (status, body) =
        post(&tester.base, "/", payload(json!({"cmd": "hey -z 1s -x http://p/ http://x/"}))).await;
    assert_eq!((status, body.as_str()), (400, "unsupported hey flag -x"));
    assert_eq!(
        post(&tester.base, "/", payload(json!({}))).await,
        (400, "metadata not found in payload".into())
    );
    let response = reqwest::Client::new()
        .post(format!("{}/", tester.base))
        .body("{not json")
        .send()
        .await
        .expect("send");
    assert_eq!(response.status().as_u16(), 400);

    let mut elsewhere = payload(json!({"type": "load-result"}));
    elsewhere["namespace"] = json!("test-other");
    let (status, body) = post(&tester.base, "/", elsewhere.clone()).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("--namespace-regexp"));
    assert_eq!(post(&tester.base, "/gate/check", elsewhere).await.0, 403);

    let health = reqwest::get(format!("{}/healthz", tester.base)).await.expect("get");
    assert_eq!(health.status().as_u16(), 200);
    tester.stop().await;
}

#[tokio::test]
async fn a_result_request_racing_the_load_start_waits_for_it() {
    let (target, _) = target().await;
    let tester = Running::tester(Config::default()).await;
    let base = tester.base.clone();
    let result = tokio::spawn(async move {
        post(&base, "/", payload(json!({"type": "load-result", "task": "race"}))).await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let load = json!({"type": "load", "task": "race", "url": format!("{}/ok", target.base),
        "rate": "10", "duration": "1s"});
    assert_eq!(post(&tester.base, "/", payload(load)).await.0, 202);
    let (status, body) = result.await.expect("joined");
    assert_eq!(status, 200, "{body}");
    let value: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        (value["verdict"].as_str(), value["summary"]["state"].as_str()),
        (Some("passed"), Some("running"))
    );
    finished_result(&tester.base, json!({"type": "load-result", "task": "race"})).await;
    tester.stop().await;
    target.stop().await;
}
