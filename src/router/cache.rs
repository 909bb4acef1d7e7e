//! Watch-backed caches of routing objects, so reading the split in force every tick costs the
//! API server nothing.
//!
//! A kind's reflector (all namespaces) starts the first time a live read of that kind
//! succeeds — kinds whose CRDs are not installed never get a failing watch — and serves reads
//! once its first list is in. Until then, and for anything the cache cannot vouch for, reads go
//! to the API:
//! - an object the cache does not hold (it may have just been created);
//! - an object Serin wrote whose write the cache has not seen yet: every apply records the
//!   `resourceVersion` it produced, and the cached copy counts only once it carries that
//!   version, or the version a later live read returned (resourceVersions are compared for
//!   equality only, as the API allows).
//!
//! A watch that keeps failing (e.g. no `list`/`watch` permission) only means the cache never
//! becomes ready: reads stay live.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use futures::StreamExt;
use kube::api::{Api, ApiResource};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};

use super::live::LiveObject;
use super::object::RoutingKind;

/// Where a kind's cache stands.
enum Entry {
    /// The reflector runs; its first list is not in yet.
    Starting,
    /// Serving reads; the kind's `ApiResource`, built once, keys the store's lookups.
    Ready(Store<LiveObject>, ApiResource),
}

/// Identifies an object of a routing kind.
type Key = (RoutingKind, String, String);

fn key(kind: RoutingKind, namespace: &str, name: &str) -> Key {
    (kind, namespace.to_string(), name.to_string())
}

/// Caches of every routing kind read so far; shared by all routers of one controller.
#[derive(Default)]
pub struct RoutingCache {
    kinds: Mutex<HashMap<RoutingKind, Entry>>,
    /// resourceVersion of each object as Serin's last apply left it.
    written: Mutex<HashMap<Key, String>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl RoutingCache {
    /// An empty cache; reflectors start on demand.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The cached object, when the cache can vouch for it; `None` means "ask the API".
    pub fn get(&self, kind: RoutingKind, namespace: &str, name: &str) -> Option<Arc<LiveObject>> {
        let (store, reference) = match lock(&self.kinds).get(&kind) {
            Some(Entry::Ready(store, resource)) => {
                (store.clone(), ObjectRef::new_with(name, resource.clone()).within(namespace))
            }
            _ => return None,
        };
        let object = store.get(&reference)?;
        let key = key(kind, namespace, name);
        let mut written = lock(&self.written);
        match written.get(&key) {
            Some(version) if object.resource_version().as_ref() != Some(version) => None,
            Some(_) => {
                written.remove(&key);
                Some(object)
            }
            None => Some(object),
        }
    }

    /// Records the resourceVersion Serin's write produced, so older cached copies are not used.
    pub fn wrote(&self, kind: RoutingKind, namespace: &str, name: &str, resource_version: Option<String>) {
        let key = key(kind, namespace, name);
        let mut written = lock(&self.written);
        match resource_version {
            Some(version) => written.insert(key, version),
            None => written.remove(&key),
        };
    }

    /// After a live read: an object still waiting for its write to show in the watch now waits
    /// for the version just read instead (someone may have changed it after Serin did; the
    /// watch will never show Serin's version then).
    pub fn read_live(
        &self,
        kind: RoutingKind,
        namespace: &str,
        name: &str,
        resource_version: Option<String>,
    ) {
        let key = key(kind, namespace, name);
        let mut written = lock(&self.written);
        if let std::collections::hash_map::Entry::Occupied(mut waiting) = written.entry(key) {
            match resource_version {
                Some(version) => {
                    waiting.insert(version);
                }
                None => {
                    waiting.remove();
                }
            }
        }
    }

    /// Starts the reflector of `kind` unless it runs (call after a live read of it succeeded).
    pub fn start(self: &Arc<Self>, client: &Client, kind: RoutingKind) {
        let mut kinds = lock(&self.kinds);
        if kinds.contains_key(&kind) {
            return;
        }
        kinds.insert(kind, Entry::Starting);
        drop(kinds);
        let api: Api<LiveObject> = Api::all_with(client.clone(), &kind.api_resource());
        let writer = reflector::store::Writer::new(kind.api_resource());
        let reader = writer.as_reader();
        // (`LiveObject` leaves managedFields out: never read here, and most of an object's size.)
        let events = watcher(api, watcher::Config::default());
        let stream = reflector::reflector(writer, events).default_backoff().touched_objects();
        let driver = tokio::spawn(async move {
            futures::pin_mut!(stream);
            while let Some(event) = stream.next().await {
                if let Err(e) = event {
                    tracing::debug!(kind = kind.kind, error = %e, "routing cache watch failed; retrying");
                }
            }
        });
        let this = Arc::downgrade(self);
        let ready = tokio::spawn(async move {
            if reader.wait_until_ready().await.is_ok()
                && let Some(cache) = this.upgrade()
            {
                tracing::debug!(kind = kind.kind, "routing cache ready");
                lock(&cache.kinds).insert(kind, Entry::Ready(reader, kind.api_resource()));
            }
        });
        lock(&self.tasks).extend([driver, ready]);
    }
}

impl Drop for RoutingCache {
    fn drop(&mut self) {
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
    }
}
