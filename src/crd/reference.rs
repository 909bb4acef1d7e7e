//! The field reference in Markdown, generated from the same schemas as the CRDs, so the
//! documentation cannot drift from the types (`serin crds --reference`, checked in as
//! `docs/crd-reference.md`).

use std::fmt::Write;

use serde_json::Value;

use super::all_crds;

/// Renders every CRD's fields as Markdown tables.
pub fn markdown() -> String {
    let mut out = String::from(
        "# CRD reference\n\nGenerated from the Rust types by `serin crds --reference`; do not edit by hand.\n\
         Field names and meanings follow Flagger's `flagger.app/v1beta1` where Flagger has the field.\n",
    );
    for crd in all_crds() {
        let kind = &crd.spec.names.kind;
        let Some(version) = crd.spec.versions.first() else { continue };
        let Some(schema) = version.schema.as_ref().and_then(|s| s.open_api_v3_schema.as_ref()) else {
            continue;
        };
        let Ok(schema) = serde_json::to_value(schema) else { continue };
        let _ = write!(out, "\n## {kind} (`{}/{}`)\n", crd.spec.group, version.name);
        for part in ["spec", "status"] {
            let Some(sub) = schema.pointer(&format!("/properties/{part}")) else { continue };
            let _ = write!(out, "\n### `{part}`\n\n| Field | Type | Description |\n| --- | --- | --- |\n");
            rows(sub, part, &mut out);
        }
    }
    out
}

fn rows(schema: &Value, path: &str, out: &mut String) {
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else { return };
    for (name, field) in properties {
        let field_path = format!("{path}.{name}");
        let mut description =
            field.get("description").and_then(Value::as_str).unwrap_or("").replace('\n', " ");
        let mut notes = Vec::new();
        if required.contains(&name.as_str()) {
            notes.push("required".to_string());
        }
        if let Some(values) = field.get("enum").and_then(Value::as_array) {
            let names: Vec<String> = values
                .iter()
                .filter(|v| *v != "")
                .map(|v| format!("`{}`", v.as_str().unwrap_or("")))
                .collect();
            notes.push(format!("one of {}", names.join(", ")));
        }
        let bound = |key: &str| field.get(key).and_then(Value::as_f64);
        match (bound("minimum"), bound("maximum")) {
            (Some(min), Some(max)) => notes.push(format!("{min}–{max}")),
            (Some(min), None) => notes.push(format!("≥ {min}")),
            (None, Some(max)) => notes.push(format!("≤ {max}")),
            (None, None) => {}
        }
        for rule in field.get("x-kubernetes-validations").and_then(Value::as_array).into_iter().flatten() {
            if let Some(message) = rule.get("message").and_then(Value::as_str) {
                notes.push(format!("rule: {message}"));
            }
        }
        if !notes.is_empty() {
            description = format!("{description} ({})", notes.join("; "));
        }
        let _ = writeln!(
            out,
            "| `{field_path}` | {} | {} |",
            type_name(field),
            description.trim().replace('|', "\\|")
        );
        let nested = match field.get("type").and_then(Value::as_str) {
            Some("array") => field.get("items").map(|items| (items, format!("{field_path}[]"))),
            Some("object") => match field.get("additionalProperties") {
                Some(values) if values.is_object() => Some((values, format!("{field_path}.<key>"))),
                _ => Some((field, field_path.clone())),
            },
            _ => None,
        };
        if let Some((nested, nested_path)) = nested {
            if std::ptr::eq(nested, field) {
                rows(field, &field_path, out);
            } else {
                rows(nested, &nested_path, out);
            }
        }
    }
}

fn type_name(field: &Value) -> String {
    if field.get("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true) {
        return "int or string".into();
    }
    match field.get("type").and_then(Value::as_str) {
        Some("array") => format!("[]{}", field.get("items").map(type_name).unwrap_or_default()),
        Some("object") => match field.get("additionalProperties") {
            Some(values) if values.is_object() => format!("map[string]{}", type_name(values)),
            _ => "object".into(),
        },
        Some("string") if field.get("format").and_then(Value::as_str) == Some("date-time") => {
            "timestamp".into()
        }
        Some(other) => other.into(),
        None => "any".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_fields_with_their_constraints() {
        let md = markdown();
        for needle in [
            "## Canary (`serin.dev/v1alpha1`)",
            "## MetricTemplate (`serin.dev/v1alpha1`)",
            "## AlertProvider (`serin.dev/v1alpha1`)",
            "| `spec.analysis.stepWeight` | integer |",
            "| `spec.analysis.metrics[].thresholdRange.min` | number |",
            "| `spec.service.targetPort` | int or string |",
            "| `spec.provider.headers` | map[string][]string |",
            "rule: maxWeight must be at least stepWeight",
            "| `status.phase` | string |",
            "`WaitingPromotion`",
        ] {
            assert!(md.contains(needle), "missing {needle:?}");
        }
    }
}
