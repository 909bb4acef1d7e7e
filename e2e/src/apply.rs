//! Field ownership (`metadata.managedFields`) and server-side apply.
//!
//! Field sets are sets of paths. Maps are granular; lists are granular when they are keyed
//! (CRD `x-kubernetes-list-type: map` with `x-kubernetes-list-map-keys`, or the built-in merge
//! keys of [`crate::patch::builtin_merge_key`]) or sets (`x-kubernetes-list-type: set`,
//! `metadata.finalizers`); all other lists are atomic. Paths are serialised as `FieldsV1`
//! (`f:`, `k:`, `v:`, `.`) in `managedFields`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use crate::{
    error::{ApiError, Cause},
    patch::builtin_merge_key,
};

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum PathElement {
    /// A map field.
    Field(String),
    /// A keyed list item, identified by the JSON of its key fields.
    Key(String),
    /// A set list element, identified by its JSON value.
    Value(String),
}

/// A path from the object root.
pub type FieldPath = Vec<PathElement>;
/// A set of owned paths.
pub type FieldSet = BTreeSet<FieldPath>;

/// How a list is merged and owned.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ListKind {
    Atomic,
    Map(Vec<String>),
    Set,
}

/// Where we are in the object, to decide list semantics.
#[derive(Debug, Clone, Copy)]
struct Ctx<'a> {
    /// Schema node of a CRD kind, if any.
    schema: Option<&'a Value>,
    /// Use the built-in merge-key table (built-in kinds, and `metadata` of every kind).
    builtin: bool,
}

impl<'a> Ctx<'a> {
    fn field(&self, name: &str) -> Ctx<'a> {
        let schema =
            self.schema.and_then(|s| s["properties"].get(name).or_else(|| s.get("additionalProperties")));
        Ctx { schema: schema.filter(|s| s.is_object()), builtin: self.builtin || name == "metadata" }
    }

    fn items(&self) -> Ctx<'a> {
        Ctx { schema: self.schema.and_then(|s| s.get("items")), builtin: self.builtin }
    }

    fn list_kind(&self, field: &str, items: &[Value]) -> ListKind {
        if let Some(s) = self.schema.filter(|_| !self.builtin) {
            return match s["x-kubernetes-list-type"].as_str() {
                Some("map") => ListKind::Map(
                    s["x-kubernetes-list-map-keys"]
                        .as_array()
                        .map(|a| a.iter().filter_map(|k| k.as_str().map(str::to_string)).collect())
                        .unwrap_or_default(),
                ),
                Some("set") => ListKind::Set,
                _ => ListKind::Atomic,
            };
        }
        if !self.builtin {
            return ListKind::Atomic;
        }
        if field == "finalizers" {
            return ListKind::Set;
        }
        builtin_merge_key(field, items).map_or(ListKind::Atomic, |k| ListKind::Map(vec![k.to_string()]))
    }
}

/// Canonical JSON of an item's key fields.
fn item_key(item: &Value, keys: &[String]) -> Option<String> {
    let mut m = Map::new();
    for k in keys {
        m.insert(k.clone(), item.get(k)?.clone());
    }
    Some(Value::Object(m).to_string())
}

/// Top-level fields that are never owned.
fn tracked_top(key: &str) -> bool {
    !matches!(key, "apiVersion" | "kind")
}

/// Metadata fields that are owned; the rest is server-managed identity.
fn tracked_meta(key: &str) -> bool {
    matches!(key, "labels" | "annotations" | "finalizers" | "ownerReferences")
}

/// The fields present in an object.
fn field_set(obj: &Value, schema: Option<&Value>, builtin: bool) -> FieldSet {
    let mut out = FieldSet::new();
    let ctx = Ctx { schema, builtin };
    if let Some(m) = obj.as_object() {
        for (k, v) in m.iter().filter(|(k, _)| tracked_top(k)) {
            let c = ctx.field(k);
            if k == "metadata" {
                if let Some(meta) = v.as_object() {
                    for (mk, mv) in meta.iter().filter(|(mk, _)| tracked_meta(mk)) {
                        collect(
                            mv,
                            mk,
                            &mut vec![PathElement::Field(k.clone()), PathElement::Field(mk.clone())],
                            c.field(mk),
                            &mut out,
                        );
                    }
                }
            } else {
                collect(v, k, &mut vec![PathElement::Field(k.clone())], c, &mut out);
            }
        }
    }
    out
}

/// Adds the paths of `v` (found at `path`, under field name `name`) to `out`.
fn collect(v: &Value, name: &str, path: &mut FieldPath, ctx: Ctx<'_>, out: &mut FieldSet) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                path.push(PathElement::Field(k.clone()));
                collect(child, k, path, ctx.field(k), out);
                path.pop();
            }
        }
        Value::Array(items) => match ctx.list_kind(name, items) {
            ListKind::Atomic => {
                out.insert(path.clone());
            }
            ListKind::Set => {
                for i in items {
                    path.push(PathElement::Value(i.to_string()));
                    out.insert(path.clone());
                    path.pop();
                }
            }
            ListKind::Map(keys) => {
                let ictx = ctx.items();
                for i in items {
                    let Some(k) = item_key(i, &keys) else { continue };
                    path.push(PathElement::Key(k));
                    out.insert(path.clone());
                    if let Some(m) = i.as_object() {
                        for (f, fv) in m {
                            path.push(PathElement::Field(f.clone()));
                            collect(fv, f, path, ictx.field(f), out);
                            path.pop();
                        }
                    }
                    path.pop();
                }
            }
        },
        _ => {
            out.insert(path.clone());
        }
    }
}

/// The value at a path, if present.
fn get_path<'v>(obj: &'v Value, path: &[PathElement]) -> Option<&'v Value> {
    let mut cur = obj;
    for el in path {
        cur = match el {
            PathElement::Field(f) => cur.get(f)?,
            PathElement::Key(k) => {
                let key: Map<String, Value> = serde_json::from_str(k).ok()?;
                cur.as_array()?.iter().find(|i| key.iter().all(|(kk, kv)| i.get(kk) == Some(kv)))?
            }
            PathElement::Value(v) => {
                let want: Value = serde_json::from_str(v).ok()?;
                cur.as_array()?.iter().find(|i| **i == want)?
            }
        };
    }
    Some(cur)
}

/// Removes the value at a path, if present.
fn remove_path(obj: &mut Value, path: &[PathElement]) {
    let Some((last, parent_path)) = path.split_last() else { return };
    let mut cur = obj;
    for el in parent_path {
        let next = match el {
            PathElement::Field(f) => cur.get_mut(f),
            PathElement::Key(k) => {
                let Ok(key) = serde_json::from_str::<Map<String, Value>>(k) else { return };
                cur.as_array_mut()
                    .and_then(|a| a.iter_mut().find(|i| key.iter().all(|(kk, kv)| i.get(kk) == Some(kv))))
            }
            PathElement::Value(v) => {
                let Ok(want) = serde_json::from_str::<Value>(v) else { return };
                cur.as_array_mut().and_then(|a| a.iter_mut().find(|i| **i == want))
            }
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    match last {
        PathElement::Field(f) => {
            if let Some(m) = cur.as_object_mut() {
                m.remove(f);
            }
        }
        PathElement::Key(k) => {
            if let (Ok(key), Some(a)) = (serde_json::from_str::<Map<String, Value>>(k), cur.as_array_mut()) {
                a.retain(|i| !key.iter().all(|(kk, kv)| i.get(kk) == Some(kv)));
            }
        }
        PathElement::Value(v) => {
            if let (Ok(want), Some(a)) = (serde_json::from_str::<Value>(v), cur.as_array_mut()) {
                a.retain(|i| *i != want);
            }
        }
    }
}

/// Renders a path like `.spec.containers[name="app"].image` for messages.
pub fn path_string(path: &[PathElement]) -> String {
    let mut s = String::new();
    for el in path {
        match el {
            PathElement::Field(f) => {
                s.push('.');
                s.push_str(f);
            }
            PathElement::Key(k) => {
                let parts: Vec<String> = serde_json::from_str::<Map<String, Value>>(k)
                    .map(|m| m.iter().map(|(kk, kv)| format!("{kk}={kv}")).collect())
                    .unwrap_or_else(|_| vec![k.clone()]);
                s.push('[');
                s.push_str(&parts.join(","));
                s.push(']');
            }
            PathElement::Value(v) => {
                s.push_str("[=");
                s.push_str(v);
                s.push(']');
            }
        }
    }
    s
}

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagedEntry {
    /// Manager name.
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    /// `apiVersion` the manager used.
    pub api_version: String,
    /// Timestamp of the last change of this entry's set.
    pub time: String,
    /// Empty for the main resource, `status` for the status subresource.
    pub subresource: String,
    /// Owned fields.
    pub fields: FieldSet,
}

/// Encodes a field set as `FieldsV1`.
fn encode(fields: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in fields {
        insert_path(&mut root, path);
    }
    Value::Object(root)
}

/// Adds one member path to a `FieldsV1` tree; members with children carry a `.` marker.
fn insert_path(node: &mut Map<String, Value>, path: &[PathElement]) {
    let Some((first, rest)) = path.split_first() else { return };
    let key = match first {
        PathElement::Field(f) => format!("f:{f}"),
        PathElement::Key(k) => format!("k:{k}"),
        PathElement::Value(v) => format!("v:{v}"),
    };
    let entry = node.entry(key).or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(child) = entry else { return };
    if rest.is_empty() {
        if matches!(first, PathElement::Key(_)) || !child.is_empty() {
            child.insert(".".into(), json!({}));
        }
    } else {
        let was_leaf = child.is_empty();
        insert_path(child, rest);
        if was_leaf && matches!(first, PathElement::Key(_)) {
            child.insert(".".into(), json!({}));
        }
    }
}

/// Decodes `FieldsV1` into a field set.
fn decode(v: &Value, path: &mut FieldPath, out: &mut FieldSet) {
    let Some(m) = v.as_object() else { return };
    if (m.is_empty() || m.contains_key(".")) && !path.is_empty() {
        out.insert(path.clone());
    }
    for (k, child) in m {
        let el = if let Some(f) = k.strip_prefix("f:") {
            PathElement::Field(f.into())
        } else if let Some(kk) = k.strip_prefix("k:") {
            PathElement::Key(kk.into())
        } else if let Some(vv) = k.strip_prefix("v:") {
            PathElement::Value(vv.into())
        } else {
            continue;
        };
        path.push(el);
        decode(child, path, out);
        path.pop();
    }
}

/// Parses `metadata.managedFields` of an object.
pub fn read_managed(obj: &Value) -> Vec<ManagedEntry> {
    let Some(entries) = obj["metadata"]["managedFields"].as_array() else { return Vec::new() };
    entries
        .iter()
        .filter_map(|e| {
            let mut fields = FieldSet::new();
            decode(&e["fieldsV1"], &mut Vec::new(), &mut fields);
            Some(ManagedEntry {
                manager: e["manager"].as_str()?.into(),
                operation: e["operation"].as_str().unwrap_or("Update").into(),
                api_version: e["apiVersion"].as_str().unwrap_or_default().into(),
                time: e["time"].as_str().unwrap_or_default().into(),
                subresource: e["subresource"].as_str().unwrap_or_default().into(),
                fields,
            })
        })
        .collect()
}

/// Writes entries into `metadata.managedFields` (dropping entries that own nothing).
pub fn write_managed(obj: &mut Value, entries: &[ManagedEntry]) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": encode(&e.fields),
            });
            if !e.subresource.is_empty() {
                v["subresource"] = json!(e.subresource);
            }
            v
        })
        .collect();
    if !obj["metadata"].is_object()
        && !list.is_empty()
        && let Some(o) = obj.as_object_mut()
    {
        o.insert("metadata".into(), json!({}));
    }
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}

/// Who is writing, and through which endpoint.
#[derive(Debug, Clone)]
pub struct Writer<'a> {
    /// Field manager name.
    pub manager: &'a str,
    /// `apiVersion` used.
    pub api_version: &'a str,
    /// `status` for the status subresource, else empty.
    pub subresource: &'a str,
    /// Current timestamp.
    pub now: &'a str,
    /// CRD schema, if any.
    pub schema: Option<&'a Value>,
    /// Whether the kind is built-in.
    pub builtin: bool,
}

/// Records an `Update` operation (create, update, non-apply patch): the writer takes ownership
/// of every field it changed; fields removed from the object are dropped from every manager.
pub fn record_update(old: Option<&Value>, new: &mut Value, w: &Writer<'_>) {
    let mut entries = old.map(read_managed).unwrap_or_default();
    let old_set = old.map(|o| field_set(o, w.schema, w.builtin)).unwrap_or_default();
    let new_set = field_set(new, w.schema, w.builtin);
    let changed: FieldSet = new_set
        .iter()
        .filter(|p| !old_set.contains(*p) || old.and_then(|o| get_path(o, p)) != get_path(new, p))
        .cloned()
        .collect();
    for e in &mut entries {
        e.fields.retain(|p| new_set.contains(p));
        e.fields.retain(|p| !changed.contains(p) || (e.manager == w.manager && e.operation == "Update"));
    }
    if !changed.is_empty() {
        let pos = entries.iter().position(|e| {
            e.manager == w.manager && e.operation == "Update" && e.subresource == w.subresource
        });
        match pos.and_then(|p| entries.get_mut(p)) {
            Some(e) => {
                e.fields.extend(changed);
                e.time = w.now.into();
                e.api_version = w.api_version.into();
            }
            None => entries.push(ManagedEntry {
                manager: w.manager.into(),
                operation: "Update".into(),
                api_version: w.api_version.into(),
                time: w.now.into(),
                subresource: w.subresource.into(),
                fields: changed,
            }),
        }
    }
    write_managed(new, &entries);
}

/// Removes `null`s recursively (an apply configuration never sets nulls).
fn drop_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), drop_nulls(v))).collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(drop_nulls).collect()),
        other => other.clone(),
    }
}

/// Merges an apply configuration into the live object, honouring list semantics.
fn merge_applied(live: &mut Value, applied: &Value, name: &str, ctx: Ctx<'_>) {
    match (live, applied) {
        (Value::Object(lm), Value::Object(am)) => {
            for (k, av) in am {
                let c = ctx.field(k);
                match lm.get_mut(k) {
                    Some(lv) => merge_applied(lv, av, k, c),
                    None => {
                        lm.insert(k.clone(), av.clone());
                    }
                }
            }
        }
        (Value::Array(li), Value::Array(ai)) => match ctx.list_kind(name, ai) {
            ListKind::Atomic => *li = ai.clone(),
            ListKind::Set => {
                for i in ai {
                    if !li.contains(i) {
                        li.push(i.clone());
                    }
                }
            }
            ListKind::Map(keys) => {
                let ictx = ctx.items();
                for i in ai {
                    let k = item_key(i, &keys);
                    match li.iter_mut().find(|l| k.is_some() && item_key(l, &keys) == k) {
                        Some(l) => {
                            merge_applied(l, i, name, Ctx { schema: ictx.schema, builtin: ictx.builtin })
                        }
                        None => li.push(i.clone()),
                    }
                }
            }
        },
        (live, applied) => *live = applied.clone(),
    }
}

/// Server-side apply of `applied` (already restricted to the writable part) over `live`.
///
/// Returns the merged object with updated `managedFields`, or a 409 Conflict listing fields
/// another manager owns with a different value (unless `force`, which takes them over).
pub fn apply(live: Option<&Value>, applied: &Value, force: bool, w: &Writer<'_>) -> Result<Value, ApiError> {
    let applied = drop_nulls(applied);
    let mut entries = live.map(read_managed).unwrap_or_default();
    let applied_set = field_set(&applied, w.schema, w.builtin);
    let is_me =
        |e: &ManagedEntry| e.manager == w.manager && e.operation == "Apply" && e.subresource == w.subresource;

    let mut conflicts: BTreeMap<FieldPath, Vec<String>> = BTreeMap::new();
    if let Some(live) = live {
        for p in applied_set
            .iter()
            .filter(|p| !matches!(p.last(), Some(PathElement::Key(_) | PathElement::Value(_))))
        {
            let (lv, av) = (get_path(live, p), get_path(&applied, p));
            if lv.is_none() || lv == av {
                continue;
            }
            for e in entries.iter().filter(|e| !is_me(e) && e.fields.contains(p)) {
                conflicts
                    .entry(p.clone())
                    .or_default()
                    .push(format!("\"{}\" using {}", e.manager, e.api_version));
            }
        }
    }
    if !conflicts.is_empty() && !force {
        let causes: Vec<Cause> = conflicts
            .iter()
            .flat_map(|(p, ms)| {
                ms.iter().map(move |m| Cause {
                    reason: "FieldManagerConflict".into(),
                    field: path_string(p),
                    message: format!("conflict with {m}"),
                })
            })
            .collect();
        let detail: Vec<String> = causes.iter().map(|c| format!("{}: {}", c.message, c.field)).collect();
        return Err(ApiError::ConflictWithCauses {
            message: format!(
                "Apply failed with {} conflict{}: {}",
                causes.len(),
                if causes.len() == 1 { "" } else { "s" },
                detail.join("\n")
            ),
            causes,
        });
    }
    for e in entries.iter_mut().filter(|e| !is_me(e)) {
        e.fields.retain(|p| !conflicts.contains_key(p));
    }

    let mut merged = live.cloned().unwrap_or_else(|| json!({}));
    merge_applied(&mut merged, &applied, "", Ctx { schema: w.schema, builtin: w.builtin });

    let previous: FieldSet =
        entries.iter().filter(|e| is_me(e)).flat_map(|e| e.fields.iter().cloned()).collect();
    let owned_by_others = |p: &FieldPath| {
        entries.iter().filter(|e| !is_me(e)).any(|e| e.fields.iter().any(|q| q.starts_with(p)))
    };
    let removable: FieldSet =
        previous.iter().filter(|p| !applied_set.contains(*p) && !owned_by_others(p)).cloned().collect();
    // Removing a list item removes its fields too; removing the key fields first would lose the item.
    let mut removed: Vec<&FieldPath> = removable
        .iter()
        .filter(|p| !removable.iter().any(|q| q.len() < p.len() && p.starts_with(q)))
        .collect();
    removed.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in removed {
        remove_path(&mut merged, p);
    }

    // Keep the timestamp when the manager's set did not change, so a repeated apply is a no-op.
    let time = entries
        .iter()
        .find(|e| is_me(e) && e.fields == applied_set)
        .map_or_else(|| w.now.to_string(), |e| e.time.clone());
    let entry = ManagedEntry {
        manager: w.manager.into(),
        operation: "Apply".into(),
        api_version: w.api_version.into(),
        time,
        subresource: w.subresource.into(),
        fields: applied_set,
    };
    match entries.iter().position(is_me) {
        Some(pos) => {
            entries.retain(|e| !is_me(e));
            entries.insert(pos.min(entries.len()), entry);
        }
        None => entries.push(entry),
    }
    write_managed(&mut merged, &entries);
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer(m: &str) -> Writer<'_> {
        Writer { manager: m, api_version: "v1", subresource: "", now: "t", schema: None, builtin: true }
    }

    #[test]
    fn path_strings_look_like_the_apiserver_ones() {
        let p = vec![
            PathElement::Field("spec".into()),
            PathElement::Field("containers".into()),
            PathElement::Key(r#"{"name":"app"}"#.into()),
            PathElement::Field("image".into()),
        ];
        assert_eq!(path_string(&p), r#".spec.containers[name="app"].image"#);
    }

    #[test]
    fn fields_v1_round_trip() {
        let o = json!({"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}});
        let set = field_set(&o, None, true);
        let mut back = FieldSet::new();
        decode(&encode(&set), &mut Vec::new(), &mut back);
        assert_eq!(set, back);
    }

    #[test]
    fn crd_list_map_items_are_owned_per_key() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "ports": {"type": "array", "x-kubernetes-list-type": "map",
                      "x-kubernetes-list-map-keys": ["port", "protocol"],
                      "items": {"type": "object"}}}}}});
        let w = |m: &'static str| Writer {
            manager: m,
            api_version: "x/v1",
            subresource: "",
            now: "t",
            schema: Some(&schema),
            builtin: false,
        };
        let a = json!({"spec": {"ports": [{"port": 80, "protocol": "TCP", "name": "http"}]}});
        let b = json!({"spec": {"ports": [{"port": 9090, "protocol": "TCP", "name": "metrics"}]}});
        let live = apply(None, &a, false, &w("a")).unwrap_or_default();
        let live = apply(Some(&live), &b, false, &w("b")).unwrap_or_default();
        assert_eq!(live["spec"]["ports"].as_array().map(Vec::len), Some(2));
        let empty = json!({"spec": {"ports": []}});
        let live = apply(Some(&live), &empty, false, &w("b")).unwrap_or_default();
        assert_eq!(live["spec"]["ports"], json!([{"port": 80, "protocol": "TCP", "name": "http"}]));
    }

    #[test]
    fn apply_conflict_and_removal() {
        let a = json!({"data": {"x": "1", "y": "2"}});
        let live = apply(None, &a, false, &writer("a")).unwrap_or_default();
        let b = json!({"data": {"x": "9"}});
        assert!(apply(Some(&live), &b, false, &writer("b")).is_err());
        let forced = apply(Some(&live), &b, true, &writer("b")).unwrap_or_default();
        assert_eq!(forced["data"]["x"], "9");
        let a2 = json!({"data": {"x": "9"}});
        let after = apply(Some(&forced), &a2, false, &writer("a")).unwrap_or_default();
        assert!(after["data"].get("y").is_none());
        assert_eq!(after["data"]["x"], "9");
    }
}
