//! Which Canaries a Deployment, ConfigMap or Secret concerns, looked up in O(1).
//!
//! Every change of a watched Deployment (its status moves several times per release, for
//! targets and primaries alike) asks which Canaries to wake. Scanning every Canary for that
//! made each event cost O(canaries): 10,000 canaries times their Deployments' events. The index
//! is kept up to date from the Canary watch's own events, so it never lags the cache by more
//! than the event being applied.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;

use crate::crd::Canary;

/// What a Canary is looked up by: namespace, kind and name of an object it uses. The
/// target is indexed as `Deployment` under its own name; its primary (`<name>-primary`) is
/// found through it.
type Key = (String, &'static str, String);

#[derive(Default, Debug)]
struct Index {
    /// Canary names (per namespace, in the key) using each object.
    users: HashMap<Key, BTreeSet<String>>,
    /// The keys each Canary (namespace, name) is indexed under, to remove it again.
    keys: HashMap<(String, String), Vec<Key>>,
}

impl Index {
    fn insert(&mut self, canary: &Canary) {
        let Some(id) = id(canary) else { return };
        self.remove(&id);
        let keys = keys_of(canary, &id.0);
        for key in &keys {
            self.users.entry(key.clone()).or_default().insert(id.1.clone());
        }
        self.keys.insert(id, keys);
    }

    fn remove(&mut self, id: &(String, String)) {
        for key in self.keys.remove(id).unwrap_or_default() {
            if let Some(names) = self.users.get_mut(&key) {
                names.remove(&id.1);
                if names.is_empty() {
                    self.users.remove(&key);
                }
            }
        }
    }
}

fn id(canary: &Canary) -> Option<(String, String)> {
    Some((canary.metadata.namespace.clone()?, canary.metadata.name.clone()?))
}

/// The kinds tracked configs are recorded under in `status.trackedConfigs` (`Kind/name`).
const CONFIG_KINDS: [&str; 2] = ["ConfigMap", "Secret"];

fn keys_of(canary: &Canary, namespace: &str) -> Vec<Key> {
    let mut keys = vec![(namespace.to_string(), "Deployment", canary.spec.target_ref.name.clone())];
    let tracked = canary.status.as_ref().and_then(|s| s.tracked_configs.as_ref());
    for config in tracked.into_iter().flat_map(|t| t.keys()) {
        let Some((kind, name)) = config.split_once('/') else { continue };
        if let Some(kind) = CONFIG_KINDS.iter().find(|k| **k == kind) {
            keys.push((namespace.to_string(), kind, name.to_string()));
        }
    }
    keys
}

#[derive(Default, Debug)]
struct State {
    live: Index,
    /// The index being rebuilt during a (re)list, swapped in when the list is done.
    relisting: Option<Index>,
}

/// The shared index; clones see the same state.
#[derive(Clone, Default, Debug)]
pub struct CanaryIndex {
    state: Arc<RwLock<State>>,
}

impl CanaryIndex {
    /// Applies one event of the Canary watch, as the reflector applies it to the store.
    pub fn apply(&self, event: &watcher::Event<Canary>) {
        let Ok(mut state) = self.state.write() else { return };
        match event {
            watcher::Event::Apply(canary) => state.live.insert(canary),
            watcher::Event::Delete(canary) => {
                if let Some(id) = id(canary) {
                    state.live.remove(&id);
                }
            }
            watcher::Event::Init => state.relisting = Some(Index::default()),
            watcher::Event::InitApply(canary) => {
                state.relisting.get_or_insert_with(Index::default).insert(canary);
            }
            watcher::Event::InitDone => {
                if let Some(index) = state.relisting.take() {
                    state.live = index;
                }
            }
        }
    }

    /// The Canaries whose target, primary or tracked configs include `kind/name` in
    /// `namespace`: what a change of that object must reconcile.
    pub fn canaries_using(&self, namespace: &str, kind: &str, name: &str) -> Vec<ObjectRef<Canary>> {
        let key_kind = match kind {
            "Deployment" => "Deployment",
            _ => match CONFIG_KINDS.into_iter().find(|k| *k == kind) {
                Some(config_kind) => config_kind,
                None => return Vec::new(),
            },
        };
        let Ok(state) = self.state.read() else { return Vec::new() };
        let users = |object: &str| {
            state.live.users.get(&(namespace.to_string(), key_kind, object.to_string())).into_iter().flatten()
        };
        // A primary `<target>-primary` is found through its target.
        let primary_of = name.strip_suffix("-primary").filter(|_| key_kind == "Deployment");
        let names: BTreeSet<&String> = users(name).chain(primary_of.into_iter().flat_map(users)).collect();
        names.into_iter().map(|n| ObjectRef::new(n).within(namespace)).collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn canary(namespace: &str, name: &str, target: &str, configs: &[&str]) -> Canary {
        let tracked: serde_json::Map<String, serde_json::Value> =
            configs.iter().map(|c| (c.to_string(), json!("checksum"))).collect();
        serde_json::from_value(json!({
            "apiVersion": "serin.dev/v1alpha1", "kind": "Canary",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
                "service": {"port": 80},
                "analysis": {"interval": "1m", "threshold": 1, "iterations": 1},
            },
            "status": {"trackedConfigs": tracked},
        }))
        .expect("canary")
    }

    fn names(refs: Vec<ObjectRef<Canary>>) -> Vec<String> {
        refs.into_iter().map(|r| format!("{}/{}", r.namespace.unwrap_or_default(), r.name)).collect()
    }

    #[test]
    fn looks_up_targets_primaries_and_tracked_configs() {
        let index = CanaryIndex::default();
        index.apply(&watcher::Event::Apply(canary(
            "test",
            "a",
            "podinfo",
            &["ConfigMap/settings", "Secret/creds"],
        )));
        index.apply(&watcher::Event::Apply(canary("test", "b", "podinfo", &[])));
        index.apply(&watcher::Event::Apply(canary("prod", "a", "podinfo", &[])));
        // (namespace, kind, name, canaries expected)
        let table: [(&str, &str, &str, &[&str]); 10] = [
            ("test", "Deployment", "podinfo", &["test/a", "test/b"]),
            ("test", "Deployment", "podinfo-primary", &["test/a", "test/b"]),
            ("prod", "Deployment", "podinfo", &["prod/a"]),
            ("test", "Deployment", "other", &[]),
            ("test", "Deployment", "-primary", &[]),
            ("test", "ConfigMap", "settings", &["test/a"]),
            ("test", "Secret", "creds", &["test/a"]),
            ("test", "Secret", "settings", &[]),
            ("test", "ConfigMap", "podinfo", &[]),
            ("other", "ConfigMap", "settings", &[]),
        ];
        for (namespace, kind, name, expected) in table {
            assert_eq!(
                names(index.canaries_using(namespace, kind, name)),
                expected,
                "{namespace} {kind}/{name}"
            );
        }
    }

    #[test]
    fn updates_and_deletes_move_and_drop_entries() {
        let index = CanaryIndex::default();
        index.apply(&watcher::Event::Apply(canary("test", "a", "podinfo", &["ConfigMap/one"])));
        index.apply(&watcher::Event::Apply(canary("test", "a", "web", &["ConfigMap/two"])));
        assert!(index.canaries_using("test", "Deployment", "podinfo").is_empty(), "old target gone");
        assert!(index.canaries_using("test", "ConfigMap", "one").is_empty(), "old config gone");
        assert_eq!(names(index.canaries_using("test", "Deployment", "web-primary")), ["test/a"]);
        assert_eq!(names(index.canaries_using("test", "ConfigMap", "two")), ["test/a"]);
        index.apply(&watcher::Event::Delete(canary("test", "a", "web", &[])));
        assert!(index.canaries_using("test", "Deployment", "web").is_empty());
        assert!(index.canaries_using("test", "ConfigMap", "two").is_empty());
        let state = index.state.read().expect("lock");
        assert!(state.live.users.is_empty() && state.live.keys.is_empty(), "nothing left behind");
    }

    #[test]
    fn a_relist_replaces_the_index_when_it_is_done() {
        let index = CanaryIndex::default();
        index.apply(&watcher::Event::Apply(canary("test", "gone", "old", &[])));
        index.apply(&watcher::Event::Init);
        index.apply(&watcher::Event::InitApply(canary("test", "kept", "new", &[])));
        // Until the list is done, the old index answers.
        assert_eq!(names(index.canaries_using("test", "Deployment", "old")), ["test/gone"]);
        assert!(index.canaries_using("test", "Deployment", "new").is_empty());
        index.apply(&watcher::Event::InitDone);
        assert!(index.canaries_using("test", "Deployment", "old").is_empty(), "deleted while not watching");
        assert_eq!(names(index.canaries_using("test", "Deployment", "new")), ["test/kept"]);
    }
}
