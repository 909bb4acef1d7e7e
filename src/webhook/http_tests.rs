//! The HTTP caller and `run_all` against a real local receiver (axum on 127.0.0.1:0).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;

use super::caller::{BODY_LIMIT, Backoff, HookCall, HookError, HttpCaller, SecretHeaders, WebhookCaller};
use super::gates::{self, KindAnswer};
use super::payload::CanaryWebhookPayload;
use crate::crd::canary::WebhookType;

#[derive(Default)]
struct Receiver {
    requests: Mutex<Vec<(HeaderMap, String)>>,
    hits: AtomicU32,
}

async fn handle(
    State(receiver): State<Arc<Receiver>>,
    Path(behaviour): Path<String>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, String) {
    let hit = receiver.hits.fetch_add(1, Ordering::SeqCst) + 1;
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    receiver.requests.lock().expect("lock").push((headers, body));
    match behaviour.as_str() {
        "ok" => (StatusCode::OK, "approved".into()),
        "203" => (StatusCode::NON_AUTHORITATIVE_INFORMATION, String::new()),
        "forbidden" => (StatusCode::FORBIDDEN, "gate closed".into()),
        "big500" => (StatusCode::INTERNAL_SERVER_ERROR, "x".repeat(4 * BODY_LIMIT)),
        "echo" => (StatusCode::UNAUTHORIZED, format!("bad token {auth}")),
        "flaky" if hit < 3 => (StatusCode::SERVICE_UNAVAILABLE, "warming up".into()),
        "flaky" => (StatusCode::OK, "ready".into()),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            (StatusCode::OK, "late".into())
        }
        _ => (StatusCode::NOT_FOUND, String::new()),
    }
}

struct Server {
    base: String,
    receiver: Arc<Receiver>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start() -> Self {
        let receiver = Arc::new(Receiver::default());
        let app = Router::new().route("/{behaviour}", post(handle)).with_state(receiver.clone());
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
        Self { base, receiver, stop: Some(stop), task }
    }

    async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.abort();
        let _ = self.task.await;
    }

    fn hits(&self) -> u32 {
        self.receiver.hits.load(Ordering::SeqCst)
    }
}

fn caller() -> HttpCaller {
    HttpCaller::new()
        .expect("client")
        .with_backoff(Backoff { base: Duration::from_millis(10), max: Duration::from_millis(40) })
}

fn call(url: String, kind: WebhookType) -> HookCall {
    HookCall {
        name: "hook".into(),
        kind,
        url,
        timeout: Duration::from_secs(5),
        retries: 0,
        headers: BTreeMap::new(),
        secret_headers: SecretHeaders::default(),
        disable_tls: false,
        mute_alert: false,
        payload: CanaryWebhookPayload {
            name: "podinfo".into(),
            namespace: "test".into(),
            phase: "Progressing".into(),
            checksum: "85d557f47b".into(),
            metadata: BTreeMap::from([("cmd".to_string(), "hey -z 1m http://podinfo/".to_string())]),
        },
    }
}

#[tokio::test]
async fn posts_the_payload_with_headers_and_secret_headers() {
    let server = Server::start().await;
    let mut hook = call(format!("{}/ok", server.base), WebhookType::Rollout);
    hook.headers.insert("X-Team".into(), "payments".into());
    hook.secret_headers =
        SecretHeaders::new(BTreeMap::from([("Authorization".into(), "Bearer s3cr3t".into())]));

    let report = caller().call(&hook).await;
    let response = report.result.expect("2xx");
    assert_eq!((response.status, response.body.as_str(), report.attempts), (200, "approved", 1));

    let requests = server.receiver.requests.lock().expect("lock").clone();
    let (headers, body) = &requests[0];
    assert_eq!(
        body,
        r#"{"name":"podinfo","namespace":"test","phase":"Progressing","checksum":"85d557f47b","metadata":{"cmd":"hey -z 1m http://podinfo/"}}"#
    );
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["x-team"], "payments");
    assert_eq!(headers["authorization"], "Bearer s3cr3t");
    server.shutdown().await;
}

#[tokio::test]
async fn any_2xx_is_success_including_203() {
    let server = Server::start().await;
    let report = caller().call(&call(format!("{}/203", server.base), WebhookType::ConfirmPromotion)).await;
    assert_eq!(report.status(), Some(203));
    assert!(report.succeeded(), "{report:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_500_keeps_status_and_a_truncated_body_and_is_retried() {
    let server = Server::start().await;
    let mut hook = call(format!("{}/big500", server.base), WebhookType::Rollout);
    hook.retries = 2;
    let report = caller().call(&hook).await;
    assert_eq!(report.attempts, 3);
    assert_eq!(server.hits(), 3);
    match report.result {
        Err(HookError::Status { status: 500, body }) => {
            assert!(body.len() <= BODY_LIMIT + '…'.len_utf8() && body.ends_with('…'), "{} bytes", body.len());
            assert!(body.starts_with("xxxx"));
        }
        other => panic!("expected HTTP 500, got {other:?}"),
    }
    server.shutdown().await;
}

#[tokio::test]
async fn retries_until_success_but_not_on_403() {
    let server = Server::start().await;
    let mut hook = call(format!("{}/flaky", server.base), WebhookType::PreRollout);
    hook.retries = 3;
    let report = caller().call(&hook).await;
    assert_eq!((report.attempts, report.status()), (3, Some(200)), "{report:?}");

    let mut gate = call(format!("{}/forbidden", server.base), WebhookType::ConfirmRollout);
    gate.retries = 3;
    let report = caller().call(&gate).await;
    assert_eq!((report.attempts, report.status()), (1, Some(403)), "{report:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn times_out_per_attempt() {
    let server = Server::start().await;
    let mut hook = call(format!("{}/slow", server.base), WebhookType::Rollout);
    hook.timeout = Duration::from_millis(200);
    hook.retries = 1;
    let started = Instant::now();
    let report = caller().call(&hook).await;
    assert_eq!(report.result, Err(HookError::Timeout(Duration::from_millis(200))));
    assert_eq!(report.attempts, 2);
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    server.shutdown().await;
}

#[tokio::test]
async fn connection_refused_is_a_connect_error() {
    // Bind, note the port, close: nothing listens there any more.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let report = caller().call(&call(format!("http://{addr}/"), WebhookType::Rollout)).await;
    assert!(matches!(report.result, Err(HookError::Connect(_))), "{report:?}");
}

#[tokio::test]
async fn secret_values_never_appear_in_errors() {
    let server = Server::start().await;
    let mut hook = call(format!("{}/echo", server.base), WebhookType::Rollout);
    hook.secret_headers =
        SecretHeaders::new(BTreeMap::from([("Authorization".into(), "Bearer s3cr3t".into())]));
    let report = caller().call(&hook).await;
    let err = report.result.expect_err("401");
    let text = err.to_string();
    assert!(text.contains("[redacted]") && !text.contains("s3cr3t"), "{text}");

    let mut bad = hook.clone();
    bad.secret_headers =
        SecretHeaders::new(BTreeMap::from([("Authorization".into(), "line\nbreak s3cr3t".into())]));
    let err = caller().call(&bad).await.result.expect_err("invalid");
    assert!(matches!(err, HookError::Invalid(_)) && !err.to_string().contains("s3cr3t"), "{err}");
    server.shutdown().await;
}

#[tokio::test]
async fn run_all_is_concurrent_and_bounded_by_the_budget() {
    let server = Server::start().await;
    let calls = vec![
        call(format!("{}/ok", server.base), WebhookType::ConfirmPromotion),
        call(format!("{}/slow", server.base), WebhookType::ConfirmPromotion),
        call(format!("{}/slow", server.base), WebhookType::ConfirmPromotion),
    ];
    let started = Instant::now();
    let caller = caller();
    let outcomes = gates::run_all(&caller, &calls, Duration::from_millis(400)).await;
    let took = started.elapsed();
    assert!(took < Duration::from_millis(2500), "budget not enforced: {took:?}");
    assert!(outcomes[0].succeeded());
    assert_eq!(outcomes[1].report.result, Err(HookError::BudgetExceeded(Duration::from_millis(400))));
    match gates::answer(WebhookType::ConfirmPromotion, &outcomes) {
        KindAnswer::Gate(gate) => {
            assert!(!gate.open);
            assert!(gate.detail.contains("not answered within"), "{}", gate.detail);
        }
        other => panic!("{other:?}"),
    }
    server.shutdown().await;
}

#[tokio::test]
async fn rollback_hook_2xx_means_roll_back() {
    let server = Server::start().await;
    let caller = caller();
    let open = gates::run_all(
        &caller,
        &[call(format!("{}/ok", server.base), WebhookType::Rollback)],
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(gates::answer(WebhookType::Rollback, &open), KindAnswer::Rollback(gates::rollback(&open)));
    assert!(gates::rollback(&open).roll_back);
    let closed = gates::run_all(
        &caller,
        &[call(format!("{}/forbidden", server.base), WebhookType::Rollback)],
        Duration::from_secs(5),
    )
    .await;
    assert!(!gates::rollback(&closed).roll_back);
    server.shutdown().await;
}

/// A one-purpose HTTPS receiver with a self-signed certificate (made by `openssl`): answers
/// every request 200 until stopped.
async fn tls_receiver(dir: &std::path::Path) -> (u16, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let status = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
        .args(["-subj", "/CN=localhost", "-days", "1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(status.success(), "openssl failed");
    let certs =
        CertificateDer::pem_file_iter(&cert).expect("cert").collect::<Result<Vec<_>, _>>().expect("certs");
    let key = PrivateKeyDer::from_pem_file(&key).expect("key");
    let config = tokio_rustls::rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let task = tokio::spawn(async move {
        for _ in 0..8 {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let Ok(mut tls) = acceptor.accept(tcp).await else { continue };
            let mut request = Vec::new();
            let mut buffer = [0u8; 4096];
            while let Ok(n) = tls.read(&mut buffer).await {
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&buffer[..n]);
                let text = String::from_utf8_lossy(&request);
                if let Some(end) = text.find("\r\n\r\n") {
                    let length = text[..end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().to_string())
                        })
                        .and_then(|v| v.parse::<usize>().ok())
                        .unwrap_or(0);
                    if request.len() >= end + 4 + length {
                        break;
                    }
                }
            }
            let _ =
                tls.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok").await;
            let _ = tls.shutdown().await;
        }
    });
    (port, task)
}

#[tokio::test]
async fn disable_tls_skips_certificate_verification() {
    let dir = std::env::temp_dir().join(format!("serin-webhook-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let (port, server) = tls_receiver(&dir).await;
    let url = format!("https://127.0.0.1:{port}/");

    let verified = caller().call(&call(url.clone(), WebhookType::Rollout)).await;
    assert!(
        matches!(verified.result, Err(HookError::Connect(_)) | Err(HookError::Request(_))),
        "a self-signed certificate must be refused: {verified:?}"
    );
    let mut insecure = call(url, WebhookType::Rollout);
    insecure.disable_tls = true;
    let report = caller().call(&insecure).await;
    assert_eq!(report.status(), Some(200), "{report:?}");

    server.abort();
    let _ = server.await;
    std::fs::remove_dir_all(&dir).expect("cleanup");
}
