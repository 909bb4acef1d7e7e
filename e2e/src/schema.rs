//! CRD structural-schema handling: defaulting, pruning, type validation and CEL rules.
//!
//! Checked: `type` (object, array, string, integer, number, boolean), `x-kubernetes-int-or-string`,
//! `required`, `enum`, `nullable`, `minimum`/`maximum`, `minLength`/`maxLength`, `pattern`,
//! `minItems`/`maxItems`, `properties`/`additionalProperties`/`items` recursion, and
//! `x-kubernetes-validations` through `kube::core::cel`. Unknown fields are pruned unless
//! `x-kubernetes-preserve-unknown-fields: true`. `format` is not checked.

use kube::core::cel::ErrorKind;
use serde_json::Value;

use crate::{
    error::{ApiError, Cause},
    resource::ResourceInfo,
};

/// Root fields every object keeps, whatever the schema says.
const ROOT_FIELDS: &[&str] = &["apiVersion", "kind", "metadata"];

/// Defaults, prunes and validates `obj` against the kind's CRD schema (no-op for built-in kinds).
pub fn admit(info: &ResourceInfo, obj: &mut Value, old: Option<&Value>) -> Result<(), ApiError> {
    let Some(schema) = &info.schema else { return Ok(()) };
    let metadata = obj.get("metadata").cloned();
    *obj = kube::core::cel::apply_defaults(schema, obj);
    if let (Some(m), Some(o)) = (metadata, obj.as_object_mut()) {
        o.insert("metadata".into(), m);
    }
    prune(obj, schema, true);
    let mut causes = Vec::new();
    check(obj, schema, "", true, &mut causes);
    if causes.is_empty()
        && let Some(compiled) = &info.cel
        && let Err(errors) = kube::core::cel::validate_compiled(compiled, obj, old)
    {
        // Fail open where the client-side CEL engine cannot judge a rule (syntax it does not
        // support, unknown functions, malformed rules); reject on real rule outcomes.
        for e in errors.into_vec().into_iter().filter(|e| {
            matches!(
                e.kind,
                ErrorKind::ValidationFailure | ErrorKind::InvalidResult | ErrorKind::EvaluationError
            )
        }) {
            causes.push(Cause {
                reason: e.reason.clone().unwrap_or_else(|| "FieldValueInvalid".into()),
                field: e.field_path.clone(),
                message: format!("Invalid value: {}", e.message),
            });
        }
    }
    if causes.is_empty() {
        return Ok(());
    }
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let parts: Vec<String> = causes.iter().map(|c| format!("{}: {}", c.field, c.message)).collect();
    Err(ApiError::Invalid {
        message: format!("{} \"{}\" is invalid: [{}]", info.qualified_kind(), name, parts.join(", ")),
        causes,
    })
}

fn is_true(s: &Value, key: &str) -> bool {
    s.get(key).and_then(Value::as_bool).unwrap_or(false)
}

/// Drops fields the schema does not know (and non-nullable nulls).
fn prune(v: &mut Value, s: &Value, root: bool) {
    match v {
        Value::Object(m) => {
            let preserve = is_true(s, "x-kubernetes-preserve-unknown-fields");
            let embedded = is_true(s, "x-kubernetes-embedded-resource");
            let props = s.get("properties").and_then(Value::as_object);
            let additional = s.get("additionalProperties").filter(|a| a.is_object());
            m.retain(|k, child| {
                let keep_root = (root || embedded) && ROOT_FIELDS.contains(&k.as_str());
                let known = props.is_some_and(|p| p.contains_key(k)) || additional.is_some();
                let child_schema = props.and_then(|p| p.get(k)).or(additional);
                let null_ok = child_schema.is_some_and(|cs| is_true(cs, "nullable"));
                keep_root || ((known || preserve) && (!child.is_null() || null_ok))
            });
            for (k, child) in m.iter_mut() {
                if (root || embedded) && ROOT_FIELDS.contains(&k.as_str()) {
                    continue;
                }
                if let Some(cs) = props.and_then(|p| p.get(k)).or(additional) {
                    prune(child, cs, false);
                }
            }
        }
        Value::Array(items) => {
            if let Some(is) = s.get("items") {
                for i in items {
                    prune(i, is, false);
                }
            }
        }
        _ => {}
    }
}

/// JSON type name of a value, as the apiserver prints it.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() { field.to_string() } else { format!("{path}.{field}") }
}

/// Validates types and constraints, appending causes.
fn check(v: &Value, s: &Value, path: &str, root: bool, causes: &mut Vec<Cause>) {
    if v.is_null() {
        return;
    }
    let invalid = |causes: &mut Vec<Cause>, msg: String| {
        causes.push(Cause { reason: "FieldValueInvalid".into(), field: path.to_string(), message: msg })
    };
    let shown =
        |v: &Value| if v.is_object() || v.is_array() { type_name(v).to_string() } else { v.to_string() };
    if is_true(s, "x-kubernetes-int-or-string") {
        if !(v.is_string() || v.is_i64() || v.is_u64()) {
            invalid(
                causes,
                format!("Invalid value: {}: {path} in body must be of type int-or-string", shown(v)),
            );
        }
        return;
    }
    if let Some(t) = s.get("type").and_then(Value::as_str) {
        let got = type_name(v);
        let ok = t == got || (t == "number" && got == "integer");
        if !ok {
            invalid(
                causes,
                format!("Invalid value: \"{got}\": {path} in body must be of type {t}: \"{got}\""),
            );
            return;
        }
    }
    if let Some(allowed) = s.get("enum").and_then(Value::as_array)
        && !allowed.contains(v)
    {
        let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
        causes.push(Cause {
            reason: "FieldValueNotSupported".into(),
            field: path.to_string(),
            message: format!("Unsupported value: {}: supported values: {}", v, list.join(", ")),
        });
        return;
    }
    match v {
        Value::Object(m) => {
            if let Some(req) = s.get("required").and_then(Value::as_array) {
                for r in req.iter().filter_map(Value::as_str) {
                    if !m.contains_key(r) {
                        causes.push(Cause {
                            reason: "FieldValueRequired".into(),
                            field: join(path, r),
                            message: "Required value".into(),
                        });
                    }
                }
            }
            let props = s.get("properties").and_then(Value::as_object);
            let additional = s.get("additionalProperties").filter(|a| a.is_object());
            for (k, child) in m {
                if root && ROOT_FIELDS.contains(&k.as_str()) {
                    continue;
                }
                if let Some(cs) = props.and_then(|p| p.get(k)).or(additional) {
                    check(child, cs, &join(path, k), false, causes);
                }
            }
        }
        Value::Array(items) => {
            if let Some(min) = s.get("minItems").and_then(Value::as_u64)
                && (items.len() as u64) < min
            {
                invalid(
                    causes,
                    format!(
                        "Invalid value: {}: {path} in body should have at least {min} items",
                        items.len()
                    ),
                );
            }
            if let Some(max) = s.get("maxItems").and_then(Value::as_u64)
                && (items.len() as u64) > max
            {
                causes.push(Cause {
                    reason: "FieldValueTooMany".into(),
                    field: path.to_string(),
                    message: format!("Too many: {}: must have at most {max} items", items.len()),
                });
            }
            if let Some(is) = s.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check(item, is, &format!("{path}[{i}]"), false, causes);
                }
            }
        }
        Value::String(st) => {
            let len = st.chars().count() as u64;
            if let Some(min) = s.get("minLength").and_then(Value::as_u64)
                && len < min
            {
                invalid(
                    causes,
                    format!("Invalid value: {v}: {path} in body should be at least {min} chars long"),
                );
            }
            if let Some(max) = s.get("maxLength").and_then(Value::as_u64)
                && len > max
            {
                causes.push(Cause {
                    reason: "FieldValueTooLong".into(),
                    field: path.to_string(),
                    message: format!("Too long: may not be more than {max} bytes"),
                });
            }
            if let Some(p) = s.get("pattern").and_then(Value::as_str)
                && let Ok(re) = regex::Regex::new(p)
                && !re.is_match(st)
            {
                invalid(causes, format!("Invalid value: {v}: {path} in body should match '{p}'"));
            }
        }
        Value::Number(n) => {
            if let (Some(min), Some(x)) = (s.get("minimum").and_then(Value::as_f64), n.as_f64())
                && x < min
            {
                invalid(
                    causes,
                    format!("Invalid value: {v}: {path} in body should be greater than or equal to {min}"),
                );
            }
            if let (Some(max), Some(x)) = (s.get("maximum").and_then(Value::as_f64), n.as_f64())
                && x > max
            {
                invalid(
                    causes,
                    format!("Invalid value: {v}: {path} in body should be less than or equal to {max}"),
                );
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::from_crd;
    use serde_json::json;

    fn info() -> Option<ResourceInfo> {
        let crd = json!({"spec": {"group": "x.dev", "names": {"plural": "foos", "kind": "Foo"}, "scope": "Namespaced",
            "versions": [{"name": "v1", "served": true, "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                "spec": {"type": "object", "required": ["replicas"], "properties": {
                    "replicas": {"type": "integer", "default": 1, "minimum": 0},
                    "mode": {"type": "string", "enum": ["a", "b"]}}}}}}}]}});
        from_crd(&crd).into_iter().next()
    }

    #[test]
    fn preserve_unknown_fields_keeps_them() {
        let crd = json!({"spec": {"group": "x.dev", "names": {"plural": "bars", "kind": "Bar"},
            "versions": [{"name": "v1", "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                         "properties": {"known": {"type": "object", "properties": {}}}}}}}}]}});
        let Some(info) = from_crd(&crd).into_iter().next() else { panic!("crd did not parse") };
        let mut o = json!({"metadata": {"name": "b"}, "spec": {"free": {"x": 1}, "known": {"dropped": 1}}});
        assert!(admit(&info, &mut o, None).is_ok());
        assert_eq!(o["spec"], json!({"free": {"x": 1}, "known": {}}));
    }

    #[test]
    fn prunes_and_checks_types() {
        let Some(info) = info() else { panic!("crd did not parse") };
        let mut ok = json!({"apiVersion": "x.dev/v1", "kind": "Foo", "metadata": {"name": "a"},
            "spec": {"replicas": 2, "junk": 1}, "extra": true});
        assert!(admit(&info, &mut ok, None).is_ok());
        assert_eq!(
            ok,
            json!({"apiVersion": "x.dev/v1", "kind": "Foo", "metadata": {"name": "a"}, "spec": {"replicas": 2}})
        );
        let mut bad = json!({"metadata": {"name": "a"}, "spec": {"replicas": "two", "mode": "c"}});
        let Err(ApiError::Invalid { causes, .. }) = admit(&info, &mut bad, None) else {
            panic!("expected Invalid")
        };
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, vec!["spec.mode", "spec.replicas"]);
    }
}
