//! The loads of every canary: started at most once per canary+task while running (like
//! Flagger's runner), and their outcome kept for `load-result`.
//!
//! Each canary+task keeps the run in progress (if any) and the last finished run. A result
//! request judges the last finished run when there is one (final figures beat partial ones,
//! and a failure is not hidden by a restart in the same tick), else the running one.
//! Results of another revision (payload `checksum`) are not returned.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::loadtester::load::{self, LoadMetrics, LoadSpec, LoadStats, LoadSummary};

/// Most canary+task results kept; the oldest finished ones go first.
pub const MAX_SLOTS: usize = 1024;

/// What `start` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Started {
    /// A new run began.
    Started,
    /// The same task runs for this canary already; nothing was started.
    AlreadyRunning,
    /// `--max-loads` loads run already.
    Busy,
}

#[derive(Debug)]
struct Running {
    id: u64,
    checksum: String,
    stats: Arc<Mutex<LoadStats>>,
    max_error_rate: Option<f64>,
}

#[derive(Clone, Debug)]
struct Finished {
    checksum: String,
    summary: LoadSummary,
    max_error_rate: Option<f64>,
    order: u64,
}

#[derive(Debug, Default)]
struct Slot {
    running: Option<Running>,
    finished: Option<Finished>,
}

#[derive(Debug, Default)]
struct Inner {
    slots: HashMap<(String, String), Slot>,
    latest: HashMap<String, String>,
    next_id: u64,
}

/// A load's outcome as `load-result` reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadReport {
    /// The task name.
    pub task: String,
    /// The figures judged (the last finished run, else the running one).
    pub summary: LoadSummary,
    /// `Err(reason)` when the load failed.
    pub verdict: Result<(), String>,
    /// The run in progress, when the judged figures are of a finished run.
    pub running: Option<LoadSummary>,
}

/// All loads.
#[derive(Debug)]
pub struct Runs {
    inner: Arc<Mutex<Inner>>,
    max_running: usize,
}

impl Runs {
    /// An empty registry allowing `max_running` concurrent loads.
    pub fn new(max_running: usize) -> Self {
        Self { inner: Arc::default(), max_running }
    }

    /// Starts `spec` for `canary` (`name.namespace`) unless it runs already. The load runs on
    /// the tokio runtime, at most `max_duration`.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        &self,
        canary: &str,
        task: &str,
        checksum: &str,
        spec: LoadSpec,
        client: reqwest::Client,
        max_error_rate: Option<f64>,
        metrics: Option<LoadMetrics>,
        max_duration: Duration,
    ) -> Started {
        let Ok(mut inner) = self.inner.lock() else { return Started::Busy };
        let key = (canary.to_string(), task.to_string());
        if inner.slots.get(&key).is_some_and(|slot| slot.running.is_some()) {
            return Started::AlreadyRunning;
        }
        if inner.slots.values().filter(|slot| slot.running.is_some()).count() >= self.max_running {
            return Started::Busy;
        }
        if !inner.slots.contains_key(&key) && inner.slots.len() >= MAX_SLOTS {
            let oldest = inner
                .slots
                .iter()
                .filter(|(_, slot)| slot.running.is_none())
                .min_by_key(|(_, slot)| slot.finished.as_ref().map_or(0, |f| f.order))
                .map(|(key, _)| key.clone());
            match oldest {
                Some(oldest) => {
                    inner.slots.remove(&oldest);
                }
                None => return Started::Busy,
            }
        }
        inner.next_id += 1;
        let id = inner.next_id;
        let stats = Arc::new(Mutex::new(LoadStats::default()));
        inner.slots.entry(key.clone()).or_default().running =
            Some(Running { id, checksum: checksum.to_string(), stats: stats.clone(), max_error_rate });
        inner.latest.insert(canary.to_string(), task.to_string());
        drop(inner);

        let registry = self.inner.clone();
        tokio::spawn(async move {
            load::run(Arc::new(spec), client, stats.clone(), metrics, max_duration).await;
            let summary = match stats.lock() {
                Ok(stats) => stats.summary(false),
                Err(_) => LoadStats::default().summary(false),
            };
            tracing::info!(canary = %key.0, task = %key.1, requests = summary.requests, errors = summary.errors,
                rate = summary.rate, p99_ms = ?summary.p99_ms, "load finished");
            let Ok(mut inner) = registry.lock() else { return };
            inner.next_id += 1;
            let order = inner.next_id;
            if let Some(slot) = inner.slots.get_mut(&key)
                && let Some(running) = slot.running.take_if(|r| r.id == id)
            {
                slot.finished = Some(Finished {
                    checksum: running.checksum,
                    summary,
                    max_error_rate: running.max_error_rate,
                    order,
                });
            }
        });
        Started::Started
    }

    /// The outcome of `task` (default: the canary's latest load) for revision `checksum`
    /// (empty: any). `max_error_rate` overrides the load's own. `None`: no such load.
    pub fn report(
        &self,
        canary: &str,
        task: Option<&str>,
        checksum: &str,
        max_error_rate: Option<f64>,
    ) -> Option<LoadReport> {
        let inner = self.inner.lock().ok()?;
        let task = match task {
            Some(task) => task.to_string(),
            None => inner.latest.get(canary)?.clone(),
        };
        let slot = inner.slots.get(&(canary.to_string(), task.clone()))?;
        let same = |other: &str| checksum.is_empty() || other.is_empty() || other == checksum;
        let running = slot.running.as_ref().filter(|r| same(&r.checksum)).map(|r| {
            (
                r.stats
                    .lock()
                    .map(|s| s.summary(true))
                    .unwrap_or_else(|_| LoadStats::default().summary(true)),
                r.max_error_rate,
            )
        });
        let finished = slot.finished.as_ref().filter(|f| same(&f.checksum));
        let (summary, budget, running) = match (finished, running) {
            (Some(f), running) => (f.summary.clone(), f.max_error_rate, running.map(|(s, _)| s)),
            (None, Some((summary, budget))) => (summary, budget, None),
            (None, None) => return None,
        };
        let verdict = load::judge(&summary, max_error_rate.or(budget));
        Some(LoadReport { task, summary, verdict, running })
    }

    /// Loads running now.
    pub fn running(&self) -> usize {
        self.inner
            .lock()
            .map(|inner| inner.slots.values().filter(|s| s.running.is_some()).count())
            .unwrap_or(0)
    }
}
