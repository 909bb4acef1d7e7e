//! Watching a Canary from outside, as a user would with `kubectl get canary -w`: a background
//! task watches it (every status write arrives as an event, so no short-lived phase is
//! missed), keeps a timeline of every change of phase, weight, failed checks and metric
//! results, optionally prints each change (the demo's live view), and lets a scenario wait for
//! a condition with a deadline.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::StreamExt;
use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject, GroupVersionKind},
    runtime::{WatchStreamExt, watcher},
};
use serde_json::Value;

use crate::{error::BedError, util::poll_until};

/// How late a change can be seen: the watch delivers it at once; this bounds the scheduling
/// delay of the observer task on a busy machine, for timing checks.
pub const POLL: Duration = Duration::from_millis(200);

/// What a user sees of a Canary at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Time since the observer started.
    pub at: Duration,
    /// `status.phase` (empty before the controller wrote one).
    pub phase: String,
    /// `status.canaryWeight`.
    pub weight: i64,
    /// `status.failedChecks`.
    pub failed_checks: i64,
    /// `status.revision`.
    pub revision: String,
    /// `status.analysis` as `name=value verdict` items.
    pub analysis: Vec<String>,
    /// The whole `status`.
    pub status: Value,
}

impl Snapshot {
    fn from_status(at: Duration, status: Value) -> Self {
        let analysis = status["analysis"]
            .as_array()
            .map(|items| items.iter().map(metric_summary).collect())
            .unwrap_or_default();
        Snapshot {
            at,
            phase: status["phase"].as_str().unwrap_or_default().to_string(),
            weight: status["canaryWeight"].as_i64().unwrap_or(0),
            failed_checks: status["failedChecks"].as_i64().unwrap_or(0),
            revision: status["revision"].as_str().unwrap_or_default().to_string(),
            analysis,
            status,
        }
    }

    /// The parts a person follows; two snapshots with the same view are one timeline entry.
    fn view(&self) -> (&str, i64, i64, &str, &[String]) {
        (&self.phase, self.weight, self.failed_checks, &self.revision, &self.analysis)
    }

    /// One line of the live view.
    pub fn line(&self) -> String {
        let analysis = if self.analysis.is_empty() { "-".to_string() } else { self.analysis.join(", ") };
        format!(
            "{:>6.1}s  {:<16} weight {:>3}  failed {}  {}",
            self.at.as_secs_f64(),
            if self.phase.is_empty() { "-" } else { &self.phase },
            self.weight,
            self.failed_checks,
            analysis
        )
    }
}

fn metric_summary(item: &Value) -> String {
    let name = item["name"].as_str().unwrap_or("?");
    let verdict = item["verdict"].as_str().unwrap_or("?");
    match item["value"].as_f64() {
        Some(v) => format!("{name}={v:.1} {verdict}"),
        None => format!("{name} {verdict}"),
    }
}

type Timeline = Arc<Mutex<Vec<Snapshot>>>;

/// A running observer of one Canary; stops on drop.
pub struct CanaryObserver {
    timeline: Timeline,
    started: Instant,
    task: tokio::task::JoinHandle<()>,
    label: String,
}

impl CanaryObserver {
    /// Starts polling `namespace/name`; with `live`, prints every change to stdout.
    pub fn start(client: Client, namespace: &str, name: &str, live: bool) -> Self {
        let api: Api<DynamicObject> = Api::namespaced_with(client, namespace, &canary_resource());
        let timeline: Timeline = Arc::default();
        let started = Instant::now();
        let label = format!("{namespace}/{name}");
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let task = tokio::spawn({
            let (timeline, label) = (timeline.clone(), label.clone());
            async move {
                let events = watcher(api, config).default_backoff().applied_objects();
                futures::pin_mut!(events);
                while let Some(event) = events.next().await {
                    // Errors are retried by the backoff (relist); the next object catches up.
                    let Ok(canary) = event else { continue };
                    let status = canary.data.get("status").cloned().unwrap_or(Value::Null);
                    let snapshot = Snapshot::from_status(started.elapsed(), status);
                    record(&timeline, snapshot, live.then_some(label.as_str()));
                }
            }
        });
        CanaryObserver { timeline, started, task, label }
    }

    /// Every change seen so far, oldest first.
    pub fn timeline(&self) -> Vec<Snapshot> {
        self.timeline.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// The latest snapshot.
    pub fn latest(&self) -> Option<Snapshot> {
        self.timeline.lock().ok().and_then(|t| t.last().cloned())
    }

    /// Time since the observer started (the timeline's clock).
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Waits until the latest snapshot satisfies `pred`; the error names `what`, the last
    /// snapshot and the timeline.
    pub async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Snapshot) -> bool,
    ) -> Result<Snapshot, BedError> {
        self.poll(what, timeout, || self.latest().filter(|s| pred(s))).await
    }

    /// Waits for the first change at or after `from` (the timeline's clock) that satisfies
    /// `pred`, so a state left over from before `from` does not count.
    pub async fn wait_for_after(
        &self,
        from: Duration,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Snapshot) -> bool,
    ) -> Result<Snapshot, BedError> {
        self.poll(what, timeout, || self.timeline().into_iter().find(|s| s.at >= from && pred(s))).await
    }

    async fn poll(
        &self,
        what: &str,
        timeout: Duration,
        find: impl Fn() -> Option<Snapshot>,
    ) -> Result<Snapshot, BedError> {
        let what = || format!("canary {} {what}; timeline:\n{}", self.label, self.render());
        poll_until(timeout, Duration::from_millis(50), what, || std::future::ready(Ok(find()))).await
    }

    /// Waits for `phase`.
    pub async fn wait_for_phase(&self, phase: &str, timeout: Duration) -> Result<Snapshot, BedError> {
        self.wait_for(&format!("to reach phase {phase}"), timeout, |s| s.phase == phase).await
    }

    /// The timeline as text, one line per change.
    pub fn render(&self) -> String {
        self.timeline().iter().map(Snapshot::line).collect::<Vec<_>>().join("\n")
    }
}

impl Drop for CanaryObserver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn record(timeline: &Timeline, snapshot: Snapshot, live: Option<&str>) {
    let Ok(mut timeline) = timeline.lock() else { return };
    if timeline.last().is_some_and(|last| last.view() == snapshot.view()) {
        return;
    }
    if let Some(label) = live {
        println!("  {label}  {}", snapshot.line());
    }
    timeline.push(snapshot);
}

/// The `serin.dev/v1alpha1` Canary resource, for dynamic clients (this crate does not link
/// Serin's types).
pub fn canary_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("serin.dev", "v1alpha1", "Canary"), "canaries")
}
