//! Validation of built-in kinds on create, for the kinds where a lenient stand-in would hide a
//! bug Serin could ship: `events.k8s.io/v1` Events, which Serin writes on every tick. The rules
//! and messages are kube-apiserver's (`ValidateEventCreate` and `legacyValidateEvent` in
//! `pkg/apis/core/validation/events.go`, run on the internal type, so the field names are the
//! internal ones: `involvedObject`, `message`). Updates of Events are not validated.

use serde_json::Value;

use crate::error::{ApiError, Cause};
use crate::resource::ResourceInfo;

/// Longest `reportingInstance`, `action` and `reason`, in bytes.
const SHORT_LIMIT: usize = 128;
/// Longest note (`message` internally), in bytes.
const NOTE_LIMIT: usize = 1024;

/// Refuses a new object of a validated built-in kind that kube-apiserver would refuse: 422
/// Invalid naming every offending field. Other kinds pass.
pub fn validate_create(info: &ResourceInfo, obj: &Value) -> Result<(), ApiError> {
    let causes = match (info.group.as_str(), info.plural.as_str()) {
        ("events.k8s.io", "events") => event_causes(obj),
        _ => Vec::new(),
    };
    if causes.is_empty() {
        return Ok(());
    }
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let list = causes.iter().map(|c| format!("{}: {}", c.field, c.message)).collect::<Vec<_>>();
    let message = if list.len() == 1 {
        format!("{} \"{name}\" is invalid: {}", info.qualified_kind(), list[0])
    } else {
        format!("{} \"{name}\" is invalid: [{}]", info.qualified_kind(), list.join(", "))
    };
    Err(ApiError::Invalid { message, causes })
}

fn required(field: &str) -> Cause {
    Cause { reason: "FieldValueRequired".into(), field: field.into(), message: "Required value".into() }
}

fn invalid(field: &str, value: &str, detail: &str) -> Cause {
    Cause {
        reason: "FieldValueInvalid".into(),
        field: field.into(),
        message: format!("Invalid value: {value:?}: {detail}"),
    }
}

fn text<'a>(obj: &'a Value, key: &str) -> &'a str {
    obj[key].as_str().unwrap_or_default()
}

/// What kube-apiserver refuses in an `events.k8s.io/v1` Event on create.
fn event_causes(obj: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let namespace = obj["metadata"]["namespace"].as_str().unwrap_or_default();
    if text(obj, "eventTime").is_empty() {
        causes.push(required("eventTime"));
    } else {
        let regarding_ns = obj["regarding"]["namespace"].as_str().unwrap_or_default();
        if regarding_ns.is_empty() && namespace != "default" && namespace != "kube-system" {
            causes.push(invalid("involvedObject.namespace", regarding_ns, "does not match event.namespace"));
        }
        let controller = text(obj, "reportingController");
        if controller.is_empty() {
            causes.push(required("reportingController"));
        } else if let Some(problem) = qualified_name_problem(controller) {
            causes.push(invalid("reportingController", controller, &problem));
        }
        for (field, limit) in
            [("reportingInstance", SHORT_LIMIT), ("action", SHORT_LIMIT), ("reason", SHORT_LIMIT)]
        {
            let value = text(obj, field);
            if value.is_empty() {
                causes.push(required(field));
            } else if value.len() > limit {
                causes.push(invalid(field, "", &format!("can have at most {limit} characters")));
            }
        }
        if text(obj, "note").len() > NOTE_LIMIT {
            causes.push(invalid("message", "", &format!("can have at most {NOTE_LIMIT} characters")));
        }
    }
    if let Some(series) = obj.get("series").filter(|s| !s.is_null()) {
        if series["count"].as_i64().unwrap_or_default() < 2 {
            causes.push(invalid("series.count", "", "should be at least 2"));
        }
        if series["lastObservedTime"].as_str().unwrap_or_default().is_empty() {
            causes.push(required("series.lastObservedTime"));
        }
    }
    let type_ = text(obj, "type");
    if type_ != "Normal" && type_ != "Warning" {
        causes.push(invalid("type", "", &format!("has invalid value: {type_}")));
    }
    for (field, internal) in [
        ("deprecatedFirstTimestamp", "firstTimestamp"),
        ("deprecatedLastTimestamp", "lastTimestamp"),
        ("deprecatedSource", "source"),
    ] {
        let set = obj.get(field).is_some_and(|v| !v.is_null() && *v != Value::Object(Default::default()));
        if set {
            causes.push(invalid(internal, "", "needs to be unset"));
        }
    }
    if obj["deprecatedCount"].as_i64().is_some_and(|c| c != 0) {
        causes.push(invalid("count", "", "needs to be unset"));
    }
    causes
}

/// Why `value` is not a Kubernetes qualified name (`[prefix/]name`: a DNS-subdomain prefix, a
/// name of at most 63 alphanumerics, `-`, `_` or `.`, starting and ending alphanumeric).
fn qualified_name_problem(value: &str) -> Option<String> {
    let (prefix, name) = match value.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, value),
    };
    if let Some(prefix) = prefix {
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if prefix.is_empty() || prefix.len() > 253 || !prefix.split('.').all(label_ok) {
            return Some("prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character".into());
        }
    }
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && edge_ok(name.chars().next())
        && edge_ok(name.chars().last());
    if name_ok {
        None
    } else {
        Some("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character".into())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(patch: Value) -> Value {
        let mut event = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "podinfo.17a", "namespace": "test"},
            "eventTime": "2026-11-22T13:00:00.000000Z",
            "reportingController": "serin", "reportingInstance": "serin-0",
            "action": "Advance", "reason": "Advance", "note": "weight 10", "type": "Normal",
            "regarding": {"kind": "Canary", "namespace": "test", "name": "podinfo"},
        });
        if let (Some(e), Some(p)) = (event.as_object_mut(), patch.as_object()) {
            for (k, v) in p {
                e.insert(k.clone(), v.clone());
            }
        }
        event
    }

    fn fields(obj: &Value) -> Vec<String> {
        event_causes(obj).into_iter().map(|c| c.field).collect()
    }

    #[test]
    fn event_rules_name_each_offending_field() {
        let cases: Vec<(&str, Value, Vec<&str>)> = vec![
            ("a complete event", json!({}), vec![]),
            (
                "series of two",
                json!({"series": {"count": 2, "lastObservedTime": "2026-11-22T13:00:01.000000Z"}}),
                vec![],
            ),
            ("no eventTime", json!({"eventTime": null}), vec!["eventTime"]),
            ("no reportingController", json!({"reportingController": ""}), vec!["reportingController"]),
            (
                "bad reportingController",
                json!({"reportingController": "Serin Controller"}),
                vec!["reportingController"],
            ),
            ("prefixed reportingController", json!({"reportingController": "serin.dev/controller"}), vec![]),
            ("no reportingInstance", json!({"reportingInstance": null}), vec!["reportingInstance"]),
            ("long action", json!({"action": "a".repeat(129)}), vec!["action"]),
            ("no reason", json!({"reason": ""}), vec!["reason"]),
            ("note of 1024 bytes", json!({"note": "a".repeat(1024)}), vec![]),
            ("note over 1024 bytes", json!({"note": "é".repeat(513)}), vec!["message"]),
            (
                "series of one",
                json!({"series": {"count": 1, "lastObservedTime": "2026-11-22T13:00:01.000000Z"}}),
                vec!["series.count"],
            ),
            ("series without time", json!({"series": {"count": 3}}), vec!["series.lastObservedTime"]),
            ("bad type", json!({"type": "Info"}), vec!["type"]),
            (
                "deprecated fields set",
                json!({"deprecatedCount": 2, "deprecatedSource": {"component": "x"}}),
                vec!["source", "count"],
            ),
            (
                "regarding without namespace",
                json!({"regarding": {"kind": "Canary", "name": "podinfo"}}),
                vec!["involvedObject.namespace"],
            ),
        ];
        for (what, patch, want) in cases {
            assert_eq!(fields(&event(patch)), want, "{what}");
        }
    }

    #[test]
    fn the_error_reads_like_the_api_servers() {
        let info = crate::resource::builtins()
            .into_iter()
            .find(|r| r.group == "events.k8s.io" && r.plural == "events")
            .expect("events.k8s.io/v1 Events are served");
        let Err(ApiError::Invalid { message, causes }) =
            validate_create(&info, &event(json!({"action": ""})))
        else {
            panic!("an event without action is refused");
        };
        assert_eq!(message, "Event.events.k8s.io \"podinfo.17a\" is invalid: action: Required value");
        assert_eq!(causes.len(), 1);
        assert!(validate_create(&info, &event(json!({}))).is_ok());
    }
}
