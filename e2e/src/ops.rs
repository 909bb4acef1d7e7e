//! The read and write verbs: get, list, create, update and patch (merge, JSON, strategic, apply),
//! with optimistic concurrency, generation, status-subresource separation, finalizer completion
//! and managed fields. Deletion is in [`crate::delete`].

use serde_json::{Map, Value, json};

use crate::{
    apply::{self, Writer},
    error::ApiError,
    gc,
    patch::{self, PatchKind},
    resource::{ResourceInfo, is_crd},
    schema,
    selector::Selectors,
    store::{Key, Store},
};

/// Who writes and how (query parameters of a write request).
#[derive(Debug, Clone, Default)]
pub struct WriteParams {
    /// `fieldManager` (or the user-agent product when absent).
    pub field_manager: String,
    /// `force` for server-side apply.
    pub force: bool,
    /// `dryRun=All`: validate and compute, but store nothing.
    pub dry_run: bool,
}

/// Where a request points.
#[derive(Debug, Clone)]
pub struct Target {
    /// Resource.
    pub info: ResourceInfo,
    /// Namespace (None for cluster-scoped or all-namespaces requests).
    pub namespace: Option<String>,
    /// Subresource (`status`), if any.
    pub subresource: Option<String>,
}

impl Target {
    /// Storage key of the named object.
    pub(crate) fn key(&self, name: &str) -> Key {
        Key {
            group: self.info.group.clone(),
            plural: self.info.plural.clone(),
            namespace: if self.info.namespaced {
                self.namespace.clone().unwrap_or_default()
            } else {
                String::new()
            },
            name: name.into(),
        }
    }

    fn is_status(&self) -> bool {
        self.subresource.as_deref() == Some("status")
    }

    /// The NotFound error for the named object.
    pub(crate) fn not_found(&self, name: &str) -> ApiError {
        ApiError::NotFound { resource: self.info.qualified(), name: name.into() }
    }
}

/// Current time as an RFC 3339 timestamp with seconds precision.
pub fn now() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Sets `apiVersion` and `kind` to the served ones (objects are stored version-independent).
pub fn present(info: &ResourceInfo, obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        m.insert("apiVersion".into(), info.api_version().into());
        m.insert("kind".into(), info.kind.clone().into());
    }
    o
}

pub(crate) fn meta(obj: &Value) -> &Value {
    &obj["metadata"]
}

pub(crate) fn meta_mut(obj: &mut Value) -> Option<&mut Map<String, Value>> {
    if !obj["metadata"].is_object() {
        obj.as_object_mut()?.insert("metadata".into(), json!({}));
    }
    obj.get_mut("metadata").and_then(Value::as_object_mut)
}

pub(crate) fn rv_of(obj: &Value) -> &str {
    meta(obj)["resourceVersion"].as_str().unwrap_or_default()
}

pub(crate) fn conflict(info: &ResourceInfo, name: &str) -> ApiError {
    ApiError::Conflict(format!(
        "Operation cannot be fulfilled on {} \"{}\": the object has been modified; please apply your \
         changes to the latest version and try again",
        info.qualified(),
        name
    ))
}

/// `get`.
pub fn get(store: &Store, t: &Target, name: &str) -> Result<Value, ApiError> {
    store.get(&t.key(name)).map(|o| present(&t.info, o)).ok_or_else(|| t.not_found(name))
}

/// `list`: a `<Kind>List` with the current resourceVersion (limit/continue are not paginated).
pub fn list(store: &Store, t: &Target, sel: &Selectors) -> Value {
    let ns = if t.info.namespaced { t.namespace.as_deref() } else { None };
    let items: Vec<Value> = store
        .list(&t.info.group, &t.info.plural, ns)
        .into_iter()
        .filter(|o| sel.matches(o))
        .map(|o| present(&t.info, o))
        .collect();
    json!({
        "kind": format!("{}List", t.info.kind),
        "apiVersion": t.info.api_version(),
        "metadata": { "resourceVersion": store.current_rv().to_string() },
        "items": items,
    })
}

/// Parses a request body as a JSON object.
fn object_body(body: Value) -> Result<Value, ApiError> {
    if body.is_object() {
        Ok(body)
    } else {
        Err(ApiError::BadRequest("request body must be a JSON object".into()))
    }
}

/// Checks `apiVersion`/`kind` of a body against the target, when given.
fn check_type(info: &ResourceInfo, body: &Value) -> Result<(), ApiError> {
    if let Some(av) = body["apiVersion"].as_str()
        && !av.is_empty()
        && av != info.api_version()
    {
        return Err(ApiError::BadRequest(format!(
            "the API version in the data ({av}) does not match the expected API version ({})",
            info.api_version()
        )));
    }
    if let Some(k) = body["kind"].as_str()
        && !k.is_empty()
        && k != info.kind
    {
        return Err(ApiError::BadRequest(format!(
            "the kind in the data ({k}) does not match the expected kind ({})",
            info.kind
        )));
    }
    Ok(())
}

/// Random lowercase suffix for `generateName`.
fn suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    uuid::Uuid::new_v4()
        .as_bytes()
        .iter()
        .take(5)
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

/// Kind-specific defaulting and server-populated fields on create.
fn defaults_on_create(store: &Store, info: &ResourceInfo, obj: &mut Value) {
    match (info.group.as_str(), info.plural.as_str()) {
        ("", "namespaces") => obj["status"] = json!({ "phase": "Active" }),
        ("", "services") => {
            if !obj["spec"].is_object() {
                obj["spec"] = json!({});
            }
            if obj["spec"]["clusterIP"].is_null() {
                let n = store.current_rv() + 1;
                let ip = format!("10.96.{}.{}", (n / 250) % 250, n % 250 + 1);
                obj["spec"]["clusterIP"] = json!(ip);
                obj["spec"]["clusterIPs"] = json!([ip]);
            }
            if obj["spec"]["type"].is_null() {
                obj["spec"]["type"] = json!("ClusterIP");
            }
        }
        ("apps", "deployments") if obj["spec"].is_object() && obj["spec"]["replicas"].is_null() => {
            obj["spec"]["replicas"] = json!(1);
        }
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            let names = obj["spec"]["names"].clone();
            let stored: Vec<Value> = obj["spec"]["versions"]
                .as_array()
                .map(|vs| {
                    vs.iter()
                        .filter(|v| v["storage"].as_bool() == Some(true))
                        .map(|v| v["name"].clone())
                        .collect()
                })
                .unwrap_or_default();
            let t = now();
            obj["status"] = json!({
                "acceptedNames": names,
                "storedVersions": stored,
                "conditions": [
                    { "type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                      "message": "no conflicts found", "lastTransitionTime": t },
                    { "type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                      "message": "the initial names have been accepted", "lastTransitionTime": t },
                ],
            });
        }
        _ => {}
    }
}

/// Kind-specific normalisation on every write: Secret `stringData` is folded into `data`
/// (base64), as the apiserver does.
fn normalize(info: &ResourceInfo, obj: &mut Value) {
    use base64::Engine as _;
    if !(info.group.is_empty() && info.plural == "secrets") {
        return;
    }
    let Some(o) = obj.as_object_mut() else { return };
    let Some(Value::Object(string_data)) = o.remove("stringData") else { return };
    if !o.get("data").is_some_and(Value::is_object) {
        o.insert("data".into(), json!({}));
    }
    if let Some(data) = o.get_mut("data").and_then(Value::as_object_mut) {
        for (k, v) in string_data {
            let text = v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
            data.insert(k, base64::engine::general_purpose::STANDARD.encode(text).into());
        }
    }
}

/// Fills identity and server fields of a new object, resolving `generateName`.
fn prepare_create(store: &Store, t: &Target, mut obj: Value) -> Result<(Key, Value), ApiError> {
    check_type(&t.info, &obj)?;
    let path_ns = t.namespace.clone().unwrap_or_default();
    let m = meta_mut(&mut obj).ok_or_else(|| ApiError::BadRequest("object must be a JSON object".into()))?;
    if t.info.namespaced {
        match m.get("namespace").and_then(Value::as_str) {
            Some(ns) if !ns.is_empty() && ns != path_ns => {
                return Err(ApiError::BadRequest(
                    "the namespace of the provided object does not match the namespace sent on the request"
                        .into(),
                ));
            }
            _ => {}
        }
        if path_ns.is_empty() {
            return Err(ApiError::BadRequest("a namespace is required to create this object".into()));
        }
        m.insert("namespace".into(), path_ns.clone().into());
        let ns_key = Key {
            group: String::new(),
            plural: "namespaces".into(),
            namespace: String::new(),
            name: path_ns.clone(),
        };
        if store.get(&ns_key).is_none() {
            return Err(ApiError::NotFound { resource: "namespaces".into(), name: path_ns });
        }
    } else {
        m.remove("namespace");
    }
    if m.get("resourceVersion").and_then(Value::as_str).is_some_and(|rv| !rv.is_empty()) {
        return Err(ApiError::BadRequest(
            "resourceVersion should not be set on objects to be created".into(),
        ));
    }
    let mut name = m.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
    if name.is_empty() {
        let Some(prefix) = m.get("generateName").and_then(Value::as_str).filter(|p| !p.is_empty()) else {
            return Err(ApiError::Invalid {
                message: format!(
                    "{} \"\" is invalid: metadata.name: Required value: name or generateName is required",
                    t.info.kind
                ),
                causes: vec![crate::error::Cause {
                    reason: "FieldValueRequired".into(),
                    field: "metadata.name".into(),
                    message: "Required value: name or generateName is required".into(),
                }],
            });
        };
        name = (0..8)
            .map(|_| format!("{prefix}{}", suffix()))
            .find(|n| store.get(&t.key(n)).is_none())
            .ok_or_else(|| ApiError::Conflict("could not generate a unique name".into()))?;
        m.insert("name".into(), name.clone().into());
    }
    let key = t.key(&name);
    if store.get(&key).is_some() {
        return Err(ApiError::AlreadyExists { resource: t.info.qualified(), name });
    }
    m.insert("uid".into(), uuid::Uuid::new_v4().to_string().into());
    m.insert("creationTimestamp".into(), now().into());
    m.insert("generation".into(), 1.into());
    for k in ["deletionTimestamp", "deletionGracePeriodSeconds", "managedFields", "selfLink"] {
        m.remove(k);
    }
    if t.info.has_status
        && let Some(o) = obj.as_object_mut()
    {
        o.remove("status");
    }
    defaults_on_create(store, &t.info, &mut obj);
    normalize(&t.info, &mut obj);
    Ok((key, obj))
}

fn writer<'a>(t: &'a Target, p: &'a WriteParams, api_version: &'a str, now: &'a str) -> Writer<'a> {
    Writer {
        manager: &p.field_manager,
        api_version,
        subresource: if t.is_status() { "status" } else { "" },
        now,
        schema: t.info.schema.as_ref(),
        builtin: !t.info.custom,
    }
}

/// `create` (POST).
pub fn create(store: &mut Store, t: &Target, body: Value, p: &WriteParams) -> Result<Value, ApiError> {
    if t.subresource.is_some() {
        return Err(ApiError::MethodNotAllowed("create is not supported on subresources".into()));
    }
    let (key, mut obj) = prepare_create(store, t, object_body(body)?)?;
    obj = present(&t.info, &obj);
    schema::admit(&t.info, &mut obj, None)?;
    crate::builtin_rules::validate_create(&t.info, &obj)?;
    let (av, ts) = (t.info.api_version(), now());
    apply::record_update(None, &mut obj, &writer(t, p, &av, &ts));
    commit(store, t, key, None, obj, p.dry_run)
}

/// Copies server-owned metadata from `old` into `new`.
fn restore_identity(new: &mut Value, old: &Value, keep_managed: bool) {
    let Some(m) = meta_mut(new) else { return };
    for k in [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "managedFields",
        "resourceVersion",
    ] {
        if keep_managed && k == "managedFields" {
            continue;
        }
        match old["metadata"].get(k) {
            Some(v) => m.insert(k.into(), v.clone()),
            None => m.remove(k),
        };
    }
}

/// Restricts a write to the part its endpoint may change.
fn scope_write(t: &Target, old: &Value, mut new: Value) -> Value {
    if t.is_status() {
        let mut out = old.clone();
        match new.get_mut("status").map(Value::take) {
            Some(s) if !s.is_null() => out["status"] = s,
            _ => {
                if let Some(o) = out.as_object_mut() {
                    o.remove("status");
                }
            }
        }
        out
    } else {
        if t.info.has_status
            && let Some(o) = new.as_object_mut()
        {
            match old.get("status") {
                Some(s) => o.insert("status".into(), s.clone()),
                None => o.remove("status"),
            };
        }
        new
    }
}

/// The part of an object whose change bumps `metadata.generation`.
fn generation_part(info: &ResourceInfo, obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        for k in ["metadata", "apiVersion", "kind"] {
            m.remove(k);
        }
        if info.has_status {
            m.remove("status");
        }
    }
    o
}

/// Validates, bumps generation, detects no-ops, handles finalizer completion, stores.
fn finish_update(
    store: &mut Store,
    t: &Target,
    key: Key,
    old: &Value,
    mut new: Value,
    p: &WriteParams,
    record: bool,
) -> Result<Value, ApiError> {
    restore_identity(&mut new, old, !record);
    normalize(&t.info, &mut new);
    new = present(&t.info, &new);
    schema::admit(&t.info, &mut new, Some(old))?;
    if generation_part(&t.info, old) != generation_part(&t.info, &new) {
        let g = meta(old)["generation"].as_i64().unwrap_or(0) + 1;
        if let Some(m) = meta_mut(&mut new) {
            m.insert("generation".into(), g.into());
        }
    }
    if record {
        let (av, ts) = (t.info.api_version(), now());
        apply::record_update(Some(old), &mut new, &writer(t, p, &av, &ts));
    }
    if new == present(&t.info, old) {
        return Ok(new);
    }
    commit(store, t, key, Some(old), new, p.dry_run)
}

/// Stores a created or changed object (or removes it when its last finalizer went away).
pub(crate) fn commit(
    store: &mut Store,
    t: &Target,
    key: Key,
    old: Option<&Value>,
    mut obj: Value,
    dry_run: bool,
) -> Result<Value, ApiError> {
    if dry_run {
        return Ok(obj);
    }
    let terminating = !meta(&obj)["deletionTimestamp"].is_null();
    let no_finalizers = meta(&obj)["finalizers"].as_array().is_none_or(|f| f.is_empty());
    let rv = store.next_rv();
    if let Some(m) = meta_mut(&mut obj) {
        m.insert("resourceVersion".into(), rv.to_string().into());
    }
    if old.is_some() && terminating && no_finalizers {
        gc::remove(store, &key, obj.clone(), rv);
        return Ok(obj);
    }
    store.put(key, obj.clone(), rv);
    if is_crd(&t.info) {
        store.registry.register_crd(&obj);
    }
    Ok(obj)
}

/// `update` (PUT) of the main resource or the status subresource.
pub fn update(
    store: &mut Store,
    t: &Target,
    name: &str,
    body: Value,
    p: &WriteParams,
) -> Result<Value, ApiError> {
    let body = object_body(body)?;
    check_type(&t.info, &body)?;
    let key = t.key(name);
    let old = store.get(&key).cloned().ok_or_else(|| t.not_found(name))?;
    if let Some(n) = body["metadata"]["name"].as_str()
        && !n.is_empty()
        && n != name
    {
        return Err(ApiError::BadRequest(format!(
            "the name of the object ({n}) does not match the name on the URL ({name})"
        )));
    }
    let want = rv_of(&body);
    if want.is_empty() && !t.info.allows_unconditional_update() {
        return Err(resource_version_required(&t.info, name));
    }
    if !want.is_empty() && want != rv_of(&old) {
        return Err(conflict(&t.info, name));
    }
    let new = scope_write(t, &old, body);
    finish_update(store, t, key, &old, new, p, true)
}

/// The 422 of an update (PUT) without `metadata.resourceVersion` on a kind that needs one, worded
/// as the generic registry words it (`qualifiedKind` there is the plural resource).
fn resource_version_required(info: &ResourceInfo, name: &str) -> ApiError {
    let message = "Invalid value: 0x0: must be specified for an update";
    ApiError::Invalid {
        message: format!("{} \"{name}\" is invalid: metadata.resourceVersion: {message}", info.qualified()),
        causes: vec![crate::error::Cause {
            reason: "FieldValueInvalid".into(),
            field: "metadata.resourceVersion".into(),
            message: message.into(),
        }],
    }
}

/// `patch` (PATCH); returns the object and whether it was created (server-side apply only).
pub fn patch(
    store: &mut Store,
    t: &Target,
    name: &str,
    kind: PatchKind,
    body: &[u8],
    p: &WriteParams,
) -> Result<(Value, bool), ApiError> {
    let key = t.key(name);
    let old = store.get(&key).cloned();
    if kind == PatchKind::Apply {
        return server_side_apply(store, t, name, key, old, body, p);
    }
    let old = old.ok_or_else(|| t.not_found(name))?;
    let doc: Value =
        serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("invalid patch body: {e}")))?;
    let mut new = present(&t.info, &old);
    match kind {
        PatchKind::Merge => patch::merge_patch(&mut new, &doc)?,
        PatchKind::Json => patch::json_patch(&mut new, &doc)?,
        PatchKind::Strategic if t.info.custom => {
            return Err(ApiError::UnsupportedMediaType(
                "strategic merge patch is not supported for custom resources; use merge or apply patch"
                    .into(),
            ));
        }
        PatchKind::Strategic => patch::strategic_merge_patch(&mut new, &doc)?,
        PatchKind::Apply => {}
    }
    let want = rv_of(&new);
    if !want.is_empty() && want != rv_of(&old) {
        return Err(conflict(&t.info, name));
    }
    let new = scope_write(t, &old, new);
    Ok((finish_update(store, t, key, &old, new, p, true)?, false))
}

/// Server-side apply (`application/apply-patch+yaml`), creating the object if it is missing.
fn server_side_apply(
    store: &mut Store,
    t: &Target,
    name: &str,
    key: Key,
    old: Option<Value>,
    body: &[u8],
    p: &WriteParams,
) -> Result<(Value, bool), ApiError> {
    if p.field_manager.is_empty() {
        return Err(ApiError::BadRequest(
            "PATCH, application/apply-patch+yaml: fieldManager is required".into(),
        ));
    }
    let mut applied: Value = serde_norway::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("invalid apply body: {e}")))?;
    let applied_obj =
        applied.as_object_mut().ok_or_else(|| ApiError::BadRequest("apply body must be an object".into()))?;
    if applied_obj.get("apiVersion").and_then(Value::as_str).is_none_or(str::is_empty)
        || applied_obj.get("kind").and_then(Value::as_str).is_none_or(str::is_empty)
    {
        return Err(ApiError::BadRequest("apiVersion and kind must be set in an apply configuration".into()));
    }
    check_type(&t.info, &applied)?;
    if let Some(n) = applied["metadata"]["name"].as_str()
        && !n.is_empty()
        && n != name
    {
        return Err(ApiError::BadRequest(format!(
            "the name of the object ({n}) does not match the name on the URL ({name})"
        )));
    }
    // Only the endpoint's part of the configuration counts.
    let scoped = if t.is_status() {
        json!({ "status": applied.get("status").cloned().unwrap_or(Value::Null) })
    } else {
        let mut a = applied.clone();
        if let Some(o) = a.as_object_mut() {
            if t.info.has_status {
                o.remove("status");
            }
            o.remove("apiVersion");
            o.remove("kind");
        }
        if let Some(m) = a.get_mut("metadata").and_then(Value::as_object_mut) {
            m.retain(|k, _| {
                matches!(k.as_str(), "labels" | "annotations" | "finalizers" | "ownerReferences")
            });
        }
        a
    };
    let (av, ts) = (t.info.api_version(), now());
    let w = writer(t, p, &av, &ts);
    match old {
        Some(old) => {
            let want = rv_of(&applied);
            if !want.is_empty() && want != rv_of(&old) {
                return Err(conflict(&t.info, name));
            }
            let merged = apply::apply(Some(&old), &scoped, p.force, &w)?;
            let managed = merged["metadata"]["managedFields"].clone();
            let mut new = scope_write(t, &old, merged);
            if let Some(m) = meta_mut(&mut new) {
                match managed {
                    Value::Null => m.remove("managedFields"),
                    v => m.insert("managedFields".into(), v),
                };
            }
            Ok((finish_update(store, t, key, &old, new, p, false)?, false))
        }
        None => {
            if t.is_status() {
                return Err(t.not_found(name));
            }
            let mut seed = json!({ "metadata": { "name": name } });
            if let Some(m) = applied["metadata"].as_object()
                && let Some(ns) = m.get("namespace")
            {
                seed["metadata"]["namespace"] = ns.clone();
            }
            let (key, base) = prepare_create(store, t, seed)?;
            let mut merged = apply::apply(None, &scoped, p.force, &w)?;
            let managed = merged["metadata"]["managedFields"].clone();
            json_patch::merge(&mut merged, &json!({ "metadata": base["metadata"].clone() }));
            if let Some(m) = meta_mut(&mut merged) {
                m.insert("managedFields".into(), managed);
            }
            if t.info.has_status
                && let Some(o) = merged.as_object_mut()
            {
                o.remove("status");
            }
            defaults_on_create(store, &t.info, &mut merged);
            normalize(&t.info, &mut merged);
            let mut obj = present(&t.info, &merged);
            schema::admit(&t.info, &mut obj, None)?;
            Ok((commit(store, t, key, None, obj, p.dry_run)?, true))
        }
    }
}
