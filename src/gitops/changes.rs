//! Finding what to revert: which parts of a GitOps repository belong to one workload, and
//! whether a change to a file touches that workload, other things, or both.
//!
//! Everything here is pure: it works on file contents (before/after) and never sees Git. The
//! Git side (`revert.rs`) walks commits and hands each changed file's two versions to
//! [`classify_file`].
//!
//! A file is split into YAML documents at column-0 `---` lines (each document is parsed on its
//! own, so every document keeps its line span for the targeted edits of a restore). Inside a
//! file, the parts that belong to the workload ("owned units") are:
//! - the workload's own manifest: a `Deployment`/`StatefulSet`/`DaemonSet` (the kind of the
//!   target) with the target's name and, when the manifest sets one, its namespace. A strategic
//!   merge patch file for the target has the same shape, so it is owned too;
//! - in a `kustomization.yaml` (`kustomize.config.k8s.io`): the `images:` entries whose `name`
//!   is one of the workload's image repositories, and the `patches`/`patchesJson6902`/
//!   `patchesStrategicMerge` entries that target the workload by name;
//! - a Flux `HelmRelease` whose `metadata.name` or `spec.releaseName` is the workload's name,
//!   or a prefix of it followed by `-` (charts usually name the Deployment `<release>-<chart>`
//!   or `<release>`): the whole HelmRelease, chart version and inline values included;
//! - Helm values files listed in [`WorkloadId::values_files`] (for example an Argo CD
//!   Application's `spec.source.helm.valueFiles`, resolved to repository paths by the caller):
//!   the whole file.
//!
//! Approximations (documented limits): a values file shared by several releases, values
//! inlined in an Argo CD `Application` (`helm.values`/`parameters`), a HelmRelease's
//! `valuesFrom` ConfigMaps, and Kustomize components or generators are not attributed to the
//! workload; a change to them counts as "other", so Serin never reverts them blindly: such a
//! commit gets a restore commit (or a `Failed` outcome) instead of a revert. Everything that is
//! not an owned unit is "the rest" of the file; a change to the rest is a change to other
//! workloads or shared configuration. Files that are not YAML are compared as bytes.

use std::collections::BTreeMap;
use std::ops::Range;

use serde_json::Value;

/// The workload whose change is reverted.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct WorkloadId {
    /// Kind of the target (`Deployment`, `StatefulSet`, `DaemonSet`).
    pub kind: String,
    /// Name of the target.
    pub name: String,
    /// Namespace of the target.
    pub namespace: String,
    /// Image repositories the target runs, without tag or digest (`ghcr.io/acme/podinfo`);
    /// used to find kustomize `images:` entries.
    pub images: Vec<String>,
    /// Repository paths of Helm values files that belong to this workload alone.
    pub values_files: Vec<String>,
}

impl WorkloadId {
    /// The workload `kind/namespace/name` running these image references; the repositories
    /// (without tag or digest) are what kustomize `images:` entries are matched against.
    pub fn new(kind: &str, namespace: &str, name: &str, image_refs: &[String]) -> WorkloadId {
        let mut images: Vec<String> = image_refs.iter().map(|i| split_image(i).0.to_string()).collect();
        images.sort();
        images.dedup();
        WorkloadId {
            kind: kind.to_string(),
            name: name.to_string(),
            namespace: namespace.to_string(),
            images,
            values_files: Vec::new(),
        }
    }
}

/// One YAML document of a file with its line span.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    /// Lines of the file (0-based, end exclusive) holding this document, separators excluded.
    pub lines: Range<usize>,
    /// The parsed document (`Null` when empty).
    pub value: Value,
}

/// A part of a file that belongs to the workload.
#[derive(Clone, Debug, PartialEq)]
pub struct OwnedUnit {
    /// Stable identity of the unit inside the file (`workload`, `image:<name>`, `patches`,
    /// `helmrelease:<name>`, `values`).
    pub key: String,
    /// Its content.
    pub value: Value,
    /// Index in [`ParsedFile::documents`] of the document holding it.
    pub document: usize,
    /// Whether the unit is the whole document (so a restore may splice the document back).
    pub whole_document: bool,
    /// For list entries (`images:`): the value of their `name`, used to find their lines.
    pub anchor: Option<String>,
}

/// A file split into what belongs to the workload and the rest.
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedFile {
    /// The YAML documents (empty for non-YAML files).
    pub documents: Vec<Document>,
    /// The workload's units, by key.
    pub owned: BTreeMap<String, OwnedUnit>,
    /// Everything else, in a comparable form.
    pub rest: Value,
}

impl ParsedFile {
    /// The owned units' values, by key (what "the workload's state in this file" means).
    pub fn owned_values(&self) -> BTreeMap<&str, &Value> {
        self.owned.iter().map(|(k, u)| (k.as_str(), &u.value)).collect()
    }
}

/// How one changed file relates to the workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FileImpact {
    /// The workload's units differ between before and after.
    pub touches_workload: bool,
    /// Anything else in the file differs.
    pub touches_others: bool,
}

impl FileImpact {
    /// Combines the impacts of several files (of one commit).
    pub fn merge(self, other: FileImpact) -> FileImpact {
        FileImpact {
            touches_workload: self.touches_workload || other.touches_workload,
            touches_others: self.touches_others || other.touches_others,
        }
    }
}

/// Splits a file into YAML documents at column-0 `---` lines. Returns `None` when a document
/// is not valid YAML (the file is then compared as bytes).
pub fn split_documents(text: &str) -> Option<Vec<Document>> {
    let lines: Vec<&str> = text.lines().collect();
    let mut documents = Vec::new();
    let mut start = 0;
    let flush = |start: usize, end: usize, documents: &mut Vec<Document>| -> Option<()> {
        let body = lines[start..end].join("\n");
        let value: Value = if body.trim().is_empty() {
            Value::Null
        } else {
            match serde_norway::from_str::<Value>(&body) {
                Ok(v) => v,
                Err(_) => return None,
            }
        };
        documents.push(Document { lines: start..end, value });
        Some(())
    };
    for (i, line) in lines.iter().enumerate() {
        if is_separator(line) {
            flush(start, i, &mut documents)?;
            start = i + 1;
        }
    }
    flush(start, lines.len(), &mut documents)?;
    Some(documents)
}

fn is_separator(line: &str) -> bool {
    line == "---" || line.starts_with("--- ") || line.trim_end() == "---"
}

fn is_yaml_path(path: &str) -> bool {
    path.ends_with(".yaml") || path.ends_with(".yml")
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(*p)?;
    }
    cur.as_str()
}

/// Is this document the workload's own manifest (or a strategic merge patch of it)?
fn is_workload_doc(doc: &Value, w: &WorkloadId) -> bool {
    let kind_ok = str_at(doc, &["kind"]).is_some_and(|k| k == w.kind);
    let name_ok = str_at(doc, &["metadata", "name"]).is_some_and(|n| n == w.name);
    let ns_ok = str_at(doc, &["metadata", "namespace"]).is_none_or(|n| n == w.namespace);
    kind_ok && name_ok && ns_ok
}

fn is_kustomization(path: &str, doc: &Value) -> bool {
    let file = path.rsplit('/').next().unwrap_or(path);
    let by_name = matches!(file, "kustomization.yaml" | "kustomization.yml" | "Kustomization");
    let by_api = str_at(doc, &["apiVersion"]).is_some_and(|a| a.starts_with("kustomize.config.k8s.io/"));
    (by_name && str_at(doc, &["apiVersion"]).is_none_or(|a| a.starts_with("kustomize.config.k8s.io/")))
        || by_api
}

fn is_helm_release_of(doc: &Value, w: &WorkloadId) -> bool {
    if str_at(doc, &["kind"]) != Some("HelmRelease") {
        return false;
    }
    if str_at(doc, &["metadata", "namespace"]).is_some_and(|n| n != w.namespace)
        && str_at(doc, &["spec", "targetNamespace"]).is_none_or(|n| n != w.namespace)
    {
        return false;
    }
    let release = str_at(doc, &["spec", "releaseName"]).or_else(|| str_at(doc, &["metadata", "name"]));
    release.is_some_and(|r| w.name == r || w.name.starts_with(&format!("{r}-")))
}

/// Does a kustomize patch entry target the workload?
fn patch_targets(entry: &Value, w: &WorkloadId) -> bool {
    if let Some(target) = entry.get("target") {
        let name_ok = str_at(target, &["name"]).is_some_and(|n| n == w.name);
        let kind_ok = str_at(target, &["kind"]).is_none_or(|k| k == w.kind);
        return name_ok && kind_ok;
    }
    // An inline strategic-merge patch (string) without a target names its object itself.
    let inline = entry.get("patch").and_then(Value::as_str).or_else(|| entry.as_str());
    if let Some(text) = inline
        && text.contains('\n')
        && let Ok(doc) = serde_norway::from_str::<Value>(text)
    {
        return is_workload_doc(&doc, w);
    }
    false
}

/// Parses a file and separates the workload's units from the rest.
pub fn parse_file(path: &str, text: &str, w: &WorkloadId) -> ParsedFile {
    let opaque = || ParsedFile {
        documents: Vec::new(),
        owned: BTreeMap::new(),
        rest: Value::String(text.to_string()),
    };
    if !is_yaml_path(path) && !path.ends_with("/Kustomization") && path != "Kustomization" {
        return opaque();
    }
    let Some(documents) = split_documents(text) else {
        return opaque();
    };
    if w.values_files.iter().any(|f| f.trim_start_matches("./") == path) {
        let mut owned = BTreeMap::new();
        let values: Vec<Value> = documents.iter().map(|d| d.value.clone()).collect();
        owned.insert(
            "values".to_string(),
            OwnedUnit {
                key: "values".into(),
                value: Value::Array(values),
                document: 0,
                whole_document: false,
                anchor: None,
            },
        );
        return ParsedFile { documents, owned, rest: Value::Null };
    }
    let mut owned = BTreeMap::new();
    let mut rest = Vec::new();
    for (index, doc) in documents.iter().enumerate() {
        let value = &doc.value;
        if is_workload_doc(value, w) {
            owned.insert(
                "workload".to_string(),
                OwnedUnit {
                    key: "workload".into(),
                    value: value.clone(),
                    document: index,
                    whole_document: true,
                    anchor: None,
                },
            );
            rest.push(Value::Null);
        } else if is_helm_release_of(value, w) {
            let name = str_at(value, &["metadata", "name"]).unwrap_or_default();
            let key = format!("helmrelease:{name}");
            owned.insert(
                key.clone(),
                OwnedUnit { key, value: value.clone(), document: index, whole_document: true, anchor: None },
            );
            rest.push(Value::Null);
        } else if is_kustomization(path, value) && value.is_object() {
            let mut remaining = value.clone();
            if let Some(images) = remaining.get_mut("images").and_then(Value::as_array_mut) {
                images.retain(|entry| {
                    let name = str_at(entry, &["name"]).unwrap_or_default();
                    if w.images.iter().any(|i| i == name) {
                        let key = format!("image:{name}");
                        owned.insert(
                            key.clone(),
                            OwnedUnit {
                                key,
                                value: entry.clone(),
                                document: index,
                                whole_document: false,
                                anchor: Some(name.to_string()),
                            },
                        );
                        false
                    } else {
                        true
                    }
                });
            }
            let mut ours = Vec::new();
            for field in ["patches", "patchesJson6902", "patchesStrategicMerge"] {
                if let Some(list) = remaining.get_mut(field).and_then(Value::as_array_mut) {
                    list.retain(|entry| {
                        if patch_targets(entry, w) {
                            ours.push(entry.clone());
                            false
                        } else {
                            true
                        }
                    });
                }
            }
            if !ours.is_empty() {
                owned.insert(
                    "patches".to_string(),
                    OwnedUnit {
                        key: "patches".into(),
                        value: Value::Array(ours),
                        document: index,
                        whole_document: false,
                        anchor: None,
                    },
                );
            }
            rest.push(remaining);
        } else {
            rest.push(value.clone());
        }
    }
    ParsedFile { documents, owned, rest: Value::Array(rest) }
}

/// Decides whether a change of one file (`None` = the file does not exist on that side)
/// touches the workload and/or anything else.
pub fn classify_file(path: &str, before: Option<&str>, after: Option<&str>, w: &WorkloadId) -> FileImpact {
    let before = before.map(|t| parse_file(path, t, w));
    let after = after.map(|t| parse_file(path, t, w));
    fn owned(p: &Option<ParsedFile>) -> BTreeMap<&str, &Value> {
        p.as_ref().map(ParsedFile::owned_values).unwrap_or_default()
    }
    let rest = |p: &Option<ParsedFile>| p.as_ref().map(|f| rest_without_nulls(&f.rest));
    let touches_workload = owned(&before) != owned(&after);
    let touches_others = match (rest(&before), rest(&after)) {
        (Some(a), Some(b)) => a != b,
        (None, None) => false,
        // A file added or deleted: the rest counts only when it has content of its own.
        (Some(r), None) | (None, Some(r)) => !is_empty_rest(&r),
    };
    FileImpact { touches_workload, touches_others }
}

fn rest_without_nulls(rest: &Value) -> Value {
    match rest {
        Value::Array(docs) => Value::Array(docs.iter().filter(|d| !d.is_null()).cloned().collect()),
        other => other.clone(),
    }
}

fn is_empty_rest(rest: &Value) -> bool {
    match rest {
        Value::Null => true,
        Value::Array(a) => a.iter().all(Value::is_null),
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}

/// Does any owned unit of this file mention `needle` as (part of) a scalar? Used to check that
/// a commit really carries the failed image tag or digest.
pub fn owned_mentions(file: &ParsedFile, needle: &str) -> bool {
    fn walk(v: &Value, needle: &str) -> bool {
        match v {
            Value::String(s) => s.contains(needle),
            Value::Number(n) => n.to_string() == needle,
            Value::Array(a) => a.iter().any(|x| walk(x, needle)),
            Value::Object(o) => o.values().any(|x| walk(x, needle)),
            _ => false,
        }
    }
    file.owned.values().any(|u| walk(&u.value, needle))
}

/// The tag or digest of an image reference (`repo:tag`, `repo@sha256:…`), and its repository.
pub fn split_image(reference: &str) -> (&str, Option<&str>) {
    if let Some((repo, digest)) = reference.split_once('@') {
        return (repo, Some(digest));
    }
    let last_slash = reference.rfind('/').map_or(0, |i| i + 1);
    match reference[last_slash..].rfind(':') {
        Some(i) => (&reference[..last_slash + i], Some(&reference[last_slash + i + 1..])),
        None => (reference, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn podinfo() -> WorkloadId {
        WorkloadId {
            kind: "Deployment".into(),
            name: "podinfo".into(),
            namespace: "apps".into(),
            images: vec!["ghcr.io/acme/podinfo".into()],
            values_files: vec!["charts/podinfo/values-prod.yaml".into()],
        }
    }

    fn deployment(name: &str, image: &str) -> String {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: apps\nspec:\n  \
             template:\n    spec:\n      containers:\n        - name: app\n          image: {image}\n"
        )
    }

    #[test]
    fn documents_keep_their_line_spans() {
        let text = "a: 1\n---\nb: 2\nc: 3\n---\n";
        let docs = split_documents(text).expect("yaml");
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[0].lines, 0..1);
        assert_eq!(docs[1].lines, 2..4);
        assert_eq!(docs[2].value, Value::Null);
        assert!(split_documents("a: [1\n").is_none());
    }

    #[test]
    fn split_image_handles_registry_ports_and_digests() {
        assert_eq!(split_image("ghcr.io/acme/podinfo:6.1.0"), ("ghcr.io/acme/podinfo", Some("6.1.0")));
        assert_eq!(split_image("localhost:5000/podinfo"), ("localhost:5000/podinfo", None));
        assert_eq!(split_image("podinfo@sha256:abc"), ("podinfo", Some("sha256:abc")));
    }

    struct Case {
        name: &'static str,
        path: &'static str,
        before: Option<String>,
        after: Option<String>,
        workload: bool,
        others: bool,
    }

    #[test]
    fn classify_table() {
        let two =
            |a: &str, b: &str| format!("{}---\n{}", deployment("podinfo", a), deployment("frontend", b));
        let kust = |ours: &str, theirs: &str| {
            format!(
                "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - deploy.yaml\n\
                 images:\n  - name: ghcr.io/acme/podinfo\n    newTag: {ours}\n  - name: ghcr.io/acme/frontend\n    \
                 newTag: {theirs}\n"
            )
        };
        let cases = vec![
            Case {
                name: "plain deployment image bump",
                path: "apps/podinfo/deploy.yaml",
                before: Some(deployment("podinfo", "ghcr.io/acme/podinfo:1.0.0")),
                after: Some(deployment("podinfo", "ghcr.io/acme/podinfo:2.0.0")),
                workload: true,
                others: false,
            },
            Case {
                name: "another app's deployment",
                path: "apps/frontend/deploy.yaml",
                before: Some(deployment("frontend", "f:1")),
                after: Some(deployment("frontend", "f:2")),
                workload: false,
                others: true,
            },
            Case {
                name: "multi-document file, both bumped",
                path: "apps/all.yaml",
                before: Some(two("p:1", "f:1")),
                after: Some(two("p:2", "f:2")),
                workload: true,
                others: true,
            },
            Case {
                name: "multi-document file, only ours bumped",
                path: "apps/all.yaml",
                before: Some(two("p:1", "f:1")),
                after: Some(two("p:2", "f:1")),
                workload: true,
                others: false,
            },
            Case {
                name: "kustomize newTag of ours",
                path: "overlays/prod/kustomization.yaml",
                before: Some(kust("1.0.0", "3.0.0")),
                after: Some(kust("1.1.0", "3.0.0")),
                workload: true,
                others: false,
            },
            Case {
                name: "kustomize newTag of both",
                path: "overlays/prod/kustomization.yaml",
                before: Some(kust("1.0.0", "3.0.0")),
                after: Some(kust("1.1.0", "3.1.0")),
                workload: true,
                others: true,
            },
            Case {
                name: "kustomize patch targeting ours",
                path: "overlays/prod/kustomization.yaml",
                before: Some("resources: [a.yaml]\npatches:\n  - path: p.yaml\n    target:\n      kind: Deployment\n      name: podinfo\n".into()),
                after: Some("resources: [a.yaml]\npatches:\n  - path: p2.yaml\n    target:\n      kind: Deployment\n      name: podinfo\n".into()),
                workload: true,
                others: false,
            },
            Case {
                name: "helm release values",
                path: "releases/podinfo.yaml",
                before: Some("apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: podinfo\n  namespace: apps\nspec:\n  values:\n    image:\n      tag: 1.0.0\n".into()),
                after: Some("apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: podinfo\n  namespace: apps\nspec:\n  values:\n    image:\n      tag: 2.0.0\n".into()),
                workload: true,
                others: false,
            },
            Case {
                name: "values file of ours",
                path: "charts/podinfo/values-prod.yaml",
                before: Some("image:\n  tag: 1\n".into()),
                after: Some("image:\n  tag: 2\n".into()),
                workload: true,
                others: false,
            },
            Case {
                name: "README",
                path: "README.md",
                before: Some("hi".into()),
                after: Some("hello".into()),
                workload: false,
                others: true,
            },
            Case {
                name: "new file with only our deployment",
                path: "apps/podinfo/deploy.yaml",
                before: None,
                after: Some(deployment("podinfo", "p:1")),
                workload: true,
                others: false,
            },
            Case {
                name: "same name, other namespace",
                path: "x.yaml",
                before: Some(deployment("podinfo", "p:1").replace("namespace: apps", "namespace: dev")),
                after: Some(deployment("podinfo", "p:2").replace("namespace: apps", "namespace: dev")),
                workload: false,
                others: true,
            },
        ];
        for c in cases {
            let got = classify_file(c.path, c.before.as_deref(), c.after.as_deref(), &podinfo());
            assert_eq!(
                got,
                FileImpact { touches_workload: c.workload, touches_others: c.others },
                "case {}",
                c.name
            );
        }
    }

    #[test]
    fn workload_images_are_repositories() {
        let w = WorkloadId::new(
            "Deployment",
            "apps",
            "podinfo",
            &["ghcr.io/acme/podinfo:6.1.0".into(), "ghcr.io/acme/podinfo@sha256:ab".into(), "busybox".into()],
        );
        assert_eq!(w.images, vec!["busybox".to_string(), "ghcr.io/acme/podinfo".to_string()]);
    }

    #[test]
    fn owned_mentions_finds_tags() {
        let f = parse_file("d.yaml", &deployment("podinfo", "ghcr.io/acme/podinfo:6.1.0"), &podinfo());
        assert!(owned_mentions(&f, "6.1.0"));
        assert!(!owned_mentions(&f, "6.2.0"));
    }
}
