//! Watches the fleet's Canaries and records, per canary, every new `status.lastTick` with the
//! wall-clock time its status write became visible in the API (the watch event's arrival), plus
//! the phase and canary weight. From these, the lateness of every tick: a paced canary's next
//! tick is due at `lastTick + interval` (the controller's own rule, `rollout::wait_before_tick`),
//! and it is late by the time between that and its next status write showing up.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, SystemTime},
};

use futures::StreamExt;
use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject},
    runtime::{WatchStreamExt, watcher},
};
use tokio::task::JoinHandle;

use super::fleet::{NAMESPACE, PREFIX};

/// One tick as seen in the API.
#[derive(Debug, Clone, Copy)]
pub struct Tick {
    /// `status.lastTick` (whole seconds).
    pub last_tick: SystemTime,
    /// When the status write carrying it arrived on the bench's watch.
    pub seen: SystemTime,
}

/// What is known of one canary.
#[derive(Debug, Clone, Default)]
pub struct CanaryView {
    /// `status.phase`.
    pub phase: String,
    /// `status.canaryWeight`.
    pub weight: i64,
    /// Every distinct `lastTick`, in order.
    pub ticks: Vec<Tick>,
}

/// The recorder; dropping it stops the watch.
pub struct TickRecorder {
    state: Arc<Mutex<HashMap<u32, CanaryView>>>,
    task: JoinHandle<()>,
}

impl Drop for TickRecorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The Canary kind, for dynamic access.
pub fn canary_resource() -> ApiResource {
    ApiResource {
        group: "serin.dev".into(),
        version: "v1alpha1".into(),
        api_version: "serin.dev/v1alpha1".into(),
        kind: "Canary".into(),
        plural: "canaries".into(),
    }
}

fn parse_time(text: &str) -> Option<SystemTime> {
    let ts: jiff::Timestamp = text.parse().ok()?;
    let nanos = u64::try_from(ts.as_nanosecond()).ok()?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_nanos(nanos))
}

impl TickRecorder {
    /// Starts watching the Canaries of the bench namespace.
    pub fn start(client: Client) -> Self {
        let state: Arc<Mutex<HashMap<u32, CanaryView>>> = Arc::default();
        let api: Api<DynamicObject> = Api::namespaced_with(client, NAMESPACE, &canary_resource());
        let shared = state.clone();
        let task = tokio::spawn(async move {
            let mut events =
                watcher(api, watcher::Config::default()).default_backoff().applied_objects().boxed();
            while let Some(event) = events.next().await {
                let Ok(obj) = event else { continue };
                let seen = SystemTime::now();
                let Some(index) = obj
                    .metadata
                    .name
                    .as_deref()
                    .and_then(|n| n.strip_prefix(PREFIX))
                    .and_then(|d| d.parse().ok())
                else {
                    continue;
                };
                let status = &obj.data["status"];
                let mut views = shared.lock().unwrap_or_else(|e| e.into_inner());
                let view: &mut CanaryView = views.entry(index).or_default();
                view.phase = status["phase"].as_str().unwrap_or_default().to_string();
                view.weight = status["canaryWeight"].as_i64().unwrap_or(0);
                if let Some(last_tick) = status["lastTick"].as_str().and_then(parse_time)
                    && view.ticks.last().is_none_or(|t| t.last_tick != last_tick)
                {
                    view.ticks.push(Tick { last_tick, seen });
                }
            }
        });
        TickRecorder { state, task }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u32, CanaryView>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many canaries are in `phase`.
    pub fn count_in(&self, phases: &[&str]) -> usize {
        self.lock().values().filter(|v| phases.contains(&v.phase.as_str())).count()
    }

    /// A copy of everything recorded.
    pub fn snapshot(&self) -> HashMap<u32, CanaryView> {
        self.lock().clone()
    }
}

/// Lateness of the ticks due in a window.
#[derive(Debug, Clone, Default)]
pub struct Lateness {
    /// Ticks due in the window.
    pub due: usize,
    /// Of those, late by more than a second (including ticks that never came).
    pub late_over_1s: usize,
    /// Lateness of each due tick, sorted (a missing tick counts with its lateness at `end`).
    pub sorted: Vec<Duration>,
}

impl Lateness {
    /// The `q`-quantile (0..=1) of the lateness.
    pub fn quantile(&self, q: f64) -> Duration {
        quantile(&self.sorted, q)
    }
}

/// The `q`-quantile (nearest rank) of sorted values, zero when empty.
pub fn quantile<T: Copy + Default>(sorted: &[T], q: f64) -> T {
    if sorted.is_empty() {
        return T::default();
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// The lateness of every tick due in `[from, to]` with pacing `interval`, judged at `end`
/// (≥ `to`): for a canary's tick k, due = lastTick(k) + interval; its lateness is the arrival of
/// tick k+1 minus due, or `end` minus due if tick k+1 has not arrived.
pub fn lateness(
    views: &HashMap<u32, CanaryView>,
    interval: Duration,
    from: SystemTime,
    to: SystemTime,
    end: SystemTime,
) -> Lateness {
    let mut out = Lateness::default();
    for view in views.values() {
        for (k, tick) in view.ticks.iter().enumerate() {
            let due = tick.last_tick + interval;
            if due < from || due > to {
                continue;
            }
            let arrived = view.ticks.get(k + 1).map_or(end, |next| next.seen);
            let late = arrived.duration_since(due).unwrap_or_default();
            out.due += 1;
            if late > Duration::from_secs(1) {
                out.late_over_1s += 1;
            }
            out.sorted.push(late);
        }
    }
    out.sorted.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lateness_counts_due_ticks_and_missing_ones() {
        let t = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        let tick = |last: u64, seen_ms: u64| Tick {
            last_tick: t(last),
            seen: SystemTime::UNIX_EPOCH + Duration::from_millis(seen_ms),
        };
        let view = CanaryView {
            phase: "Progressing".into(),
            weight: 1,
            ticks: vec![tick(100, 100_300), tick(110, 110_200), tick(120, 122_500)],
        };
        let views = HashMap::from([(1, view)]);
        let l = lateness(&views, Duration::from_secs(10), t(105), t(135), t(140));
        // due 110 (came 110.2), due 120 (came 122.5), due 130 (never: 10 s at end = 140).
        assert_eq!((l.due, l.late_over_1s), (3, 2));
        assert_eq!(l.quantile(0.5), Duration::from_millis(2_500));
        assert_eq!(l.quantile(1.0), Duration::from_secs(10));
    }
}
