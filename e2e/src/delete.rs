//! The delete verbs: finalizers and `deletionTimestamp`, preconditions, propagation policy and
//! deletecollection. Removal cascades live in [`crate::gc`].

use serde_json::{Value, json};

use crate::{
    error::ApiError,
    gc,
    ops::{Target, commit, conflict, meta, meta_mut, now, present, rv_of},
    selector::Selectors,
    store::Store,
};

/// Options of a delete request (body `DeleteOptions` plus query parameters).
#[derive(Debug, Clone, Default)]
pub struct DeleteParams {
    /// `propagationPolicy`: `Orphan`, `Background` or `Foreground` (treated as Background).
    pub propagation: Option<String>,
    /// `preconditions.resourceVersion`.
    pub precondition_rv: Option<String>,
    /// `preconditions.uid`.
    pub precondition_uid: Option<String>,
    /// `dryRun=All`.
    pub dry_run: bool,
}

/// `delete`: marks objects with finalizers as terminating, removes the others and collects
/// their dependents. Returns the object's last state.
pub fn delete(store: &mut Store, t: &Target, name: &str, d: &DeleteParams) -> Result<Value, ApiError> {
    if t.subresource.is_some() {
        return Err(ApiError::MethodNotAllowed("delete is not supported on subresources".into()));
    }
    let key = t.key(name);
    let old = store.get(&key).cloned().ok_or_else(|| t.not_found(name))?;
    if d.precondition_rv.as_deref().is_some_and(|rv| rv != rv_of(&old))
        || d.precondition_uid.as_deref().is_some_and(|u| Some(u) != meta(&old)["uid"].as_str())
    {
        return Err(conflict(&t.info, name));
    }
    if d.dry_run {
        return Ok(present(&t.info, &old));
    }
    let has_finalizers = meta(&old)["finalizers"].as_array().is_some_and(|f| !f.is_empty());
    if has_finalizers {
        if !meta(&old)["deletionTimestamp"].is_null() {
            return Ok(present(&t.info, &old));
        }
        let mut new = old.clone();
        let g = meta(&old)["generation"].as_i64().unwrap_or(0) + 1;
        if let Some(m) = meta_mut(&mut new) {
            m.insert("deletionTimestamp".into(), now().into());
            m.insert("deletionGracePeriodSeconds".into(), 0.into());
            m.insert("generation".into(), g.into());
        }
        return commit(store, t, key, Some(&old), present(&t.info, &new), false);
    }
    if d.propagation.as_deref() == Some("Orphan") {
        gc::orphan_dependents(store, meta(&old)["uid"].as_str().unwrap_or_default());
    }
    let rv = store.next_rv();
    let mut last = present(&t.info, &old);
    if let Some(m) = meta_mut(&mut last) {
        m.insert("resourceVersion".into(), rv.to_string().into());
    }
    gc::remove(store, &key, last.clone(), rv);
    Ok(last)
}

/// `deletecollection`: deletes every matching object; returns them as a list.
pub fn delete_collection(
    store: &mut Store,
    t: &Target,
    sel: &Selectors,
    d: &DeleteParams,
) -> Result<Value, ApiError> {
    let ns = if t.info.namespaced { t.namespace.as_deref() } else { None };
    let names: Vec<String> = store
        .list(&t.info.group, &t.info.plural, ns)
        .into_iter()
        .filter(|o| sel.matches(o))
        .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    let mut items = Vec::new();
    for n in names {
        items.push(delete(store, t, &n, d)?);
    }
    Ok(json!({
        "kind": format!("{}List", t.info.kind),
        "apiVersion": t.info.api_version(),
        "metadata": { "resourceVersion": store.current_rv().to_string() },
        "items": items,
    }))
}
