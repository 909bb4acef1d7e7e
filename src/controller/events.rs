//! Kubernetes Events about Canaries (`events.k8s.io/v1`), repeated ones folded into a series.
//!
//! kube-runtime's `Recorder` keeps every Event it sent, whole, and scans that cache on every
//! publish; its key leaves out the note, so a repeat with a new message patches the old
//! message's series. At thousands of canaries that cost memory and a full scan per Event
//! (measured in BENCHMARKS.md). This recorder keys a series by object, type, reason *and*
//! note, as client-go does, keeps only a hash, the Event's name and a count per series, and
//! sweeps expired series at most once per [`SWEEP_EVERY`].

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::core::Request;
use kube::runtime::events::EventType;
/// Who reports the Events (`reportingController`, `reportingInstance`): kube-runtime's type.
pub use kube::runtime::events::Reporter;
use serde_json::json;

/// How long a repeat joins the earlier Event's series instead of making a new Event
/// (kube-runtime and client-go use the same six minutes).
pub const SERIES_TTL: Duration = Duration::from_secs(6 * 60);
/// How often expired series are dropped from the cache.
pub const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// Series remembered at most; past it a repeat makes a new Event rather than growing the cache.
pub const MAX_SERIES: usize = 100_000;

/// Why an Event could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// The API refused the new Event.
    #[error("creating Event {name}: {source}")]
    Create {
        /// The Event's name.
        name: String,
        /// The API error.
        source: kube::Error,
    },
    /// The API refused the series update.
    #[error("updating the series of Event {name}: {source}")]
    Patch {
        /// The Event's name.
        name: String,
        /// The API error.
        source: kube::Error,
    },
}

/// What to do for one occurrence: a new Event, or one more in an existing series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Occurrence {
    /// No live series: create an Event.
    New,
    /// The `count`th occurrence of the Event `name`.
    Repeat {
        /// The Event's name.
        name: String,
        /// The series count to write (2 for the first repeat).
        count: i32,
    },
}

#[derive(Debug)]
struct Series {
    name: String,
    count: i32,
    last: Instant,
}

/// The series cache, without I/O: which occurrences repeat a recent Event.
#[derive(Debug)]
pub struct SeriesCache {
    series: HashMap<u64, Series>,
    last_sweep: Option<Instant>,
    ttl: Duration,
    capacity: usize,
}

impl Default for SeriesCache {
    fn default() -> Self {
        Self::new(SERIES_TTL, MAX_SERIES)
    }
}

impl SeriesCache {
    /// A cache whose series live `ttl` after their last occurrence, holding at most `capacity`.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self { series: HashMap::new(), last_sweep: None, ttl, capacity }
    }

    /// An occurrence of `key` at `now`: a repeat of a series seen within the TTL (whose count
    /// this bumps), or new.
    pub fn occur(&mut self, key: u64, now: Instant) -> Occurrence {
        self.sweep(now);
        match self.series.get_mut(&key) {
            Some(s) if now.saturating_duration_since(s.last) < self.ttl => {
                s.count = s.count.saturating_add(1);
                s.last = now;
                Occurrence::Repeat { name: s.name.clone(), count: s.count }
            }
            Some(_) => {
                self.series.remove(&key);
                Occurrence::New
            }
            None => Occurrence::New,
        }
    }

    /// The Event `name` was created for `key` at `now`.
    pub fn created(&mut self, key: u64, name: String, now: Instant) {
        if self.series.len() < self.capacity || self.series.contains_key(&key) {
            self.series.insert(key, Series { name, count: 1, last: now });
        }
    }

    /// The series of `key` is gone (its Event expired in the API).
    pub fn forget(&mut self, key: u64) {
        self.series.remove(&key);
    }

    /// Series remembered.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    /// Whether no series is remembered.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    fn sweep(&mut self, now: Instant) {
        let due = self.last_sweep.is_none_or(|last| now.saturating_duration_since(last) >= SWEEP_EVERY);
        if !due {
            return;
        }
        self.last_sweep = Some(now);
        let ttl = self.ttl;
        self.series.retain(|_, s| now.saturating_duration_since(s.last) < ttl);
    }
}

/// The series key of an Event: the object it is about, type, reason and note.
pub fn series_key(regarding: &ObjectReference, type_: EventType, reason: &str, note: &str) -> u64 {
    let mut h = DefaultHasher::new();
    regarding.namespace.hash(&mut h);
    regarding.name.hash(&mut h);
    regarding.uid.hash(&mut h);
    regarding.kind.hash(&mut h);
    matches!(type_, EventType::Warning).hash(&mut h);
    reason.hash(&mut h);
    note.hash(&mut h);
    h.finish()
}

/// The longest `note` the API server accepts, in bytes.
pub const NOTE_LIMIT: usize = 1024;

/// `note` cut to [`NOTE_LIMIT`] bytes at a character boundary (with `…` when cut): the API
/// server refuses a longer one, counting bytes, not characters.
pub fn event_note(note: &str) -> String {
    if note.len() <= NOTE_LIMIT {
        return note.to_string();
    }
    crate::webhook::caller::truncate_utf8(note, NOTE_LIMIT - '…'.len_utf8())
}

/// Records Events through the API, folding repeats into series.
pub struct EventRecorder {
    client: Client,
    reporter: Reporter,
    cache: Mutex<SeriesCache>,
}

impl EventRecorder {
    /// A recorder writing as `reporter`.
    pub fn new(client: Client, reporter: Reporter) -> Self {
        Self { client, reporter, cache: Mutex::new(SeriesCache::default()) }
    }

    fn occur(&self, key: u64) -> Occurrence {
        match self.cache.lock() {
            Ok(mut cache) => cache.occur(key, Instant::now()),
            Err(_) => Occurrence::New,
        }
    }

    /// Records one occurrence of an Event about `regarding` (its namespace holds the Event).
    pub async fn publish(
        &self,
        regarding: &ObjectReference,
        type_: EventType,
        reason: &str,
        note: &str,
    ) -> Result<(), EventError> {
        let key = series_key(regarding, type_, reason, note);
        let namespace = regarding.namespace.as_deref().unwrap_or("default");
        let api: Api<Event> = Api::namespaced(self.client.clone(), namespace);
        let now = Timestamp::now();
        if let Occurrence::Repeat { name, count } = self.occur(key) {
            let series = EventSeries { count, last_observed_time: MicroTime(now) };
            let patch = json!({"series": series});
            match api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => return Ok(()),
                // Expired or deleted in the API: start a new Event below.
                Err(kube::Error::Api(status)) if status.code == 404 => {
                    if let Ok(mut cache) = self.cache.lock() {
                        cache.forget(key);
                    }
                }
                Err(source) => return Err(EventError::Patch { name, source }),
            }
        }
        let event = self.event(regarding, type_, reason, note, now);
        let name = event.metadata.name.clone().unwrap_or_default();
        let create = |source| EventError::Create { name: name.clone(), source };
        let body = serde_json::to_vec(&event).map_err(|e| create(kube::Error::SerdeError(e)))?;
        let request = Request::new(api.resource_url())
            .create(&PostParams::default(), body)
            .map_err(|e| create(kube::Error::BuildRequest(e)))?;
        // The created Event is not read back, not even parsed (errors come as statuses).
        self.client.request_text(request).await.map_err(create)?;
        if let Ok(mut cache) = self.cache.lock() {
            cache.created(key, name, Instant::now());
        }
        Ok(())
    }

    fn event(
        &self,
        regarding: &ObjectReference,
        type_: EventType,
        reason: &str,
        note: &str,
        now: Timestamp,
    ) -> Event {
        let object = regarding.name.as_deref().unwrap_or(&self.reporter.controller);
        Event {
            metadata: ObjectMeta {
                name: Some(format!("{object}.{:x}", now.as_nanosecond())),
                namespace: regarding.namespace.clone(),
                ..ObjectMeta::default()
            },
            action: Some(reason.to_string()),
            reason: Some(reason.to_string()),
            note: Some(event_note(note)),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            reporting_controller: Some(self.reporter.controller.clone()),
            reporting_instance: Some(
                self.reporter.instance.clone().unwrap_or_else(|| self.reporter.controller.clone()),
            ),
            type_: Some(match type_ {
                EventType::Normal => "Normal".into(),
                EventType::Warning => "Warning".into(),
            }),
            ..Event::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(name: &str, uid: &str) -> ObjectReference {
        ObjectReference {
            kind: Some("Canary".into()),
            namespace: Some("test".into()),
            name: Some(name.into()),
            uid: Some(uid.into()),
            ..ObjectReference::default()
        }
    }

    #[test]
    fn notes_fit_the_api_limit_in_bytes() {
        assert_eq!(event_note("weight 10"), "weight 10");
        let exact = "a".repeat(NOTE_LIMIT);
        assert_eq!(event_note(&exact), exact);
        for long in ["a".repeat(NOTE_LIMIT + 1), "é".repeat(NOTE_LIMIT), "€".repeat(600)] {
            let note = event_note(&long);
            assert!(note.len() <= NOTE_LIMIT && note.ends_with('…'), "{} bytes", note.len());
            assert!(long.starts_with(note.trim_end_matches('…')));
        }
    }

    #[test]
    fn the_key_tells_objects_types_reasons_and_notes_apart() {
        let a = reference("a", "1");
        let base = series_key(&a, EventType::Normal, "Progressing", "weight 10");
        assert_eq!(base, series_key(&a, EventType::Normal, "Progressing", "weight 10"));
        let different = [
            series_key(&reference("b", "1"), EventType::Normal, "Progressing", "weight 10"),
            series_key(&reference("a", "2"), EventType::Normal, "Progressing", "weight 10"),
            series_key(&a, EventType::Warning, "Progressing", "weight 10"),
            series_key(&a, EventType::Normal, "Synced", "weight 10"),
            series_key(&a, EventType::Normal, "Progressing", "weight 20"),
        ];
        for (i, k) in different.iter().enumerate() {
            assert_ne!(*k, base, "case {i}");
        }
    }

    #[test]
    fn repeats_within_the_ttl_count_up_and_expire_after_it() {
        let t0 = Instant::now();
        let ttl = Duration::from_secs(360);
        let mut cache = SeriesCache::new(ttl, 10);
        // (seconds after t0, occurrence expected)
        assert_eq!(cache.occur(7, t0), Occurrence::New);
        cache.created(7, "ev-1".into(), t0);
        let table = [
            (10, Occurrence::Repeat { name: "ev-1".into(), count: 2 }),
            (300, Occurrence::Repeat { name: "ev-1".into(), count: 3 }),
            // 359 s after the last occurrence (at 300): still the series.
            (659, Occurrence::Repeat { name: "ev-1".into(), count: 4 }),
            // 360 s after the last one: a new Event.
            (1019, Occurrence::New),
        ];
        for (secs, expected) in table {
            assert_eq!(cache.occur(7, t0 + Duration::from_secs(secs)), expected, "at {secs} s");
        }
        assert!(cache.is_empty(), "the expired series is dropped on its repeat");
    }

    #[test]
    fn sweeps_drop_expired_series_at_most_once_a_minute() {
        let t0 = Instant::now();
        let mut cache = SeriesCache::new(Duration::from_secs(100), 10);
        assert_eq!(cache.occur(1, t0), Occurrence::New); // first sweep at t0
        cache.created(1, "one".into(), t0);
        cache.created(2, "two".into(), t0 + Duration::from_secs(50));
        // 110 s: series 1 has expired but the last sweep was 110 s ago: it sweeps now.
        assert_eq!(cache.occur(3, t0 + Duration::from_secs(110)), Occurrence::New);
        assert_eq!(cache.len(), 1, "series 1 swept, series 2 kept");
        // 160 s: series 2 expired, but the last sweep was only 50 s ago: kept until the next.
        assert_eq!(cache.occur(3, t0 + Duration::from_secs(160)), Occurrence::New);
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.occur(3, t0 + Duration::from_secs(170)), Occurrence::New);
        assert!(cache.is_empty(), "swept 60 s after the previous sweep");
    }

    #[test]
    fn a_full_cache_remembers_no_new_series_but_keeps_its_own() {
        let t0 = Instant::now();
        let mut cache = SeriesCache::new(Duration::from_secs(360), 2);
        cache.created(1, "one".into(), t0);
        cache.created(2, "two".into(), t0);
        cache.created(3, "three".into(), t0);
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.occur(3, t0), Occurrence::New, "not remembered");
        assert_eq!(cache.occur(2, t0), Occurrence::Repeat { name: "two".into(), count: 2 });
        cache.created(2, "two-again".into(), t0);
        assert_eq!(cache.occur(2, t0), Occurrence::Repeat { name: "two-again".into(), count: 2 });
        cache.forget(2);
        assert_eq!(cache.occur(2, t0), Occurrence::New);
    }
}
