//! Structural validation of a document against a CRD's OpenAPI v3 schema, the checks the API
//! server makes before CEL: types, required fields, enums, ranges, lengths, patterns, and —
//! stricter than the API server, which silently prunes them — unknown fields, so a typo such
//! as `stepWieght` is an error instead of a setting that never takes effect.

use regex::Regex;
use serde_json::{Map, Value};

use crate::crd::canary::DURATION_PATTERN;
use crate::crd::validation::FieldError;

/// Checks `value` against `schema`, appending every problem found below `path`.
pub fn check(schema: &Value, value: &Value, path: &str, errors: &mut Vec<FieldError>) {
    if value.is_null() {
        // The API server prunes nulls of non-nullable fields; `required` reports what is missing.
        return;
    }
    if flag(schema, "x-kubernetes-int-or-string") {
        if !(value.is_i64() || value.is_u64() || value.is_string()) {
            errors.push(FieldError::new(
                path,
                format!("expected an integer or a string, got {}", describe(value)),
            ));
        }
        return;
    }
    let preserve_unknown = flag(schema, "x-kubernetes-preserve-unknown-fields");
    let Some(expected) = schema.get("type").and_then(Value::as_str) else {
        return;
    };
    if !type_matches(expected, value) {
        errors
            .push(FieldError::new(path, format!("expected {}, got {}", article(expected), describe(value))));
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        let names: Vec<String> = allowed.iter().filter(|v| *v != "").map(Value::to_string).collect();
        errors.push(FieldError::new(
            path,
            format!("unsupported value {}; expected one of: {}", value, names.join(", ")),
        ));
    }
    match value {
        Value::String(text) => check_string(schema, text, path, errors),
        Value::Number(_) => check_number(schema, value, path, errors),
        Value::Array(items) => check_array(schema, items, path, errors),
        Value::Object(fields) => check_object(schema, fields, preserve_unknown, path, errors),
        Value::Bool(_) | Value::Null => {}
    }
}

fn flag(schema: &Value, key: &str) -> bool {
    schema.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn type_matches(expected: &str, value: &Value) -> bool {
    match expected {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        _ => true,
    }
}

fn article(type_name: &str) -> String {
    match type_name {
        "object" | "array" | "integer" => format!("an {type_name}"),
        other => format!("a {other}"),
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => format!("string {s:?}"),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "an object".into(),
    }
}

fn check_string(schema: &Value, text: &str, path: &str, errors: &mut Vec<FieldError>) {
    let chars = text.chars().count() as u64;
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && chars < min
    {
        let message = if min == 1 {
            "must not be empty".to_string()
        } else {
            format!("must be at least {min} characters")
        };
        errors.push(FieldError::new(path, message));
    }
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && chars > max
    {
        errors.push(FieldError::new(path, format!("must be at most {max} characters, got {chars}")));
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        match Regex::new(pattern) {
            Ok(re) if !re.is_match(text) => {
                let message = if pattern == DURATION_PATTERN {
                    format!(
                        "{text:?} is not a duration: write a number and unit (ms, s, m, h), e.g. 30s or 1m30s"
                    )
                } else {
                    format!("{text:?} does not match the pattern {pattern}")
                };
                errors.push(FieldError::new(path, message));
            }
            Ok(_) => {}
            Err(e) => errors.push(FieldError::new(path, format!("schema pattern {pattern} is invalid: {e}"))),
        }
    }
}

fn check_number(schema: &Value, value: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let Some(n) = value.as_f64() else { return };
    if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
        && n < min
    {
        errors.push(FieldError::new(path, format!("must be at least {}, got {value}", trim_float(min))));
    }
    if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
        && n > max
    {
        errors.push(FieldError::new(path, format!("must be at most {}, got {value}", trim_float(max))));
    }
}

fn trim_float(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 { format!("{}", x as i64) } else { x.to_string() }
}

fn check_array(schema: &Value, items: &[Value], path: &str, errors: &mut Vec<FieldError>) {
    let len = items.len() as u64;
    if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
        && len < min
    {
        errors.push(FieldError::new(path, format!("needs at least {min} item(s)")));
    }
    if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
        && len > max
    {
        errors.push(FieldError::new(path, format!("takes at most {max} items, got {len}")));
    }
    if let Some(item_schema) = schema.get("items") {
        for (i, item) in items.iter().enumerate() {
            check(item_schema, item, &format!("{path}[{i}]"), errors);
        }
    }
}

fn check_object(
    schema: &Value,
    fields: &Map<String, Value>,
    preserve_unknown: bool,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    let properties = schema.get("properties").and_then(Value::as_object);
    for required in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
        if let Some(name) = required.as_str()
            && fields.get(name).is_none_or(Value::is_null)
        {
            errors.push(FieldError::new(join(path, name), "required field is missing"));
        }
    }
    let additional = schema.get("additionalProperties");
    for (name, value) in fields {
        if let Some(property) = properties.and_then(|p| p.get(name)) {
            check(property, value, &join(path, name), errors);
        } else if let Some(additional) = additional.filter(|a| a.is_object()) {
            check(additional, value, &format!("{path}[{name}]"), errors);
        } else if properties.is_some() && !preserve_unknown && additional.is_none() {
            let mut message = "unknown field".to_string();
            if let Some(guess) = properties.and_then(|p| closest(name, p.keys())) {
                message.push_str(&format!(" (did you mean {guess:?}?)"));
            }
            errors.push(FieldError::new(join(path, name), message));
        }
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() { name.to_string() } else { format!("{path}.{name}") }
}

/// The known field nearest to a misspelt one, when it is close enough to be a likely typo.
fn closest<'a>(name: &str, candidates: impl Iterator<Item = &'a String>) -> Option<&'a str> {
    let lower = name.to_ascii_lowercase();
    candidates
        .map(|c| (edit_distance(&lower, &c.to_ascii_lowercase()), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.as_str())
}

/// Damerau-Levenshtein distance (optimal string alignment), so swapped letters count as one edit.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn errors(schema: Value, value: Value) -> Vec<String> {
        let mut errors = Vec::new();
        check(&schema, &value, "spec", &mut errors);
        errors.into_iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn reports_each_structural_problem() {
        let schema = json!({
            "type": "object",
            "required": ["port"],
            "properties": {
                "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                "name": {"type": "string", "minLength": 1, "maxLength": 5},
                "kind": {"type": "string", "enum": ["A", "B"]},
                "interval": {"type": "string", "pattern": DURATION_PATTERN},
                "list": {"type": "array", "maxItems": 1, "items": {"type": "boolean"}},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "port2": {"x-kubernetes-int-or-string": true},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
            }
        });
        let cases = [
            (json!({"port": 80}), vec![]),
            (json!({}), vec!["spec.port: required field is missing"]),
            (json!({"port": 0}), vec!["spec.port: must be at least 1, got 0"]),
            (json!({"port": 70000}), vec!["spec.port: must be at most 65535, got 70000"]),
            (json!({"port": "80"}), vec!["spec.port: expected an integer, got string \"80\""]),
            (json!({"port": 8.5}), vec!["spec.port: expected an integer, got number 8.5"]),
            (json!({"port": 1, "name": ""}), vec!["spec.name: must not be empty"]),
            (json!({"port": 1, "name": "abcdef"}), vec!["spec.name: must be at most 5 characters, got 6"]),
            (
                json!({"port": 1, "kind": "C"}),
                vec!["spec.kind: unsupported value \"C\"; expected one of: \"A\", \"B\""],
            ),
            (
                json!({"port": 1, "interval": "1 minute"}),
                vec![
                    "spec.interval: \"1 minute\" is not a duration: write a number and unit (ms, s, m, h), e.g. 30s or 1m30s",
                ],
            ),
            (
                json!({"port": 1, "list": [true, 1]}),
                vec![
                    "spec.list: takes at most 1 items, got 2",
                    "spec.list[1]: expected a boolean, got number 1",
                ],
            ),
            (json!({"port": 1, "labels": {"a": 1}}), vec!["spec.labels[a]: expected a string, got number 1"]),
            (
                json!({"port": 1, "port2": true}),
                vec!["spec.port2: expected an integer or a string, got boolean true"],
            ),
            (json!({"port": 1, "port2": "http", "free": {"anything": {"goes": 1}}}), vec![]),
            (json!({"port": 1, "prot": 1}), vec!["spec.prot: unknown field (did you mean \"port\"?)"]),
            (json!({"port": 1, "zzzzzz": 1}), vec!["spec.zzzzzz: unknown field"]),
            (json!({"port": 1, "name": null}), vec![]),
            (json!({"port": null}), vec!["spec.port: required field is missing"]),
        ];
        for (value, want) in cases {
            assert_eq!(errors(schema.clone(), value.clone()), want, "{value}");
        }
    }

    #[test]
    fn suggests_fields_for_typos() {
        let fields = ["stepWeight".to_string(), "stepWeights".to_string(), "maxWeight".to_string()];
        assert_eq!(closest("stepWieght", fields.iter()), Some("stepWeight"));
        assert_eq!(closest("maxweight", fields.iter()), Some("maxWeight"));
        assert_eq!(closest("webhooks", fields.iter()), None);
        assert_eq!(edit_distance("abc", "acb"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
