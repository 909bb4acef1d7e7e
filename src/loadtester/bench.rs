//! `serin loadtester bench`: measures the native load generator against a local target and
//! prints a table: requested vs achieved rate, latency percentiles (client plus a trivial local
//! server, so an upper bound of the client's overhead), and the highest rate one core reaches.
//! When `hey` or `wrk` are on `PATH`, the same target is measured with them in the same run.
//!
//! The target runs on its own single-threaded runtime and thread; the load runs on another
//! single-threaded runtime, so "one core" means one client thread. Only 127.0.0.1 is used and
//! every step is bounded by `--duration`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use reqwest::header::HeaderMap;
use reqwest::{Method, Url};
use thiserror::Error;

use crate::loadtester::load::{self, LoadSpec, LoadStats};

/// The benchmark could not run.
#[derive(Debug, Error)]
pub enum BenchError {
    /// Runtime, socket or thread trouble.
    #[error("{0}")]
    Setup(String),
    /// The load's client could not be built.
    #[error(transparent)]
    Load(#[from] load::LoadError),
}

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchPlan {
    /// Requested rates, requests per second.
    pub rates: Vec<f64>,
    /// Length of every step.
    pub duration: Duration,
    /// Workers of the maximum-rate step.
    pub concurrency: u32,
}

fn runtime() -> Result<tokio::runtime::Runtime, BenchError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| BenchError::Setup(e.to_string()))
}

/// Starts the target on its own thread; returns its URL and a stopper.
fn start_target()
-> Result<(String, tokio::sync::oneshot::Sender<()>, std::thread::JoinHandle<()>), BenchError> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| BenchError::Setup(e.to_string()))?;
    listener.set_nonblocking(true).map_err(|e| BenchError::Setup(e.to_string()))?;
    let url = format!("http://{}/", listener.local_addr().map_err(|e| BenchError::Setup(e.to_string()))?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let rt = runtime()?;
    let thread = std::thread::spawn(move || {
        rt.block_on(async move {
            let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
            let app = Router::new().route("/", get(|| async { "ok" }));
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
    });
    Ok((url, stop, thread))
}

fn step(url: &Url, rate: Option<f64>, concurrency: u32, duration: Duration) -> Result<LoadStats, BenchError> {
    let spec = LoadSpec {
        url: url.clone(),
        method: Method::GET,
        headers: HeaderMap::new(),
        body: None,
        rate,
        concurrency,
        duration: Some(duration),
        requests: None,
        timeout: Duration::from_secs(5),
        disable_keepalive: false,
        disable_redirects: false,
        insecure: false,
    };
    let client = spec.client()?;
    let stats = Arc::new(Mutex::new(LoadStats::default()));
    runtime()?.block_on(load::run(Arc::new(spec), client, stats.clone(), None, duration));
    let stats = stats.lock().map_err(|_| BenchError::Setup("stats lock poisoned".into()))?.clone();
    Ok(stats)
}

fn external(program: &str, args: &[String]) -> Option<f64> {
    let output = std::process::Command::new(program).args(args).output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines().find_map(|line| {
        let (label, value) = line.trim().split_once(':')?;
        (label.trim() == "Requests/sec").then(|| value.trim().parse().ok())?
    })
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

fn ms(stats: &LoadStats, q: f64) -> String {
    stats.latency.quantile(q).map(|d| format!("{:.3}", d.as_secs_f64() * 1e3)).unwrap_or_else(|| "-".into())
}

/// Runs the plan and writes the report to `out`.
pub fn run(plan: &BenchPlan, out: &mut impl std::io::Write) -> Result<(), BenchError> {
    let io = |e: std::io::Error| BenchError::Setup(e.to_string());
    let (url, stop, target) = start_target()?;
    let parsed = Url::parse(&url).map_err(|e| BenchError::Setup(e.to_string()))?;
    let seconds = plan.duration.as_secs_f64();
    writeln!(out, "target {url}, {seconds} s per step, debug build: {}", cfg!(debug_assertions))
        .map_err(io)?;
    writeln!(
        out,
        "{:>10} {:>10} {:>8} {:>9} {:>9} {:>7}",
        "requested", "achieved", "diff%", "p50 ms", "p99 ms", "errors"
    )
    .map_err(io)?;
    for &rate in &plan.rates {
        let concurrency = ((rate / 100.0).ceil() as u32).clamp(4, 256);
        let stats = step(&parsed, Some(rate), concurrency, plan.duration)?;
        let achieved = stats.requests as f64 / stats.elapsed.as_secs_f64().max(f64::EPSILON);
        writeln!(
            out,
            "{rate:>10.0} {achieved:>10.1} {:>+8.2} {:>9} {:>9} {:>7}",
            100.0 * (achieved - rate) / rate,
            ms(&stats, 0.5),
            ms(&stats, 0.99),
            stats.errors
        )
        .map_err(io)?;
    }
    let stats = step(&parsed, None, plan.concurrency, plan.duration)?;
    let max = stats.requests as f64 / stats.elapsed.as_secs_f64().max(f64::EPSILON);
    writeln!(
        out,
        "max rate, one client thread, {} workers: {max:.0} req/s (p50 {} ms, p99 {} ms, errors {})",
        plan.concurrency,
        ms(&stats, 0.5),
        ms(&stats, 0.99),
        stats.errors
    )
    .map_err(io)?;
    let z = format!("{}s", plan.duration.as_secs().max(1));
    if on_path("wrk") {
        let args = ["-t1".to_string(), format!("-c{}", plan.concurrency), format!("-d{z}"), url.clone()];
        match external("wrk", &args) {
            Some(rate) => writeln!(out, "wrk -t1 -c{} -d{z}: {rate:.0} req/s", plan.concurrency),
            None => writeln!(out, "wrk: no result"),
        }
        .map_err(io)?;
    }
    if on_path("hey") {
        let args = [
            "-z".to_string(),
            z.clone(),
            "-c".into(),
            plan.concurrency.to_string(),
            "-cpus".into(),
            "1".into(),
            url.clone(),
        ];
        match external("hey", &args) {
            Some(rate) => writeln!(out, "hey -z {z} -c {} -cpus 1: {rate:.0} req/s", plan.concurrency),
            None => writeln!(out, "hey: no result"),
        }
        .map_err(io)?;
        for &rate in &plan.rates {
            let workers = ((rate / 100.0).ceil() as u32).clamp(4, 256);
            let per_worker = format!("{}", rate / f64::from(workers));
            let args = [
                "-z".to_string(),
                z.clone(),
                "-c".into(),
                workers.to_string(),
                "-q".into(),
                per_worker,
                url.clone(),
            ];
            match external("hey", &args) {
                Some(achieved) => writeln!(out, "hey at {rate:.0} req/s requested: {achieved:.1} req/s"),
                None => writeln!(out, "hey at {rate:.0} req/s: no result"),
            }
            .map_err(io)?;
        }
    }
    let _ = stop.send(());
    target.join().map_err(|_| BenchError::Setup("target thread panicked".into()))?;
    Ok(())
}
