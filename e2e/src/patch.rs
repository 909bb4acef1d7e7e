//! Patch types: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and an approximation of
//! Kubernetes strategic merge patch for built-in kinds.
//!
//! Strategic merge approximation: maps merge recursively and `null` deletes a key; lists whose
//! field name has a known Kubernetes merge key (see [`builtin_merge_key`]) merge item by item on
//! that key, `$patch: delete` in an item removes it, `$patch: replace` replaces a map;
//! `metadata.finalizers` merges as a set and `$deleteFromPrimitiveList/<field>` removes values;
//! `$setElementOrder` and `$retainKeys` are ignored (item order is: existing items, then new ones).
//! All other lists are replaced.

use serde_json::{Map, Value};

use crate::error::ApiError;

/// The patch flavours a PATCH request can carry, chosen by its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// `application/merge-patch+json`.
    Merge,
    /// `application/json-patch+json`.
    Json,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/apply-patch+yaml` (server-side apply).
    Apply,
}

impl PatchKind {
    /// Parses a `Content-Type` header value.
    pub fn from_content_type(ct: &str) -> Result<Self, ApiError> {
        let base = ct.split(';').next().unwrap_or_default().trim();
        match base {
            "application/merge-patch+json" => Ok(PatchKind::Merge),
            "application/json-patch+json" => Ok(PatchKind::Json),
            "application/strategic-merge-patch+json" => Ok(PatchKind::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Ok(PatchKind::Apply),
            other => Err(ApiError::UnsupportedMediaType(format!(
                "the body of the request was in an unknown format - accepted media types include: \
                 application/json-patch+json, application/merge-patch+json, \
                 application/apply-patch+yaml; got {other:?}"
            ))),
        }
    }
}

/// Merge key of a list field in built-in kinds, by field name (`ports` depends on the items).
pub fn builtin_merge_key(field: &str, items: &[Value]) -> Option<&'static str> {
    match field {
        "containers" | "initContainers" | "ephemeralContainers" | "volumes" | "env" | "imagePullSecrets" => {
            Some("name")
        }
        "volumeMounts" => Some("mountPath"),
        "conditions" => Some("type"),
        "ownerReferences" => Some("uid"),
        "hostAliases" => Some("ip"),
        "ports" => {
            if items.iter().any(|i| i.get("containerPort").is_some()) {
                Some("containerPort")
            } else {
                Some("port")
            }
        }
        _ => None,
    }
}

/// Applies a JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) -> Result<(), ApiError> {
    if !patch.is_object() {
        return Err(ApiError::BadRequest("merge patch must be a JSON object".into()));
    }
    json_patch::merge(target, patch);
    Ok(())
}

/// Applies a JSON patch (list of operations), atomically.
///
/// As in the apiserver's JSON patch library, a `test` of `null` passes when the path is absent
/// (kube-runtime's `finalizer` helper relies on this to add the first finalizer).
pub fn json_patch(target: &mut Value, patch: &Value) -> Result<(), ApiError> {
    let ops: json_patch::Patch = serde_json::from_value(patch.clone())
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON patch: {e}")))?;
    let mut doc = target.clone();
    for op in ops.0 {
        if let json_patch::PatchOperation::Test(t) = &op
            && t.value.is_null()
            && doc.pointer(t.path.as_str()).is_none()
        {
            continue;
        }
        json_patch::patch(&mut doc, std::slice::from_ref(&op))
            .map_err(|e| ApiError::Invalid { message: e.to_string(), causes: Vec::new() })?;
    }
    *target = doc;
    Ok(())
}

/// Applies a strategic merge patch (approximation documented at module level).
pub fn strategic_merge_patch(target: &mut Value, patch: &Value) -> Result<(), ApiError> {
    let Some(p) = patch.as_object() else {
        return Err(ApiError::BadRequest("strategic merge patch must be a JSON object".into()));
    };
    smp_value(target, p);
    Ok(())
}

/// Removes `$`-directives and `null`s (recursively) from a value about to be inserted.
fn clean(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, v)| !k.starts_with('$') && !v.is_null())
                .map(|(k, v)| (k.clone(), clean(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(clean).collect()),
        other => other.clone(),
    }
}

/// Strategic merge of `patch` (an object) into `target`.
fn smp_value(target: &mut Value, patch: &Map<String, Value>) {
    if patch.get("$patch").and_then(Value::as_str) == Some("replace") {
        *target = clean(&Value::Object(patch.clone()));
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Some(t) = target.as_object_mut() else { return };
    for (key, pv) in patch {
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(items)), Some(remove)) = (t.get_mut(field), pv.as_array()) {
                items.retain(|i| !remove.contains(i));
            }
            continue;
        }
        if key.starts_with('$') {
            continue;
        }
        if pv.is_null() {
            t.remove(key);
            continue;
        }
        match (t.get_mut(key), pv) {
            (Some(tv @ Value::Object(_)), Value::Object(pm)) => smp_value(tv, pm),
            (Some(Value::Array(items)), Value::Array(patch_items)) => {
                if let Some(mk) = builtin_merge_key(key, patch_items) {
                    merge_keyed(items, patch_items, mk);
                } else if key == "finalizers" {
                    for i in patch_items {
                        if !items.contains(i) {
                            items.push(i.clone());
                        }
                    }
                } else {
                    *items = patch_items.iter().map(clean).collect();
                }
            }
            _ => {
                let filtered = match pv {
                    Value::Array(a) => Value::Array(
                        a.iter()
                            .filter(|i| i.get("$patch").and_then(Value::as_str) != Some("delete"))
                            .map(clean)
                            .collect(),
                    ),
                    other => clean(other),
                };
                t.insert(key.clone(), filtered);
            }
        }
    }
}

/// Merges list items by `key`; items carrying `$patch: delete` are removed.
fn merge_keyed(items: &mut Vec<Value>, patch_items: &[Value], key: &str) {
    for pi in patch_items {
        let Some(pm) = pi.as_object() else { continue };
        let Some(kv) = pm.get(key) else { continue };
        let pos = items.iter().position(|i| i.get(key) == Some(kv));
        if pm.get("$patch").and_then(Value::as_str) == Some("delete") {
            if let Some(p) = pos {
                items.remove(p);
            }
            continue;
        }
        match pos {
            Some(p) => {
                if let Some(item) = items.get_mut(p) {
                    smp_value(item, pm);
                }
            }
            None => items.push(clean(pi)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_merges_containers_by_name() {
        let mut t = json!({"spec": {"containers": [
            {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
            {"name": "b", "image": "b:1"}
        ]}});
        let p = json!({"spec": {"containers": [
            {"name": "a", "image": "a:2", "env": [{"name": "Y", "value": "2"}]},
            {"name": "b", "$patch": "delete"},
            {"name": "c", "image": "c:1"}
        ]}});
        assert!(strategic_merge_patch(&mut t, &p).is_ok());
        assert_eq!(
            t,
            json!({"spec": {"containers": [
                {"name": "a", "image": "a:2", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]},
                {"name": "c", "image": "c:1"}
            ]}})
        );
    }
}

#[cfg(test)]
mod json_patch_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn test_null_passes_on_missing_path() {
        let mut doc = json!({"metadata": {"name": "x"}});
        let p = json!([{"op": "test", "path": "/metadata/finalizers", "value": null},
                       {"op": "add", "path": "/metadata/finalizers", "value": ["a"]}]);
        let r = json_patch(&mut doc, &p);
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(doc["metadata"]["finalizers"], json!(["a"]));
    }
}
