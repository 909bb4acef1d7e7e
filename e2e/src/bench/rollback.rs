//! The rollback benchmark: N canaries in a release with traffic on the canary; then, one after
//! another (spread over one interval), each one's success rate drops to 0 %. With
//! `threshold: 1` the first failing answer is the verdict "roll back"; the latency measured is
//! from the responder sending that answer to the HTTPRoute showing weight 0 on the canary in
//! the API (the bench's watch event). The Git revert path is measured separately
//! (`cargo bench --bench git_revert` in the `serin` package).

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use futures::StreamExt;
use kube::{
    Api,
    api::{ApiResource, DynamicObject},
    runtime::{WatchStreamExt, watcher},
};
use serde_json::Value;

use super::{
    fleet::{self, CanaryShape, NAMESPACE, PREFIX},
    setup, ticks,
};
use crate::{
    error::BedError,
    scenario::controller::{ControllerConfig, ControllerProcess},
};

/// How the rollback benchmark runs.
#[derive(Debug, Clone)]
pub struct RollbackConfig {
    /// The `serin` binary.
    pub serin: PathBuf,
    /// Number of canaries, each rolled back once.
    pub rollbacks: u32,
    /// `analysis.interval`.
    pub interval: Duration,
    /// Upper bound for each phase (setup, releases starting, rollbacks).
    pub timeout: Duration,
}

/// What it measured.
#[derive(Debug, Clone, Default)]
pub struct RollbackResult {
    /// Canaries rolled back.
    pub rollbacks: u32,
    /// Latency of each measured rollback, sorted.
    pub sorted: Vec<Duration>,
    /// Rollbacks not seen within the timeout.
    pub missing: u32,
}

/// `(time seen, canary weight)` of every HTTPRoute change, per canary index.
type RouteLog = Arc<Mutex<HashMap<u32, Vec<(SystemTime, i64)>>>>;

fn httproute() -> ApiResource {
    ApiResource {
        group: "gateway.networking.k8s.io".into(),
        version: "v1".into(),
        api_version: "gateway.networking.k8s.io/v1".into(),
        kind: "HTTPRoute".into(),
        plural: "httproutes".into(),
    }
}

/// The weight of the `*-canary` backend of the last rule (Serin's default rule).
fn canary_weight(route: &Value) -> Option<i64> {
    let rules = route["spec"]["rules"].as_array()?;
    let refs = rules.last()?["backendRefs"].as_array()?;
    refs.iter()
        .find(|r| r["name"].as_str().is_some_and(|n| n.ends_with("-canary")))
        .map(|r| r["weight"].as_i64().unwrap_or(1))
}

fn watch_routes(client: kube::Client) -> (RouteLog, tokio::task::JoinHandle<()>) {
    let log: RouteLog = Arc::default();
    let api: Api<DynamicObject> = Api::namespaced_with(client, NAMESPACE, &httproute());
    let shared = log.clone();
    let task = tokio::spawn(async move {
        let mut events = watcher(api, watcher::Config::default()).default_backoff().applied_objects().boxed();
        while let Some(event) = events.next().await {
            let Ok(obj) = event else { continue };
            let seen = SystemTime::now();
            let index = obj
                .metadata
                .name
                .as_deref()
                .and_then(|n| n.strip_prefix(PREFIX))
                .and_then(|d| d.parse().ok());
            let (Some(index), Some(weight)) = (index, canary_weight(&obj.data)) else { continue };
            shared.lock().unwrap_or_else(|e| e.into_inner()).entry(index).or_default().push((seen, weight));
        }
    });
    (log, task)
}

/// Runs the rollback benchmark.
pub async fn run(config: &RollbackConfig) -> Result<RollbackResult, BedError> {
    let started = Instant::now();
    let n = config.rollbacks;
    let setup::BenchCluster { api, client, dir, kubeconfig, responder, writer: _writer, recorder } =
        setup::BenchCluster::start(100_000).await?;
    let (routes, route_task) = watch_routes(client.clone());
    let shape = CanaryShape {
        interval_secs: config.interval.as_secs().max(1),
        threshold: 1,
        step_weight: 10,
        max_weight: 50,
        metrics: vec!["request-success-rate"],
    };
    fleet::create(&client, n, &shape).await?;
    let controller = ControllerProcess::start(ControllerConfig::new(
        &config.serin,
        &kubeconfig,
        responder.url(),
        dir.path(),
        dir.path().join("controller.log"),
    )?)?;
    setup::wait_for(&recorder, &controller, n as usize, &["Initialized"], config.timeout, started).await?;
    for i in 0..n {
        fleet::release(&client, i, "demo:2.0.0").await?;
    }
    // Traffic on every canary: the routes show a canary weight > 0.
    let deadline = Instant::now() + config.timeout;
    loop {
        let on_canary = {
            let log = routes.lock().unwrap_or_else(|e| e.into_inner());
            log.values().filter(|v| v.last().is_some_and(|(_, w)| *w > 0)).count()
        };
        if on_canary >= n as usize {
            break;
        }
        if Instant::now() >= deadline || !controller.is_running() {
            return Err(BedError::Timeout(
                config.timeout,
                format!("{on_canary} of {n} canaries got traffic"),
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "[rollback] {n} canaries with traffic after {:.1?}; failing them one by one",
        started.elapsed()
    );
    let spread = config.interval;
    let begin = tokio::time::Instant::now();
    for i in 0..n {
        tokio::time::sleep_until(begin + spread.mul_f64(f64::from(i) / f64::from(n.max(1)))).await;
        responder.responder.set_failing(i);
    }
    let deadline = Instant::now() + config.timeout;
    let mut result = RollbackResult { rollbacks: n, ..RollbackResult::default() };
    loop {
        let (mut latencies, mut missing) = (Vec::new(), 0);
        {
            let log = routes.lock().unwrap_or_else(|e| e.into_inner());
            for i in 0..n {
                let back = responder.responder.first_failing_answer(i).and_then(|verdict| {
                    log.get(&i)?
                        .iter()
                        .find(|(seen, w)| *w == 0 && *seen >= verdict)
                        .map(|(seen, _)| seen.duration_since(verdict).unwrap_or_default())
                });
                match back {
                    Some(latency) => latencies.push(latency),
                    None => missing += 1,
                }
            }
        }
        if missing == 0 || Instant::now() >= deadline {
            latencies.sort();
            result.sorted = latencies;
            result.missing = missing;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    controller.terminate(Duration::from_secs(10));
    route_task.abort();
    drop(recorder);
    api.shutdown().await;
    Ok(result)
}

/// The result as a Markdown table.
pub fn table(r: &RollbackResult, interval: Duration) -> String {
    let ms = |q: f64| ticks::quantile(&r.sorted, q).as_secs_f64() * 1e3;
    format!(
        "interval {}s, threshold 1, Gateway API; verdict = first failing Prometheus answer, done = HTTPRoute canary weight 0 seen on a watch\n\n\
         | rollbacks | measured | missing | p50 | p99 | max |\n|---|---|---|---|---|---|\n\
         | {} | {} | {} | {:.1} ms | {:.1} ms | {:.1} ms |\n",
        interval.as_secs(),
        r.rollbacks,
        r.sorted.len(),
        r.missing,
        ms(0.5),
        ms(0.99),
        ms(1.0)
    )
}
