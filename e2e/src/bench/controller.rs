//! The controller benchmark: one point per fleet size N. Each point starts a fresh API
//! stand-in, the Prometheus responder and the rollout-status writer, creates N Deployments
//! with Canaries, starts the real `serin controller`, and then measures two windows:
//!
//! 1. **idle**: every canary `Initialized`, nothing to do; API requests by verb per canary per
//!    interval (what an idle tick costs the API server), CPU;
//! 2. **progressing**: every canary's Deployment gets a new image, spread evenly over one
//!    interval (so ticks are spread like independent releases, not one burst); once all are
//!    `Progressing`, the ticks due in the next `window` are judged for lateness (see
//!    [`super::ticks`]); CPU per tick, RSS, Prometheus queries per tick and API requests per
//!    tick by verb.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    time::{Duration, Instant, SystemTime},
};

use crate::{
    audit::AuditRecord,
    error::BedError,
    scenario::controller::{ControllerConfig, ControllerProcess},
};

use super::{
    fleet::{self, CanaryShape},
    procstat, setup, ticks,
};

/// How one point runs.
#[derive(Debug, Clone)]
pub struct PointConfig {
    /// The `serin` binary (release build).
    pub serin: PathBuf,
    /// Number of canaries.
    pub canaries: u32,
    /// `analysis.interval`.
    pub interval: Duration,
    /// Length of the progressing window judged for lateness.
    pub window: Duration,
    /// Upper bound for creating the fleet and for the controller to initialize it.
    pub setup_timeout: Duration,
    /// Keep the controller's log here (else a temporary directory, removed).
    pub log_dir: Option<PathBuf>,
}

/// The controller's requests by verb (`verb resource[/sub]`), e.g. `get httproutes`; the
/// bench's own requests are left out.
pub type VerbCounts = BTreeMap<String, u64>;

/// Everything one point measured.
#[derive(Debug, Clone, Default)]
pub struct PointResult {
    /// N.
    pub canaries: u32,
    /// Time to create the fleet and have every canary `Initialized`.
    pub setup: Duration,
    /// Idle window: requests by verb (watches excluded: they are long-lived streams).
    pub idle_requests: VerbCounts,
    /// Idle window length in intervals (ticks per canary).
    pub idle_intervals: f64,
    /// CPU seconds of the controller in the idle window.
    pub idle_cpu: f64,
    /// Ticks due in the progressing window and their lateness.
    pub lateness: ticks::Lateness,
    /// Requests by verb in the progressing window.
    pub progressing_requests: VerbCounts,
    /// CPU seconds of the controller in the progressing window.
    pub progressing_cpu: f64,
    /// Ticks that completed (status writes seen) in the progressing window.
    pub ticks_done: usize,
    /// Prometheus queries in the progressing window.
    pub queries: u64,
    /// Responder handling time per query, sorted (µs).
    pub responder_micros: Vec<u32>,
    /// Controller RSS at the end.
    pub rss: u64,
    /// Canaries that reached `Progressing` (or later) by the end of the window.
    pub progressing: usize,
    /// Wall-clock of the progressing window.
    pub window: Duration,
}

fn counts(records: &[AuditRecord]) -> VerbCounts {
    let mut out = VerbCounts::new();
    let controller = |r: &&AuditRecord| r.user.as_deref() != Some(setup::BENCH_USER);
    for r in records.iter().filter(controller).filter(|r| r.verb != "watch") {
        *out.entry(format!("{} {}", r.verb, r.resource_path())).or_default() += 1;
    }
    out
}

fn cpu(process: &ControllerProcess) -> Result<f64, BedError> {
    let pid = process.pid().ok_or_else(|| BedError::Process("the controller is not running".into()))?;
    procstat::cpu_seconds(pid)
}

/// Runs one point.
pub async fn run_point(config: &PointConfig) -> Result<PointResult, BedError> {
    let started = Instant::now();
    let n = config.canaries;
    let setup::BenchCluster { api, client, dir, kubeconfig, responder, writer: _writer, recorder } =
        setup::BenchCluster::start((n as usize * 8).max(10_000)).await?;
    let shape = CanaryShape {
        interval_secs: config.interval.as_secs().max(1),
        threshold: 5,
        step_weight: 1,
        max_weight: 99,
        metrics: vec!["request-success-rate", "request-duration"],
    };
    fleet::create(&client, n, &shape).await?;
    eprintln!("[N={n}] {} deployments and canaries created in {:.1?}", n, started.elapsed());
    let log_dir = config.log_dir.clone().unwrap_or_else(|| dir.path().to_path_buf());
    std::fs::create_dir_all(&log_dir).map_err(BedError::io(format!("create {}", log_dir.display())))?;
    let controller = ControllerProcess::start(ControllerConfig::new(
        &config.serin,
        &kubeconfig,
        responder.url(),
        dir.path(),
        log_dir.join(format!("controller-{n}.log")),
    )?)?;
    setup::wait_for(&recorder, &controller, n as usize, &["Initialized"], config.setup_timeout, started)
        .await?;
    let setup = started.elapsed();
    eprintln!("[N={n}] all Initialized after {setup:.1?}");

    // Idle: let the initialization's own follow-up reconciles pass, then count exactly one
    // interval (a whole number of intervals holds one tick per canary whatever their phase).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_window = config.interval;
    let (idle_from, cpu0) = (api.audit_len(), cpu(&controller)?);
    tokio::time::sleep(idle_window).await;
    let idle_requests = counts(&api.audit_since(idle_from));
    let idle_cpu = cpu(&controller)? - cpu0;
    eprintln!("[N={n}] idle window done: {idle_requests:?}");

    // Progressing: releases spread over one interval.
    let spread = config.interval;
    let release_start = tokio::time::Instant::now();
    for i in 0..n {
        tokio::time::sleep_until(release_start + spread.mul_f64(f64::from(i) / f64::from(n.max(1)))).await;
        let client = client.clone();
        tokio::spawn(async move {
            if let Err(e) = fleet::release(&client, i, "demo:2.0.0").await {
                eprintln!("release of {}: {e}", fleet::name(i));
            }
        });
    }
    setup::wait_for(
        &recorder,
        &controller,
        n as usize,
        &["Progressing", "Promoting", "Finalising", "Succeeded", "Failed"],
        config.setup_timeout,
        started,
    )
    .await?;
    // Each canary's first tick after the new revision is the weight-0 pre-rollout step, which
    // runs no metric queries. All of them fall within one interval from now: measure after it,
    // so every tick in the window is an analysis tick (two queries, one weight step).
    eprintln!(
        "[N={n}] all releases started after {:.1?}; one interval for the pre-rollout ticks, then measuring {:?}",
        started.elapsed(),
        config.window
    );
    tokio::time::sleep(config.interval + Duration::from_secs(2)).await;
    let from = SystemTime::now();
    let (audit_from, cpu0, stats0) = (api.audit_len(), cpu(&controller)?, responder.responder.stats());
    let window_started = Instant::now();
    tokio::time::sleep(config.window).await;
    let to = SystemTime::now();
    let window = window_started.elapsed();
    let progressing_cpu = cpu(&controller)? - cpu0;
    let progressing_requests = counts(&api.audit_since(audit_from));
    let stats1 = responder.responder.stats();
    let mut responder_micros = responder.responder.handling_micros_since(stats0);
    responder_micros.sort_unstable();
    let rss = procstat::rss_bytes(controller.pid().unwrap_or_default())?;
    // Give ticks due at the very end of the window a little time, then judge.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let end = SystemTime::now();
    let views = recorder.snapshot();
    let lateness = ticks::lateness(&views, config.interval, from, to, end);
    let ticks_done =
        views.values().flat_map(|v| v.ticks.iter()).filter(|t| t.seen >= from && t.seen <= to).count();
    let progressing = views.values().filter(|v| v.phase != "Initialized" && !v.phase.is_empty()).count();
    controller.terminate(Duration::from_secs(10));
    drop(recorder);
    api.shutdown().await;
    Ok(PointResult {
        canaries: n,
        setup,
        idle_requests,
        idle_intervals: idle_window.as_secs_f64() / config.interval.as_secs_f64(),
        idle_cpu,
        lateness,
        progressing_requests,
        progressing_cpu,
        ticks_done,
        queries: stats1.queries - stats0.queries,
        responder_micros,
        rss,
        progressing,
        window,
    })
}

fn per(count: f64, over: f64) -> f64 {
    if over > 0.0 { count / over } else { 0.0 }
}

fn verbs(counts: &VerbCounts, divisor: f64) -> String {
    if counts.is_empty() {
        return "none".into();
    }
    counts.iter().map(|(k, v)| format!("{k} {:.3}", per(*v as f64, divisor))).collect::<Vec<_>>().join(", ")
}

/// The results as a Markdown table, then per point the requests by verb.
pub fn table(results: &[PointResult], interval: Duration) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "interval {}s; Gateway API canaries, 2 builtin metrics; Prometheus API answered by the bench responder\n\n",
        interval.as_secs()
    ));
    out.push_str("| N | setup | ticks due | late > 1 s | p50 late | p99 late | max late | RSS | bytes/canary | CPU s (window) | CPU µs/tick | idle API req/canary/tick | prog. API req/tick | Prom queries/tick | responder p50/p99 µs |\n");
    out.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in results {
        let n = f64::from(r.canaries);
        let idle_total: u64 = r.idle_requests.values().sum();
        let prog_total: u64 = r.progressing_requests.values().sum();
        let ticks = r.ticks_done as f64;
        out.push_str(&format!(
            "| {} | {:.0} s | {} | {} | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} MiB | {:.0} | {:.1} | {:.0} | {:.3} | {:.2} | {:.2} | {}/{} |\n",
            r.canaries,
            r.setup.as_secs_f64(),
            r.lateness.due,
            r.lateness.late_over_1s,
            r.lateness.quantile(0.5).as_secs_f64() * 1e3,
            r.lateness.quantile(0.99).as_secs_f64() * 1e3,
            r.lateness.quantile(1.0).as_secs_f64() * 1e3,
            r.rss as f64 / 1048576.0,
            per(r.rss as f64, n),
            r.progressing_cpu,
            per(r.progressing_cpu * 1e6, ticks),
            per(idle_total as f64, n * r.idle_intervals),
            per(prog_total as f64, ticks),
            per(r.queries as f64, ticks),
            ticks::quantile(&r.responder_micros, 0.5),
            ticks::quantile(&r.responder_micros, 0.99),
        ));
    }
    out.push('\n');
    for r in results {
        let n = f64::from(r.canaries);
        out.push_str(&format!(
            "N={}: idle window {:.1} intervals, CPU {:.2} s; idle requests per canary per tick: {}\n",
            r.canaries,
            r.idle_intervals,
            r.idle_cpu,
            verbs(&r.idle_requests, n * r.idle_intervals)
        ));
        out.push_str(&format!(
            "N={}: progressing window {:.0} s, {} ticks done, {} of {} canaries in a release; requests per tick: {}\n",
            r.canaries,
            r.window.as_secs_f64(),
            r.ticks_done,
            r.progressing,
            r.canaries,
            verbs(&r.progressing_requests, r.ticks_done as f64)
        ));
    }
    out
}
