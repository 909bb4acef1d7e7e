//! Offline validation of manifests (`serin validate`): what a GitOps repository's CI runs
//! before merge. Each Serin document goes through the same three layers the cluster applies —
//! the CRD's structural schema, its CEL rules, and Serin's semantic rules — and every problem
//! is reported as `file:doc: field.path: message`.

pub mod load;
pub mod schema;

use std::collections::HashSet;
use std::fmt;
use std::path::PathBuf;

use kube::core::cel::{CompiledSchema, ErrorKind, Validator, compile_schema};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::crd::validation::{self, FieldError};
use crate::crd::{self, AlertProvider, Canary, MetricTemplate, Provider};

/// Serin's resource kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `Canary`.
    Canary,
    /// `MetricTemplate`.
    MetricTemplate,
    /// `AlertProvider`.
    AlertProvider,
}

impl Kind {
    fn from_name(kind: &str) -> Option<Kind> {
        match kind {
            "Canary" => Some(Kind::Canary),
            "MetricTemplate" => Some(Kind::MetricTemplate),
            "AlertProvider" => Some(Kind::AlertProvider),
            _ => None,
        }
    }
}

/// A problem found in a file, with where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The file.
    pub file: PathBuf,
    /// 1-based document number, when the problem is inside a document.
    pub doc: Option<usize>,
    /// The problem.
    pub error: FieldError,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.file.display())?;
        if let Some(doc) = self.doc {
            write!(f, "{doc}:")?;
        }
        if self.error.path.is_empty() {
            write!(f, " {}", self.error.message)
        } else {
            write!(f, " {}", self.error)
        }
    }
}

/// The outcome of validating a set of paths.
#[derive(Debug, Default)]
pub struct Report {
    /// Serin documents checked.
    pub checked: usize,
    /// Every problem found, in file and document order.
    pub problems: Vec<Problem>,
}

/// The schemas of Serin's CRDs, compiled once for a run of many documents.
pub struct Validators {
    cel: Validator,
    schemas: Vec<(Kind, Value, CompiledSchema)>,
    default_provider: Option<Provider>,
}

impl Validators {
    /// Prepares the schemas; `default_provider` is the controller's `--provider`.
    pub fn new(default_provider: Option<Provider>) -> Self {
        let schemas = crd::all_crds()
            .into_iter()
            .filter_map(|crd| {
                let kind = Kind::from_name(&crd.spec.names.kind)?;
                let schema = crd.spec.versions.first()?.schema.as_ref()?.open_api_v3_schema.as_ref()?;
                let schema = serde_json::to_value(schema).ok()?;
                let compiled = compile_schema(&schema);
                Some((kind, schema, compiled))
            })
            .collect();
        Self { cel: Validator::new(), schemas, default_provider }
    }

    /// Validates one document. `Ok(None)`: not a Serin resource, nothing to check.
    pub fn validate(&self, value: &Value) -> Result<Option<Kind>, Vec<FieldError>> {
        let Some(object) = value.as_object() else {
            return Err(vec![FieldError::new("", "document is not a mapping")]);
        };
        let api_version = object.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
        let kind_name = object.get("kind").and_then(Value::as_str).unwrap_or_default();
        let kind = Kind::from_name(kind_name);
        if api_version == crd::FLAGGER_API_VERSION && kind.is_some() {
            return Err(vec![FieldError::new(
                "apiVersion",
                format!("{api_version} is Flagger's API; change apiVersion to {}", crd::API_VERSION),
            )]);
        }
        if api_version.split('/').next() != Some(crd::GROUP) {
            return Ok(None);
        }
        if api_version != crd::API_VERSION {
            return Err(vec![FieldError::new(
                "apiVersion",
                format!("unknown version {api_version:?}; Serin serves {}", crd::API_VERSION),
            )]);
        }
        let Some(kind) = kind else {
            return Err(vec![FieldError::new(
                "kind",
                format!(
                    "unknown kind {kind_name:?}; {} has Canary, MetricTemplate and AlertProvider",
                    crd::API_VERSION
                ),
            )]);
        };
        let mut errors = check_metadata(object.get("metadata"));
        if let Some((_, schema, compiled)) = self.schemas.iter().find(|(k, _, _)| *k == kind) {
            // The generated schema describes `spec` and `status`; the object meta fields are
            // the API server's own and were checked above.
            let mut body = object.clone();
            for meta in ["apiVersion", "kind", "metadata"] {
                body.remove(meta);
            }
            schema::check(schema, &Value::Object(body), "", &mut errors);
            let structural_ok = errors.is_empty();
            if let Err(cel_errors) = self.cel.validate_compiled(compiled, value, None) {
                for e in cel_errors.iter() {
                    // On a structurally broken document, CEL evaluation errors only echo the
                    // structural problem already reported.
                    if structural_ok || e.kind == ErrorKind::ValidationFailure {
                        errors.push(FieldError::new(e.field_path.clone(), e.message.clone()));
                    }
                }
            }
        }
        let semantic_errors = match kind {
            Kind::Canary => {
                semantic::<Canary>(value, |c| validation::validate_canary(&c.spec, self.default_provider))
            }
            Kind::MetricTemplate => {
                semantic::<MetricTemplate>(value, |t| validation::validate_metric_template(&t.spec))
            }
            Kind::AlertProvider => {
                semantic::<AlertProvider>(value, |a| validation::validate_alert_provider(&a.spec))
            }
        };
        // One line per mistake: a field the schema already rejected gets no second opinion.
        let reported: HashSet<String> = errors.iter().map(|e| e.path.clone()).collect();
        errors.extend(semantic_errors.into_iter().filter(|e| !reported.contains(&e.path)));
        dedup_in_order(&mut errors);
        if errors.is_empty() { Ok(Some(kind)) } else { Err(errors) }
    }
}

/// Runs the semantic rules when the document deserializes into its type; when it does not,
/// the structural check has already said why.
fn semantic<T: DeserializeOwned>(value: &Value, rules: impl Fn(&T) -> Vec<FieldError>) -> Vec<FieldError> {
    match serde_json::from_value::<T>(value.clone()) {
        Ok(typed) => rules(&typed),
        Err(_) => Vec::new(),
    }
}

fn check_metadata(metadata: Option<&Value>) -> Vec<FieldError> {
    let name = metadata.and_then(|m| m.get("name")).and_then(Value::as_str).unwrap_or_default();
    if name.is_empty() {
        return vec![FieldError::new("metadata.name", "required field is missing")];
    }
    let valid = name.len() <= 253
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    if valid {
        Vec::new()
    } else {
        vec![FieldError::new(
            "metadata.name",
            format!("{name:?} is not a valid name (lower-case letters, digits, '-' and '.')"),
        )]
    }
}

fn dedup_in_order(errors: &mut Vec<FieldError>) {
    let mut seen = HashSet::new();
    errors.retain(|e| seen.insert(e.clone()));
}

/// Validates every manifest under `paths`.
pub fn validate_paths(paths: &[PathBuf], default_provider: Option<Provider>) -> Report {
    let validators = Validators::new(default_provider);
    let (files, unreadable) = load::collect_files(paths);
    let mut report = Report::default();
    for (file, message) in unreadable {
        report.problems.push(Problem { file, doc: None, error: FieldError::new("", message) });
    }
    for file in files {
        let text = match std::fs::read_to_string(&file) {
            Ok(text) => text,
            Err(e) => {
                report.problems.push(Problem { file, doc: None, error: FieldError::new("", e.to_string()) });
                continue;
            }
        };
        for doc in load::parse_documents(&text) {
            let result =
                doc.value.map_err(|e| vec![FieldError::new("", e)]).and_then(|v| validators.validate(&v));
            match result {
                Ok(Some(_)) => report.checked += 1,
                Ok(None) => {}
                Err(errors) => {
                    report.checked += 1;
                    report.problems.extend(errors.into_iter().map(|error| Problem {
                        file: file.clone(),
                        doc: Some(doc.index),
                        error,
                    }));
                }
            }
        }
    }
    report
}
