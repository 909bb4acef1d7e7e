//! `serin check` and `serin replay` against a real Prometheus (Debian package `prometheus`),
//! backfilled with known history by `promtool`: healthy, failing, empty, NaN, multi-series
//! and comparative checks now, MetricTemplates with `requestCountQuery`, hints that name the
//! labels that exist, exit codes through the binary, and a replay whose rollback tick is known.
//!
//! Without the `prometheus`/`promtool` binaries the test prints a loud SKIPPED message; with
//! `SERIN_REQUIRE_PROMETHEUS=1` it fails instead.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use serin::analysis::builtin::GatewayMetrics;
use serin::analysis::prometheus::{PrometheusConfig, PrometheusProvider};
use serin::crd::Provider;
use serin::crd::status::Verdict;
use serin::inspect::check::{Options, check};
use serin::inspect::decision::{Decision, RollbackCause};
use serin::inspect::replay::{replay, ticks};
use serin::inspect::source::load_files;

use super::prometheus::{find_binary, loud, start_plain, wait_healthy};

/// Seconds between backfilled samples.
const STEP: i64 = 15;
/// Samples per series (40 minutes).
const POINTS: i64 = 160;
/// From this sample on, 10 % of the mesh's requests fail.
const BAD_FROM: i64 = 100;

/// (metric, labels, value at sample i).
type Series = (&'static str, String, Box<dyn Fn(i64) -> f64>);

fn history() -> Vec<Series> {
    let mesh = |extra: &str| {
        format!(
            r#"reporter="destination",destination_workload_namespace="test",destination_workload="podinfo",{extra}"#
        )
    };
    // Counters start high so that rate() never extrapolates towards zero.
    let ok = |i: i64| 1000.0 + 100.0 * i.min(BAD_FROM - 1) as f64 + 90.0 * (i - BAD_FROM + 1).max(0) as f64;
    let failed = |i: i64| 1000.0 + 10.0 * (i - BAD_FROM + 1).max(0) as f64;
    let mut all: Vec<Series> = vec![
        ("istio_requests_total", mesh(r#"response_code="200""#), Box::new(ok)),
        ("istio_requests_total", mesh(r#"response_code="503""#), Box::new(failed)),
        ("app_requests_total", r#"app="podinfo""#.into(), Box::new(|i| 5000.0 + 100.0 * i as f64)),
        ("app_requests_total", r#"app="frontend""#.into(), Box::new(|i| 5000.0 + 10.0 * i as f64)),
        ("app_requests_total", r#"app="idle""#.into(), Box::new(|_| 5.0)),
        ("app_errors_total", r#"app="podinfo""#.into(), Box::new(|i| 50.0 + 0.5 * i as f64)),
        // Latency gauges: the canary is 30 ms slower with the same jitter.
        (
            "app_latency_ms",
            r#"deployment="podinfo-primary""#.into(),
            Box::new(|i| 100.0 + ((i * 37) % 23) as f64),
        ),
        ("app_latency_ms", r#"deployment="podinfo""#.into(), Box::new(|i| 130.0 + ((i * 37) % 23) as f64)),
    ];
    // p99 = 250 ms: per sample 50 requests ≤ 50 ms, 90 ≤ 100, 99 ≤ 250, 100 ≤ 500.
    for (le, per_step) in [("50", 50.0), ("100", 90.0), ("250", 99.0), ("500", 100.0), ("+Inf", 100.0)] {
        let labels = mesh(&format!(r#"le="{le}""#));
        all.push((
            "istio_request_duration_milliseconds_bucket",
            labels,
            Box::new(move |i| 100.0 + per_step * i as f64),
        ));
    }
    all
}

fn openmetrics(first: i64) -> String {
    let mut text = String::new();
    let mut last = "";
    for (name, labels, value) in history() {
        if name != last {
            let _ = writeln!(text, "# TYPE {name} unknown");
            last = name;
        }
        for i in 0..POINTS {
            let _ = writeln!(text, "{name}{{{labels}}} {} {}", value(i), first + i * STEP);
        }
    }
    text.push_str("# EOF\n");
    text
}

const CANARY: &str = r#"
apiVersion: serin.dev/v1alpha1
kind: Canary
metadata: {name: podinfo, namespace: test}
spec:
  provider: istio
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  service: {port: 80}
  analysis:
    interval: 1m
    threshold: 2
    stepWeight: 5
    metrics:
      - {name: request-success-rate, thresholdRange: {min: 99}}
      - {name: request-duration, thresholdRange: {max: 500}}
      - {name: error-ratio, templateRef: {name: error-ratio}, thresholdRange: {max: 1}, minRequests: 10}
      - {name: error-ratio-thin, templateRef: {name: error-ratio}, thresholdRange: {max: 1}, minRequests: 1000000}
      - {name: wrong-app, templateRef: {name: requests-of}, templateVariables: {app: podinfo-canary}, thresholdRange: {min: 1}}
      - {name: wrong-label, templateRef: {name: requests-in-region}, thresholdRange: {min: 1}}
      - {name: idle, templateRef: {name: idle-ratio}, thresholdRange: {min: 1}}
      - {name: unaggregated, templateRef: {name: unaggregated}, thresholdRange: {min: 1}}
      - name: latency-vs-primary
        templateRef: {name: latency}
        judge: comparative
        interval: 5m
        comparative: {direction: increase, allowedIncrease: 1.1}
      - name: latency-few-samples
        templateRef: {name: latency}
        judge: comparative
        interval: 5m
        comparative: {minSamples: 100}
---
apiVersion: serin.dev/v1alpha1
kind: MetricTemplate
metadata: {name: error-ratio, namespace: test}
spec:
  provider: {type: prometheus}
  query: |
    sum(rate(app_errors_total{app="{{ target }}"}[{{ interval }}]))
      / sum(rate(app_requests_total{app="{{ target }}"}[{{ interval }}])) * 100
  requestCountQuery: sum(increase(app_requests_total{app="{{ target }}"}[{{ interval }}]))
"#;

const TEMPLATES: &str = r#"
apiVersion: serin.dev/v1alpha1
kind: MetricTemplate
metadata: {name: requests-of}
spec:
  provider: {type: prometheus}
  query: sum(rate(app_requests_total{app="{{ variables.app }}"}[{{ interval }}]))
---
apiVersion: flagger.app/v1beta1
kind: MetricTemplate
metadata: {name: requests-in-region}
spec:
  provider: {type: prometheus}
  query: sum(rate(app_requests_total{app="{{ target }}",region="eu"}[{{ interval }}]))
---
apiVersion: serin.dev/v1alpha1
kind: MetricTemplate
metadata: {name: idle-ratio}
spec:
  provider: {type: prometheus}
  query: sum(rate(app_requests_total{app="idle"}[{{ interval }}])) / sum(rate(app_requests_total{app="idle"}[{{ interval }}]))
---
apiVersion: serin.dev/v1alpha1
kind: MetricTemplate
metadata: {name: unaggregated}
spec:
  provider: {type: prometheus}
  query: rate(app_requests_total{app=~"podinfo|frontend"}[{{ interval }}])
---
apiVersion: serin.dev/v1alpha1
kind: MetricTemplate
metadata: {name: latency}
spec:
  provider: {type: prometheus}
  query: max(app_latency_ms{deployment="{{ target }}"})
"#;

/// A Canary with only the given metrics (and the error-ratio template).
fn canary_with(metrics: &str) -> String {
    let head = CANARY.split("    metrics:\n").next().unwrap_or_default();
    let template = CANARY.split("---\n").nth(1).unwrap_or_default();
    format!("{head}    metrics:\n{metrics}---\n{template}")
}

fn options(address: &str) -> Options {
    Options {
        prometheus: Some(address.to_string()),
        default_provider: Provider::Kubernetes,
        gateway: GatewayMetrics::Envoy,
    }
}

fn serin(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_serin")).args(args).output().expect("run serin");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write manifest");
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_and_replay_against_real_prometheus() {
    let (Some(prometheus), Some(promtool)) = (find_binary("prometheus"), find_binary("promtool")) else {
        let message = "SKIPPED check_and_replay: no `prometheus`/`promtool` binary found. Install them with \
                       `apt-get install -y prometheus`.";
        if std::env::var_os("SERIN_REQUIRE_PROMETHEUS").is_some() {
            panic!("{message}");
        }
        loud(message);
        return;
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs() as i64;
    let last = now - 30;
    let first = last - (POINTS - 1) * STEP;
    let mut process = start_plain(&prometheus, &promtool, &openmetrics(first));
    let provider =
        PrometheusProvider::new(&PrometheusConfig::new(process.address.as_str())).expect("provider");
    wait_healthy(&provider, &mut process).await;
    let address = process.address.clone();

    let dir = tempfile::tempdir().expect("dir");
    let canary_file = write(dir.path(), "canary.yaml", CANARY);
    let templates_file = write(dir.path(), "templates.yaml", TEMPLATES);

    // ---- check, through the library: every verdict and hint. ----
    let loaded = load_files(Path::new(&canary_file), &[templates_file.clone().into()], None).expect("loads");
    let rows = check(&loaded, &options(&address), now).await;
    let by_name =
        |name: &str| rows.iter().find(|r| r.result.name == name).unwrap_or_else(|| panic!("no row {name}"));
    let verdicts: Vec<(&str, Verdict)> =
        rows.iter().map(|r| (r.result.name.as_str(), r.result.verdict)).collect();
    assert_eq!(
        verdicts,
        vec![
            ("request-success-rate", Verdict::Fail),
            ("request-duration", Verdict::Pass),
            ("error-ratio", Verdict::Pass),
            ("error-ratio-thin", Verdict::NoData),
            ("wrong-app", Verdict::NoData),
            ("wrong-label", Verdict::NoData),
            ("idle", Verdict::NoData),
            ("unaggregated", Verdict::Error),
            ("latency-vs-primary", Verdict::Fail),
            ("latency-few-samples", Verdict::NoData),
        ],
        "{rows:#?}"
    );
    let success = by_name("request-success-rate");
    assert!(success.result.value.is_some_and(|v| (v - 90.0).abs() < 1e-6), "{success:?}");
    assert!(
        success.result.query.as_deref().is_some_and(|q| q.contains(r#"destination_workload=~"podinfo""#))
    );
    let duration = by_name("request-duration");
    assert!(duration.result.value.is_some_and(|v| (v - 250.0).abs() < 1e-6), "{duration:?}");
    // error-ratio: 0.5 errors per 100 requests; its requestCountQuery cleared minRequests 10.
    assert!(by_name("error-ratio").result.value.is_some_and(|v| (v - 0.5).abs() < 1e-6));
    let thin = by_name("error-ratio-thin");
    let thin_message = thin.result.message.clone().unwrap_or_default();
    assert!(thin_message.contains("fewer than minRequests 1000000"), "{thin_message}");
    assert_eq!(thin.hint, None, "the query itself has a value; the message says why it is no data");
    let wrong_app = by_name("wrong-app").hint.clone().unwrap_or_default();
    assert!(
        wrong_app.contains(r#"app="podinfo-canary" matches none of app_requests_total's values of app: "frontend", "idle", "podinfo""#),
        "{wrong_app}"
    );
    let wrong_label = by_name("wrong-label").hint.clone().unwrap_or_default();
    assert!(
        wrong_label.contains("app_requests_total has no label region (its labels are: __name__, app)"),
        "{wrong_label}"
    );
    assert!(by_name("idle").hint.as_deref().is_some_and(|h| h.starts_with("NaN is usually 0/0")));
    let multi = by_name("unaggregated").result.message.clone().unwrap_or_default();
    assert!(multi.contains("returned 2 series") && multi.contains(r#"app="frontend""#), "{multi}");
    let comparative = by_name("latency-vs-primary");
    assert!(comparative.comparative);
    assert!(comparative.result.value.is_some_and(|ratio| ratio > 1.2 && ratio < 1.35), "{comparative:?}");
    assert_eq!(comparative.result.threshold_max, Some(1.1));
    let few = by_name("latency-few-samples").result.message.clone().unwrap_or_default();
    assert!(few.contains("fewer than the 100 needed on each side"), "minSamples 100 made it no data: {few}");

    // ---- check, through the binary: table and exit codes. ----
    let (code, out, err) =
        serin(&["check", "--canary", &canary_file, "--templates", &templates_file, "--prometheus", &address]);
    assert_eq!(code, 1, "a failed metric exits 1\n{out}\n{err}");
    assert!(out.starts_with("canary test/podinfo\nMETRIC"), "{out}");
    let line = out.lines().find(|l| l.starts_with("request-success-rate ")).unwrap_or_default();
    let cells: Vec<&str> = line.split_whitespace().take(5).collect();
    assert_eq!(cells, ["request-success-rate", "90", ">=", "99", "fail"], "{out}");
    assert!(out.contains(" is below the minimum 99\n"), "{out}");
    // Multi-line queries print on one line, as they are sent.
    assert!(line.ends_with(r#"[1m])) * 100"#), "{line}");
    assert!(out.contains("  hint: no series match app_requests_total{app=\"podinfo-canary\"}"), "{out}");
    let passing = write(
        dir.path(),
        "passing.yaml",
        &canary_with(
            "      - {name: request-duration, thresholdRange: {max: 500}}\n      - {name: error-ratio, templateRef: {name: error-ratio}, thresholdRange: {max: 1}, minRequests: 10}\n",
        ),
    );
    let (code, out, err) = serin(&["check", "--canary", &passing, "--prometheus", &address]);
    assert_eq!(code, 0, "all pass exits 0\n{out}\n{err}");
    let empty = write(
        dir.path(),
        "empty.yaml",
        &canary_with(
            "      - {name: wrong-label, templateRef: {name: requests-in-region}, thresholdRange: {min: 1}}\n      - {name: request-duration, thresholdRange: {max: 500}}\n",
        ),
    );
    let (code, out, err) =
        serin(&["check", "--canary", &empty, "--templates", &templates_file, "--prometheus", &address]);
    assert_eq!(code, 2, "no data without failures exits 2\n{out}\n{err}");
    // A template that is nowhere to be found is an error row, not a crash.
    let (code, out, _) = serin(&["check", "--canary", &empty, "--prometheus", &address]);
    assert_eq!(code, 2);
    assert!(out.contains("MetricTemplate test/requests-in-region not found"), "{out}");
    // Prometheus unreachable: errors, exit 2, never a pass.
    let (code, out, _) = serin(&["check", "--canary", &passing, "--prometheus", "http://127.0.0.1:9"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("unreachable"), "{out}");

    // ---- replay: errors start at sample BAD_FROM; threshold 2 rolls back on the 2nd bad tick. ----
    let replayed = write(
        dir.path(),
        "replay.yaml",
        &canary_with("      - {name: request-success-rate, thresholdRange: {min: 99}}\n"),
    );
    let loaded = load_files(Path::new(&replayed), &[], None).expect("loads");
    // Evaluation times 7 s off the sample grid, so no sample sits on a window's edge.
    let from = first + 600 + 7;
    let times = ticks(from, last, std::time::Duration::from_secs(60)).expect("ticks");
    let report = replay(&loaded, &options(&address), &times).await;
    let change = first + BAD_FROM * STEP;
    let first_bad = times.iter().position(|t| *t >= change).expect("the change is in the window");
    for (i, tick) in report.ticks.iter().enumerate() {
        let result = &tick.results[0];
        let value = result.value.unwrap_or(f64::NAN);
        if i < first_bad {
            assert_eq!(result.verdict, Verdict::Pass, "tick {i}: {result:?}");
            assert!((value - 100.0).abs() < 1e-6, "tick {i}: {value}");
            assert_eq!(tick.decision, Decision::Advance { weight: 5 * (i as i32 + 2) }, "tick {i}");
        } else {
            assert_eq!(result.verdict, Verdict::Fail, "tick {i}: {result:?}");
            if tick.time - 60 > change {
                assert!((value - 90.0).abs() < 1e-6, "tick {i}: {value}");
            }
        }
    }
    assert_eq!(report.ticks[first_bad].decision, Decision::FailedCheck { count: 1, threshold: 2 });
    let rollback = report.rollback().expect("rolls back");
    assert_eq!(rollback.time, times[first_bad + 1]);
    assert_eq!(rollback.decision, Decision::RollBack(RollbackCause::FailedChecks { count: 2, threshold: 2 }));
    assert_eq!(rollback.weight, 5 * (first_bad as i32 + 1));
    assert!(report.ticks[first_bad + 2..].iter().all(|t| t.decision == Decision::Ended));

    // Through the binary: Unix-second times, --step, the table and exit code 1.
    let (code, out, err) = serin(&[
        "replay",
        "--canary",
        &replayed,
        "--prometheus",
        &address,
        "--from",
        &from.to_string(),
        "--to",
        &last.to_string(),
        "--step",
        "1m",
    ]);
    assert_eq!(code, 1, "a rollback exits 1\n{out}\n{err}");
    assert!(
        out.contains("TIME") && out.contains("request-success-rate") && out.contains("DECISION"),
        "{out}"
    );
    assert!(
        out.contains("100 pass") && out.contains("90 fail") && out.contains("ROLL BACK (failed checks 2/2)"),
        "{out}"
    );
    assert!(out.contains("would have rolled back at") && out.contains(": failed checks 2/2\n"), "{out}");
    // The healthy first part of the window alone: no rollback, exit 0.
    let (code, out, err) = serin(&[
        "replay",
        "--canary",
        &replayed,
        "--prometheus",
        &address,
        "--from",
        &from.to_string(),
        "--to",
        &(change - 30).to_string(),
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("still progressing at the end of the window"), "{out}");
    let (code, _, err) = serin(&["replay", "--canary", &replayed, "--from", "tomorrow"]);
    assert_eq!(code, 2);
    assert!(err.contains("is not a time"), "{err}");
}
