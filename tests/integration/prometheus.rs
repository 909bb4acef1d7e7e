//! The Prometheus provider against a real Prometheus (Debian package `prometheus`): the test
//! backfills known series with `promtool tsdb create-blocks-from openmetrics`, starts the
//! server on 127.0.0.1 with a random free port, a temporary data dir, basic auth and (when the
//! openssl CLI is there) TLS with a self-signed certificate, and checks value, empty, NaN,
//! multi-series, range, auth, TLS verification, the comparative judge on range data, and every
//! builtin query.
//!
//! Transport failures (refused, timeout, a proxy's error status, headers sent) are checked
//! against tiny local TCP servers: they stand in for a broken network or proxy, not for
//! Prometheus.
//!
//! Without the `prometheus` and `promtool` binaries the Prometheus test prints a loud SKIPPED
//! message on the real stderr; with `SERIN_REQUIRE_PROMETHEUS=1` it fails instead.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serin::analysis::builtin;
use serin::analysis::comparative::{ComparativeConfig, Direction, Outcome, compare};
use serin::analysis::prometheus::{Auth, PrometheusConfig, PrometheusProvider};
use serin::analysis::provider::{
    MetricProvider, NoData, ProviderError, QueryOutcome, RangeOutcome, RangeWindow,
};
use serin::analysis::template::{self, TemplateContext};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const USER: &str = "serin";
const PASSWORD: &str = "hunter2";
/// bcrypt (cost 4) of `hunter2`, for Prometheus' `--web.config.file`.
const PASSWORD_BCRYPT: &str = "$2b$04$Nf03dyFCeV.41WyhpzOvKeCBf8hHYfKrvVb3j4evB5gAJJqxea.YC";

/// Seconds between backfilled samples.
const STEP: i64 = 15;
/// Number of backfilled samples per series.
const POINTS: i64 = 120;

pub(crate) fn find_binary(name: &str) -> Option<PathBuf> {
    let env_name = format!("SERIN_{}_BIN", name.to_uppercase());
    if let Some(path) = std::env::var_os(env_name) {
        let path = PathBuf::from(path);
        return path.is_file().then_some(path);
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

/// Prints past the test harness' output capture, so a skip is never silent.
pub(crate) fn loud(message: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "\n{}\n{message}\n{}\n", "!".repeat(78), "!".repeat(78));
}

pub(crate) fn free_port() -> u16 {
    let listener = StdListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

/// A Prometheus process started by this test; killed by PID when dropped.
pub(crate) struct PrometheusProcess {
    pub(crate) child: Child,
    pub(crate) address: String,
    /// Serving HTTPS with a self-signed certificate.
    tls: bool,
    _dir: tempfile::TempDir,
}

impl Drop for PrometheusProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One series of the backfill: labels and its value at sample `i`.
struct Series {
    name: &'static str,
    labels: String,
    value: Box<dyn Fn(i64) -> f64>,
}

fn series(name: &'static str, labels: &str, value: impl Fn(i64) -> f64 + 'static) -> Series {
    Series { name, labels: labels.to_string(), value: Box::new(value) }
}

/// The known data. Counters grow linearly, so `rate()` ratios are exact.
fn backfill_series() -> Vec<Series> {
    let istio = |reporter: &str, code: &str| {
        format!(
            r#"reporter="{reporter}",destination_workload_namespace="test",destination_workload="podinfo",response_code="{code}""#
        )
    };
    let istio_bucket = |reporter: &str, le: &str| {
        format!(
            r#"reporter="{reporter}",destination_workload_namespace="test",destination_workload="podinfo",le="{le}""#
        )
    };
    let mut all = vec![
        series("serin_test_value", r#"app="good""#, |_| 42.5),
        series("serin_test_value", r#"app="multi",instance="a""#, |_| 1.0),
        series("serin_test_value", r#"app="multi",instance="b""#, |_| 2.0),
        series("serin_test_nan", "", |_| f64::NAN),
        series("serin_test_ramp", "", |i| i as f64),
        // Latency samples for the comparative judge: same jitter, canary shifted by +30 ms.
        series("serin_latency_ms", r#"version="primary""#, |i| 100.0 + ((i * 37) % 23) as f64),
        series("serin_latency_ms", r#"version="canary""#, |i| 130.0 + ((i * 37) % 23) as f64),
        series("serin_latency_ms", r#"version="same""#, |i| 100.0 + ((i * 41 + 5) % 23) as f64),
    ];
    for reporter in ["destination", "source"] {
        // 99 successful and 1 failed request per sample: success rate 99 %.
        all.push(series("istio_requests_total", &istio(reporter, "200"), |i| 99.0 * i as f64));
        all.push(series("istio_requests_total", &istio(reporter, "503"), |i| i as f64));
        // Per sample: 50 requests ≤ 50 ms, 90 ≤ 100 ms, 99 ≤ 250 ms, 100 ≤ 500 ms: p99 = 250 ms.
        for (le, per_step) in [("50", 50.0), ("100", 90.0), ("250", 99.0), ("500", 100.0), ("+Inf", 100.0)] {
            all.push(series(
                "istio_request_duration_milliseconds_bucket",
                &istio_bucket(reporter, le),
                move |i| per_step * i as f64,
            ));
        }
    }
    all
}

/// OpenMetrics text: families contiguous, each series' samples in time order.
fn openmetrics(end: i64) -> String {
    let mut text = String::new();
    let mut last_family = "";
    for s in backfill_series() {
        if s.name != last_family {
            let _ = writeln!(text, "# TYPE {} unknown", s.name);
            last_family = s.name;
        }
        for i in 0..POINTS {
            let ts = end - (POINTS - 1 - i) * STEP;
            let value = (s.value)(i);
            let value = if value.is_nan() { "NaN".to_string() } else { value.to_string() };
            let _ = writeln!(text, "{}{{{}}} {} {}", s.name, s.labels, value, ts);
        }
    }
    text.push_str("# EOF\n");
    text
}

fn start_prometheus(prometheus: &Path, promtool: &Path, last_sample: i64) -> PrometheusProcess {
    launch(prometheus, promtool, &openmetrics(last_sample), true)
}

/// Starts Prometheus on 127.0.0.1 (no auth, no TLS) over the backfilled OpenMetrics `text`.
pub(crate) fn start_plain(prometheus: &Path, promtool: &Path, text: &str) -> PrometheusProcess {
    launch(prometheus, promtool, text, false)
}

/// Backfills `text` with promtool and starts Prometheus; `secure`: basic auth and, when
/// openssl is there, TLS.
fn launch(prometheus: &Path, promtool: &Path, text: &str, secure: bool) -> PrometheusProcess {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let input = dir.path().join("backfill.om");
    std::fs::write(&input, text).expect("write backfill");
    let out = Command::new(promtool)
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&input)
        .arg(&data)
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let config = dir.path().join("prometheus.yml");
    std::fs::write(&config, "global:\n  scrape_interval: 1h\n").expect("write config");
    let mut web_config =
        if secure { format!("basic_auth_users:\n  {USER}: {PASSWORD_BCRYPT}\n") } else { String::new() };
    let tls = secure && self_signed_certificate(dir.path());
    if tls {
        web_config.push_str("tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n");
    }
    let web = dir.path().join("web.yml");
    std::fs::write(&web, web_config).expect("write web config");
    let port = free_port();
    let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log file");
    let child = Command::new(prometheus)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", data.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg(format!("--web.config.file={}", web.display()))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start prometheus");
    let scheme = if tls { "https" } else { "http" };
    PrometheusProcess { child, address: format!("{scheme}://127.0.0.1:{port}"), tls, _dir: dir }
}

/// Writes `cert.pem` and `key.pem` (self-signed, for 127.0.0.1) with the openssl CLI; false,
/// with a loud note, when openssl is not installed (the TLS checks are then skipped).
fn self_signed_certificate(dir: &Path) -> bool {
    let Some(openssl) = find_binary("openssl") else {
        loud(
            "NOTE real_prometheus: no `openssl` binary, so Prometheus runs without TLS and the TLS checks are skipped.",
        );
        return false;
    };
    let out = Command::new(openssl)
        .current_dir(dir)
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
        .args(["-keyout", "key.pem", "-out", "cert.pem", "-days", "1", "-subj", "/CN=serin-test"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .output()
        .expect("run openssl");
    assert!(out.status.success(), "openssl failed: {}", String::from_utf8_lossy(&out.stderr));
    true
}

fn authed(address: &str) -> PrometheusProvider {
    let mut config = PrometheusConfig::new(address);
    // The test server's certificate is self-signed.
    config.insecure_skip_verify = true;
    config.auth = Some(Auth::Basic { username: USER.into(), password: PASSWORD.into() });
    config.headers.insert("X-Scope-OrgID".into(), vec!["tenant-a".into()]);
    PrometheusProvider::new(&config).expect("provider")
}

pub(crate) async fn wait_healthy(provider: &PrometheusProvider, process: &mut PrometheusProcess) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match provider.health().await {
            Ok(()) => return,
            Err(e) if Instant::now() > deadline => panic!("Prometheus did not become healthy: {e}"),
            Err(_) => {
                if let Ok(Some(status)) = process.child.try_wait() {
                    panic!("Prometheus exited early with {status}; see its log in the temp dir");
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

fn full_context() -> TemplateContext {
    TemplateContext {
        name: "podinfo".into(),
        namespace: "test".into(),
        target: "podinfo".into(),
        service: "podinfo".into(),
        ingress: "podinfo".into(),
        route: "podinfo".into(),
        interval: "5m".into(),
        primary: "podinfo-primary".into(),
        variables: BTreeMap::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_prometheus() {
    let (Some(prometheus), Some(promtool)) = (find_binary("prometheus"), find_binary("promtool")) else {
        let message = "SKIPPED real_prometheus: no `prometheus`/`promtool` binary found. Install them with \
                       `apt-get install -y prometheus` (or set SERIN_PROMETHEUS_BIN / SERIN_PROMTOOL_BIN).";
        if std::env::var_os("SERIN_REQUIRE_PROMETHEUS").is_some() {
            panic!("{message}");
        }
        loud(message);
        return;
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs() as i64;
    // The newest sample is 30 s old: inside the 5 m lookback of an instant query "now".
    let last_sample = now - 30;
    let mut process = start_prometheus(&prometheus, &promtool, last_sample);
    let provider = authed(&process.address);
    wait_healthy(&provider, &mut process).await;

    // One series: its value.
    assert_eq!(provider.query(r#"serin_test_value{app="good"}"#).await.ok(), Some(QueryOutcome::Value(42.5)));
    // Whitespace over several lines is collapsed.
    let spread = "sum(\n    serin_test_value{app=\"good\"}\n)\n  * 2";
    assert_eq!(provider.query(spread).await.ok(), Some(QueryOutcome::Value(85.0)));
    // Nothing matches: no data.
    assert_eq!(
        provider.query(r#"serin_test_value{app="absent"}"#).await.ok(),
        Some(QueryOutcome::NoData(NoData::Empty))
    );
    // NaN stored, and NaN computed (0/0): no data.
    assert_eq!(provider.query("serin_test_nan").await.ok(), Some(QueryOutcome::NoData(NoData::NaN)));
    assert_eq!(provider.query("vector(0) / vector(0)").await.ok(), Some(QueryOutcome::NoData(NoData::NaN)));
    // A scalar result is a value.
    assert_eq!(provider.query("scalar(vector(3))").await.ok(), Some(QueryOutcome::Value(3.0)));
    // Several series: an error that names every series, never "last one wins".
    match provider.query(r#"serin_test_value{app="multi"}"#).await {
        Ok(QueryOutcome::MultipleSeries(series)) => {
            let names: Vec<String> = series.iter().map(ToString::to_string).collect();
            assert_eq!(
                names,
                [
                    r#"serin_test_value{app="multi", instance="a"}"#,
                    r#"serin_test_value{app="multi", instance="b"}"#
                ]
            );
        }
        other => panic!("expected several series, got {other:?}"),
    }
    // A syntax error is Prometheus' own message.
    match provider.query("sum(").await {
        Err(ProviderError::Query { error_type, message }) => {
            assert_eq!(error_type, "bad_data");
            assert!(message.contains("parse error"), "{message}");
        }
        other => panic!("expected a query error, got {other:?}"),
    }
    // A range vector is not a check value.
    assert!(matches!(provider.query("serin_test_ramp[5m]").await, Err(ProviderError::BadResponse(_))));

    // Range query: the ramp's samples, in order.
    let first = last_sample - (POINTS - 1) * STEP;
    let window = RangeWindow { start: first, end: first + 5 * STEP, step: Duration::from_secs(STEP as u64) };
    assert_eq!(
        provider.query_range("serin_test_ramp", window).await.ok(),
        Some(RangeOutcome::Samples(vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]))
    );
    assert_eq!(provider.query_range("serin_test_absent", window).await.ok(), Some(RangeOutcome::NoData));
    assert!(matches!(
        provider.query_range(r#"serin_test_value{app="multi"}"#, window).await,
        Ok(RangeOutcome::MultipleSeries(s)) if s.len() == 2
    ));

    // Without credentials Prometheus answers 401, which is an error with the status.
    let mut anonymous = PrometheusConfig::new(process.address.as_str());
    anonymous.insecure_skip_verify = true;
    let anonymous = PrometheusProvider::new(&anonymous).expect("provider");
    match anonymous.query("vector(1)").await {
        Err(ProviderError::HttpStatus { status: 401, body }) => {
            assert!(body.contains("Unauthorized"), "{body}")
        }
        other => panic!("expected HTTP 401, got {other:?}"),
    }
    let mut wrong = PrometheusConfig::new(process.address.as_str());
    wrong.auth = Some(Auth::Basic { username: USER.into(), password: "wrong".into() });
    wrong.insecure_skip_verify = true;
    assert!(matches!(
        PrometheusProvider::new(&wrong).expect("provider").health().await,
        Err(ProviderError::HttpStatus { status: 401, .. })
    ));

    // TLS: the self-signed certificate is refused unless verification is skipped.
    if process.tls {
        let mut verifying = PrometheusConfig::new(process.address.as_str());
        verifying.auth = Some(Auth::Basic { username: USER.into(), password: PASSWORD.into() });
        match PrometheusProvider::new(&verifying).expect("provider").health().await {
            Err(ProviderError::Unreachable { reason, .. }) => {
                assert!(reason.to_lowercase().contains("certificate"), "{reason}")
            }
            other => panic!("expected a certificate error, got {other:?}"),
        }
    } else {
        loud("NOTE real_prometheus: TLS checks skipped (no openssl).");
    }

    // Comparative judge on real range data: the canary is ~27 % slower than the primary.
    let window = RangeWindow {
        start: last_sample - 29 * STEP,
        end: last_sample,
        step: Duration::from_secs(STEP as u64),
    };
    let samples = |outcome| match outcome {
        Ok(RangeOutcome::Samples(values)) => values,
        other => panic!("expected samples, got {other:?}"),
    };
    let primary = samples(provider.query_range(r#"serin_latency_ms{version="primary"}"#, window).await);
    let canary = samples(provider.query_range(r#"serin_latency_ms{version="canary"}"#, window).await);
    let same = samples(provider.query_range(r#"serin_latency_ms{version="same"}"#, window).await);
    assert_eq!((primary.len(), canary.len()), (30, 30));
    let config =
        ComparativeConfig { direction: Direction::Increase, allowed_increase: 1.1, ..Default::default() };
    let slower = compare(&canary, &primary, &config).expect("valid config");
    assert_eq!(slower.outcome, Outcome::High, "{}", slower.message);
    let unchanged = compare(&same, &primary, &config).expect("valid config");
    assert_eq!(unchanged.outcome, Outcome::Pass, "{}", unchanged.message);

    // Every builtin query renders and is accepted by Prometheus' parser; istio's (and
    // gatewayapi-istio's) run on the backfilled mesh data and give the known numbers.
    let ctx = full_context();
    let mut checked = 0;
    for (provider_name, metric, metric_template) in builtin::all() {
        let query = template::render(&metric_template.spec.query, &ctx)
            .unwrap_or_else(|e| panic!("{provider_name}/{metric}: {e}"));
        let outcome = provider
            .query(&query)
            .await
            .unwrap_or_else(|e| panic!("{provider_name}/{metric} rejected by Prometheus: {e}\n{query}"));
        let want = match (provider_name, metric) {
            ("istio" | "gatewayapi-istio", "request-success-rate") => Some(99.0),
            ("istio" | "gatewayapi-istio", "request-duration") => Some(250.0),
            _ => None,
        };
        match (want, &outcome) {
            (Some(want), QueryOutcome::Value(got)) => {
                assert!((got - want).abs() < 1e-6, "{provider_name}/{metric}: {got} != {want}\n{query}")
            }
            (Some(_), other) => panic!("{provider_name}/{metric}: expected a value, got {other:?}\n{query}"),
            (None, QueryOutcome::MultipleSeries(s)) => {
                panic!("{provider_name}/{metric}: several series {s:?}")
            }
            (None, _) => {}
        }
        checked += 1;
    }
    assert!(checked >= 16, "only {checked} builtin queries checked");
    // The request-count query of the mesh data: 100 requests per 15 s, over a 5 m window
    // whose newest 30 s have no samples, so Prometheus' extrapolation gives a bit less than
    // the 2000 of a full window.
    let count =
        template::render(&builtin::builtin("istio", "request-count").expect("builtin").spec.query, &ctx)
            .expect("renders");
    match provider.query(&count).await {
        Ok(QueryOutcome::Value(n)) => assert!((1700.0..=2000.0).contains(&n), "{n}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn refused_connection_is_unreachable() {
    let port = free_port(); // bound and released: nothing listens there now
    let provider = PrometheusProvider::new(&PrometheusConfig::new(format!("http://127.0.0.1:{port}")))
        .expect("provider");
    match provider.query("vector(1)").await {
        Err(ProviderError::Unreachable { address, reason }) => {
            assert_eq!(address, format!("http://127.0.0.1:{port}"));
            assert!(!reason.is_empty());
        }
        other => panic!("expected unreachable, got {other:?}"),
    }
    assert!(provider.health().await.is_err());
}

#[tokio::test]
async fn silent_backend_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = format!("http://{}", listener.local_addr().expect("addr"));
    let server = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket); // accept, never answer
        }
    });
    let mut config = PrometheusConfig::new(address);
    config.timeout = Duration::from_millis(300);
    let provider = PrometheusProvider::new(&config).expect("provider");
    let started = Instant::now();
    let result = provider.query("vector(1)").await;
    assert!(matches!(result, Err(ProviderError::Timeout { .. })), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    server.abort();
}

#[tokio::test]
async fn sends_headers_and_reports_proxy_errors() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = format!("http://{}", listener.local_addr().expect("addr"));
    let seen = Arc::new(Mutex::new(String::new()));
    let record = seen.clone();
    let server = tokio::spawn(async move {
        if let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = vec![0u8; 16 * 1024];
            let mut len = 0;
            while !buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                match socket.read(&mut buf[len..]).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => len += n,
                }
            }
            *record.lock().expect("lock") = String::from_utf8_lossy(&buf[..len]).to_lowercase();
            let body = "upstream down";
            let reply = format!(
                "HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(reply.as_bytes()).await;
        }
    });
    let mut config = PrometheusConfig::new(address);
    config.auth = Some(Auth::Bearer("tok-123".into()));
    config.headers.insert("X-Scope-OrgID".into(), vec!["tenant-a".into()]);
    config.headers.insert("X-Extra".into(), vec!["one".into(), "two".into()]);
    let provider = PrometheusProvider::new(&config).expect("provider");
    match provider.query("up").await {
        Err(ProviderError::HttpStatus { status: 502, body }) => assert_eq!(body, "upstream down"),
        other => panic!("expected HTTP 502, got {other:?}"),
    }
    server.await.expect("server");
    let request = seen.lock().expect("lock").clone();
    assert!(request.starts_with("get /api/v1/query?query=up"), "{request}");
    for header in ["authorization: bearer tok-123", "x-scope-orgid: tenant-a", "x-extra: one, two"] {
        assert!(request.contains(header), "missing {header:?} in\n{request}");
    }
}
