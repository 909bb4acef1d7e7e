//! Where `serin check` and `serin replay` get the Canary and its MetricTemplates: manifest
//! files (the Canary's file or directory plus `--templates`), or the cluster of the kubeconfig
//! when `--canary` names a Canary instead of a path.
//!
//! Documents of kind `Canary` and `MetricTemplate` with apiVersion `serin.dev/v1alpha1` or
//! Flagger's `flagger.app/v1beta1` are read; everything else is skipped. A template document
//! without `metadata.namespace` serves a `templateRef` from any namespace (in a GitOps
//! repository the namespace usually comes from the kustomization). Credentials of a template's
//! `secretRef` are read only from the cluster; from files the template's queries go out
//! without them (a note says so).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use serde_json::Value;
use thiserror::Error;
use tracing::debug;

use crate::crd::{Canary, MetricTemplate};
use crate::manifest::load::{collect_files, parse_documents};

/// API versions whose Canary and MetricTemplate documents are read.
const API_VERSIONS: [&str; 2] = ["serin.dev/v1alpha1", "flagger.app/v1beta1"];

/// Why the Canary or its templates could not be loaded.
#[derive(Debug, Error)]
pub enum SourceError {
    /// A path could not be read.
    #[error("{path}: {reason}")]
    Read {
        /// The path.
        path: PathBuf,
        /// The error.
        reason: String,
    },
    /// A document is not valid YAML or not a valid Canary / MetricTemplate.
    #[error("{path}:{doc}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based document number.
        doc: usize,
        /// The error.
        reason: String,
    },
    /// No Canary in the given files.
    #[error("no Canary found in {0}")]
    NoCanary(String),
    /// Several Canaries; which one is meant is unclear.
    #[error("{path} holds several Canaries ({names}); pass a file with one")]
    SeveralCanaries {
        /// The path given.
        path: String,
        /// Their names.
        names: String,
    },
    /// The cluster could not be asked.
    #[error("{0}")]
    Cluster(String),
}

/// A Canary with the MetricTemplates and Secrets its checks may need.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The Canary, with `metadata.namespace` set.
    pub canary: Canary,
    /// Templates found; a template without namespace matches any namespace.
    pub templates: Vec<MetricTemplate>,
    /// Decoded Secret data by (namespace, name), for templates' `secretRef` (cluster only).
    pub secrets: BTreeMap<(String, String), BTreeMap<String, String>>,
    /// Things the user should know (e.g. credentials not read from files).
    pub notes: Vec<String>,
}

impl Loaded {
    /// The template `namespace/name`, as the analysis' lookup wants it.
    pub fn template(&self, namespace: &str, name: &str) -> Option<MetricTemplate> {
        let named = |t: &&MetricTemplate| t.metadata.name.as_deref() == Some(name);
        let exact =
            self.templates.iter().filter(named).find(|t| t.metadata.namespace.as_deref() == Some(namespace));
        exact
            .or_else(|| self.templates.iter().filter(named).find(|t| t.metadata.namespace.is_none()))
            .cloned()
    }

    /// The Canary's namespace.
    pub fn namespace(&self) -> &str {
        self.canary.metadata.namespace.as_deref().unwrap_or("default")
    }

    /// The Canary's name.
    pub fn name(&self) -> &str {
        self.canary.metadata.name.as_deref().unwrap_or_default()
    }
}

fn kind_of(value: &Value) -> Option<&str> {
    let api_version = value.get("apiVersion")?.as_str()?;
    API_VERSIONS.contains(&api_version).then_some(())?;
    value.get("kind")?.as_str()
}

/// Serin's types carry Serin's apiVersion; a Flagger document is read as the same spec.
fn as_serin(mut value: Value) -> Value {
    if let Some(object) = value.as_object_mut() {
        object.insert("apiVersion".into(), Value::String(API_VERSIONS[0].into()));
    }
    value
}

/// The Canaries and MetricTemplates of the files under `paths`.
fn read_documents(paths: &[PathBuf]) -> Result<(Vec<Canary>, Vec<MetricTemplate>), SourceError> {
    let (files, problems) = collect_files(paths);
    if let Some((path, reason)) = problems.into_iter().next() {
        return Err(SourceError::Read { path, reason });
    }
    let mut canaries = Vec::new();
    let mut templates = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| SourceError::Read { path: path.clone(), reason: e.to_string() })?;
        for doc in parse_documents(&text) {
            let parse_error =
                |reason: String| SourceError::Parse { path: path.clone(), doc: doc.index, reason };
            let value = doc.value.clone().map_err(parse_error)?;
            match kind_of(&value) {
                Some("Canary") => canaries.push(
                    serde_json::from_value(as_serin(value))
                        .map_err(|e| parse_error(format!("Canary: {e}")))?,
                ),
                Some("MetricTemplate") => templates.push(
                    serde_json::from_value(as_serin(value))
                        .map_err(|e| parse_error(format!("MetricTemplate: {e}")))?,
                ),
                _ => {}
            }
        }
    }
    Ok((canaries, templates))
}

/// Loads the one Canary under `canary_path` (a file or directory) and the MetricTemplates
/// found there and under `template_paths`. `namespace` applies to a Canary without one
/// (default `default`).
pub fn load_files(
    canary_path: &Path,
    template_paths: &[PathBuf],
    namespace: Option<&str>,
) -> Result<Loaded, SourceError> {
    let (mut canaries, mut templates) = read_documents(&[canary_path.to_path_buf()])?;
    let (_, more) = read_documents(template_paths)?;
    templates.extend(more);
    let shown = canary_path.display().to_string();
    let mut canary = match canaries.len() {
        0 => return Err(SourceError::NoCanary(shown)),
        1 => canaries.remove(0),
        _ => {
            let names: Vec<&str> = canaries.iter().filter_map(|c| c.metadata.name.as_deref()).collect();
            return Err(SourceError::SeveralCanaries { path: shown, names: names.join(", ") });
        }
    };
    if canary.metadata.namespace.is_none() {
        canary.metadata.namespace = Some(namespace.unwrap_or("default").to_string());
    }
    let notes = templates
        .iter()
        .filter(|t| t.spec.provider.secret_ref.is_some())
        .map(|t| {
            format!(
                "MetricTemplate {}: its secretRef is not read from files, so its queries are sent without credentials",
                t.metadata.name.as_deref().unwrap_or_default()
            )
        })
        .collect();
    debug!(canary = ?canary.metadata.name, templates = templates.len(), "loaded manifests");
    Ok(Loaded { canary, templates, secrets: BTreeMap::new(), notes })
}

fn cluster_error(what: String) -> impl FnOnce(kube::Error) -> SourceError {
    move |e| SourceError::Cluster(format!("{what}: {e}"))
}

/// Loads the Canary `namespace/name` from the cluster, the MetricTemplates its checks
/// reference (files under `template_paths` take precedence) and their Secrets.
pub async fn load_cluster(
    client: kube::Client,
    name: &str,
    namespace: &str,
    template_paths: &[PathBuf],
) -> Result<Loaded, SourceError> {
    let canaries: Api<Canary> = Api::namespaced(client.clone(), namespace);
    let mut canary =
        canaries.get(name).await.map_err(cluster_error(format!("reading Canary {namespace}/{name}")))?;
    if canary.metadata.namespace.is_none() {
        canary.metadata.namespace = Some(namespace.to_string());
    }
    let (_, templates) = read_documents(template_paths)?;
    let mut loaded = Loaded { canary, templates, secrets: BTreeMap::new(), notes: Vec::new() };
    let references: Vec<(String, String)> = loaded
        .canary
        .spec
        .analysis
        .metrics
        .iter()
        .flatten()
        .filter_map(|m| m.template_ref.as_ref())
        .map(|r| (r.namespace.clone().unwrap_or_else(|| namespace.to_string()), r.name.clone()))
        .collect();
    for (ns, template_name) in references {
        if loaded.template(&ns, &template_name).is_some() {
            continue;
        }
        let api: Api<MetricTemplate> = Api::namespaced(client.clone(), &ns);
        let found = api
            .get_opt(&template_name)
            .await
            .map_err(cluster_error(format!("reading MetricTemplate {ns}/{template_name}")))?;
        if let Some(mut template) = found {
            template.metadata.namespace = Some(ns.clone());
            loaded.templates.push(template);
        }
    }
    for template in &loaded.templates {
        let (Some(secret), Some(ns)) = (&template.spec.provider.secret_ref, &template.metadata.namespace)
        else {
            continue;
        };
        let api: Api<Secret> = Api::namespaced(client.clone(), ns);
        match api.get_opt(&secret.name).await {
            Ok(Some(found)) => {
                let data = found
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|(k, v)| String::from_utf8(v.0).ok().map(|v| (k, v)))
                    .collect();
                loaded.secrets.insert((ns.clone(), secret.name.clone()), data);
            }
            Ok(None) => loaded.notes.push(format!("Secret {ns}/{} not found", secret.name)),
            Err(e) => loaded.notes.push(format!("Secret {ns}/{}: {e}", secret.name)),
        }
    }
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_canary_and_templates_from_one_file() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("app.yaml");
        std::fs::write(
            &file,
            r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: podinfo}
---
apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: podinfo}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  service: {port: 80}
  analysis:
    stepWeight: 10
    metrics: [{name: errors, templateRef: {name: errors}, thresholdRange: {max: 1}}]
---
apiVersion: serin.dev/v1alpha1
kind: MetricTemplate
metadata: {name: errors}
spec:
  provider: {type: prometheus, secretRef: {name: prom}}
  query: up
"#,
        )
        .expect("write");
        let other = dir.path().join("shared.yaml");
        std::fs::write(
            &other,
            "apiVersion: serin.dev/v1alpha1\nkind: MetricTemplate\nmetadata: {name: errors, namespace: shared}\nspec:\n  provider: {type: prometheus}\n  query: down\n",
        )
        .expect("write");
        let loaded = load_files(&file, std::slice::from_ref(&other), Some("test")).expect("loads");
        assert_eq!((loaded.namespace(), loaded.name()), ("test", "podinfo"));
        assert_eq!(loaded.template("anywhere", "errors").map(|t| t.spec.query), Some("up".into()));
        assert_eq!(loaded.template("shared", "errors").map(|t| t.spec.query), Some("down".into()));
        assert!(loaded.template("test", "nope").is_none());
        assert_eq!(loaded.notes.len(), 1, "{:?}", loaded.notes);

        // The directory holds both files; the canary is found there too.
        assert_eq!(load_files(dir.path(), &[], None).map(|l| l.templates.len()).ok(), Some(2));
        assert!(matches!(load_files(&other, &[], None), Err(SourceError::NoCanary(_))));
        std::fs::write(dir.path().join("two.yaml"), std::fs::read_to_string(&file).expect("read"))
            .expect("write");
        assert!(matches!(load_files(dir.path(), &[], None), Err(SourceError::SeveralCanaries { .. })));
        assert!(matches!(
            load_files(&dir.path().join("missing.yaml"), &[], None),
            Err(SourceError::Read { .. })
        ));
        std::fs::write(
            dir.path().join("bad.yaml"),
            "apiVersion: serin.dev/v1alpha1\nkind: Canary\nspec: 3\n",
        )
        .expect("write");
        assert!(matches!(
            load_files(&dir.path().join("bad.yaml"), &[], None),
            Err(SourceError::Parse { doc: 1, .. })
        ));
    }
}
