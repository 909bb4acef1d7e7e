//! Removal and its cascades: `ownerReferences` garbage collection, namespace contents and the
//! instances of a deleted CustomResourceDefinition.
//!
//! Collection is synchronous (it happens inside the delete that removed the owner): a dependent
//! is deleted once none of the objects named by its `ownerReferences` (by uid) exists.
//! Dependents with finalizers become terminating and stay until their finalizers are removed.

use serde_json::Value;

use crate::{
    ops::now,
    resource::from_crd,
    store::{Key, Store},
};

/// Removes `key` (recording a DELETED change with `last` at `rv`) and runs the cascades.
pub fn remove(store: &mut Store, key: &Key, last: Value, rv: u64) {
    store.remove(key, last.clone(), rv);
    if key.group == "apiextensions.k8s.io" && key.plural == "customresourcedefinitions" {
        store.registry.unregister_crd(&last);
        if let Some(info) = from_crd(&last).first() {
            let keys: Vec<Key> = store
                .all()
                .filter(|(k, _)| k.group == info.group && k.plural == info.plural)
                .map(|(k, _)| k.clone())
                .collect();
            for k in keys {
                force_remove(store, &k);
            }
        }
    }
    if key.group.is_empty() && key.plural == "namespaces" {
        let keys: Vec<Key> =
            store.all().filter(|(k, _)| k.namespace == key.name).map(|(k, _)| k.clone()).collect();
        for k in keys {
            force_remove(store, &k);
        }
    }
    if let Some(uid) = last["metadata"]["uid"].as_str() {
        collect_dependents(store, uid);
    }
}

/// Removes an object regardless of finalizers (namespace and CRD teardown).
fn force_remove(store: &mut Store, key: &Key) {
    if let Some(mut obj) = store.get(key).cloned() {
        let rv = store.next_rv();
        obj["metadata"]["resourceVersion"] = rv.to_string().into();
        remove(store, key, obj, rv);
    }
}

fn uid_exists(store: &Store, uid: &str) -> bool {
    store.all().any(|(_, o)| o["metadata"]["uid"].as_str() == Some(uid))
}

fn owner_uids(obj: &Value) -> Vec<String> {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .map(|refs| refs.iter().filter_map(|r| r["uid"].as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// Deletes the dependents of a removed owner whose owners are now all gone.
fn collect_dependents(store: &mut Store, owner_uid: &str) {
    let dependents: Vec<Key> = store
        .all()
        .filter(|(_, o)| owner_uids(o).iter().any(|u| u == owner_uid))
        .map(|(k, _)| k.clone())
        .collect();
    for key in dependents {
        let Some(obj) = store.get(&key).cloned() else { continue };
        if owner_uids(&obj).iter().any(|u| uid_exists(store, u)) {
            continue;
        }
        delete_key(store, &key, obj);
    }
}

/// Deletes one object as a background-propagation delete would.
fn delete_key(store: &mut Store, key: &Key, mut obj: Value) {
    let has_finalizers = obj["metadata"]["finalizers"].as_array().is_some_and(|f| !f.is_empty());
    if has_finalizers && !obj["metadata"]["deletionTimestamp"].is_null() {
        return;
    }
    let rv = store.next_rv();
    obj["metadata"]["resourceVersion"] = rv.to_string().into();
    if has_finalizers {
        let g = obj["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
        obj["metadata"]["deletionTimestamp"] = now().into();
        obj["metadata"]["deletionGracePeriodSeconds"] = 0.into();
        obj["metadata"]["generation"] = g.into();
        store.put(key.clone(), obj, rv);
        return;
    }
    remove(store, key, obj, rv);
}

/// Orphan propagation: removes the owner reference from every dependent of `owner_uid`.
pub fn orphan_dependents(store: &mut Store, owner_uid: &str) {
    let dependents: Vec<Key> = store
        .all()
        .filter(|(_, o)| owner_uids(o).iter().any(|u| u == owner_uid))
        .map(|(k, _)| k.clone())
        .collect();
    for key in dependents {
        let Some(mut obj) = store.get(&key).cloned() else { continue };
        if let Some(refs) = obj["metadata"]["ownerReferences"].as_array_mut() {
            refs.retain(|r| r["uid"].as_str() != Some(owner_uid));
            if refs.is_empty()
                && let Some(m) = obj["metadata"].as_object_mut()
            {
                m.remove("ownerReferences");
            }
        }
        let rv = store.next_rv();
        obj["metadata"]["resourceVersion"] = rv.to_string().into();
        store.put(key, obj, rv);
    }
}
