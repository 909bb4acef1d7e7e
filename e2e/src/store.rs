//! The in-memory object tracker: objects, the global resourceVersion, and the bounded event
//! history that watches replay from.
//!
//! Objects are stored once per (group, resource, namespace, name), independent of the API
//! version (all versions of a CRD see the same object; `apiVersion` is rewritten on read, no
//! conversion is done).

use std::{
    collections::{BTreeMap, VecDeque},
    sync::Arc,
};

use serde_json::Value;
use tokio::sync::broadcast;

use crate::resource::Registry;

/// Storage key of one object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    /// API group.
    pub group: String,
    /// Plural resource.
    pub plural: String,
    /// Namespace, empty for cluster-scoped objects.
    pub namespace: String,
    /// Object name.
    pub name: String,
}

/// Watch event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Object created.
    Added,
    /// Object changed.
    Modified,
    /// Object removed.
    Deleted,
}

impl EventType {
    /// Wire name (`ADDED`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as recorded in the history and broadcast to watches.
#[derive(Debug, Clone)]
pub struct Change {
    /// resourceVersion of the change.
    pub rv: u64,
    /// Group of the object.
    pub group: String,
    /// Plural resource of the object.
    pub plural: String,
    /// What happened.
    pub kind: EventType,
    /// The object after the change (for deletions: the last state).
    pub object: Arc<Value>,
    /// The object before the change (modifications only), for selector transitions.
    pub old: Option<Arc<Value>>,
}

/// Tunables of the tracker.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// How many changes the history keeps; watches from older versions get 410 Gone.
    pub history_limit: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig { history_limit: 10_000 }
    }
}

/// The tracker itself; callers hold it under a mutex.
#[derive(Debug)]
pub struct Store {
    objects: BTreeMap<Key, Value>,
    rv: u64,
    history: VecDeque<Arc<Change>>,
    history_limit: usize,
    compacted: u64,
    tx: broadcast::Sender<Arc<Change>>,
    /// Served resources.
    pub registry: Registry,
}

impl Store {
    /// An empty store.
    pub fn new(config: &StoreConfig) -> Self {
        let (tx, _) = broadcast::channel(config.history_limit.max(1024));
        Store {
            objects: BTreeMap::new(),
            rv: 0,
            history: VecDeque::new(),
            history_limit: config.history_limit.max(1),
            compacted: 0,
            tx,
            registry: Registry::default(),
        }
    }

    /// The latest resourceVersion.
    pub fn current_rv(&self) -> u64 {
        self.rv
    }

    /// The highest resourceVersion no longer in the history.
    pub fn compacted_rv(&self) -> u64 {
        self.compacted
    }

    /// Drops the whole history, so watches from any earlier version get 410 Gone.
    pub fn compact(&mut self) {
        self.history.clear();
        self.compacted = self.rv;
    }

    /// Allocates the next resourceVersion.
    pub fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    /// Subscribes to live changes (to be called under the same lock as reading the history).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.tx.subscribe()
    }

    /// Changes with resourceVersion greater than `rv`, oldest first.
    pub fn history_after(&self, rv: u64) -> Vec<Arc<Change>> {
        self.history.iter().filter(|c| c.rv > rv).cloned().collect()
    }

    /// One object.
    pub fn get(&self, key: &Key) -> Option<&Value> {
        self.objects.get(key)
    }

    /// Objects of a resource, optionally restricted to a namespace, ordered by namespace and name.
    pub fn list(&self, group: &str, plural: &str, namespace: Option<&str>) -> Vec<&Value> {
        self.objects
            .iter()
            .filter(|(k, _)| k.group == group && k.plural == plural)
            .filter(|(k, _)| namespace.is_none_or(|ns| k.namespace == ns))
            .map(|(_, v)| v)
            .collect()
    }

    /// Every stored object with its key.
    pub fn all(&self) -> impl Iterator<Item = (&Key, &Value)> {
        self.objects.iter()
    }

    /// Stores `obj` (whose `metadata.resourceVersion` the caller set to `rv`) and records the change.
    pub fn put(&mut self, key: Key, obj: Value, rv: u64) {
        let old = self.objects.insert(key.clone(), obj.clone());
        let kind = if old.is_some() { EventType::Modified } else { EventType::Added };
        self.record(Change {
            rv,
            group: key.group,
            plural: key.plural,
            kind,
            object: Arc::new(obj),
            old: old.map(Arc::new),
        });
    }

    /// Removes an object; `last` is its final state (with the deletion's resourceVersion `rv`).
    pub fn remove(&mut self, key: &Key, last: Value, rv: u64) {
        self.objects.remove(key);
        self.record(Change {
            rv,
            group: key.group.clone(),
            plural: key.plural.clone(),
            kind: EventType::Deleted,
            object: Arc::new(last),
            old: None,
        });
    }

    fn record(&mut self, change: Change) {
        let change = Arc::new(change);
        self.history.push_back(change.clone());
        while self.history.len() > self.history_limit {
            if let Some(c) = self.history.pop_front() {
                self.compacted = c.rv;
            }
        }
        // No receivers is fine.
        let _ = self.tx.send(change);
    }
}
