//! Resolving the Git source of a workload: `spec.gitops.source` given explicitly, or found
//! from the GitOps agent that applied the target (`auto: true`).
//!
//! - **Flux**: the target carries `kustomize.toolkit.fluxcd.io/name` and `/namespace` labels →
//!   that `Kustomization`'s `spec.sourceRef` (kind `GitRepository`) → the GitRepository's
//!   `spec.url` and `spec.ref.branch`; the Kustomization's `spec.path`; its
//!   `status.lastAppliedRevision` (`main@sha1:<sha>`, or the older `main/<sha>`) is the live
//!   commit. The GitRepository's `spec.secretRef` names the credentials Secret.
//! - **Argo CD**: the `argocd.argoproj.io/tracking-id` annotation (`<app>:<group>/<kind>:<ns>/<name>`,
//!   where `<app>` may be `<namespace>_<name>` for apps outside Argo CD's namespace) or the
//!   `app.kubernetes.io/instance` label → the `Application`'s `spec.source.repoURL`,
//!   `targetRevision` and `path` (for multi-source apps, the first source with a `path`);
//!   `status.sync.revision` is the live commit. Argo CD keeps repository credentials in its own
//!   Secrets matched by URL; Serin does not read them, so `spec.gitops.source.secretRef` must name
//!   the credentials (documented limit).
//!
//! The parsing is pure (objects come in as JSON); [`resolve`] is the thin fetcher.

use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject, GroupVersionKind},
};
use serde_json::Value;

use crate::crd::canary::GitSource;

/// Flux label naming the Kustomization that applied an object.
pub const FLUX_NAME_LABEL: &str = "kustomize.toolkit.fluxcd.io/name";
/// Flux label naming that Kustomization's namespace.
pub const FLUX_NAMESPACE_LABEL: &str = "kustomize.toolkit.fluxcd.io/namespace";
/// Argo CD's resource tracking annotation.
pub const ARGOCD_TRACKING_ANNOTATION: &str = "argocd.argoproj.io/tracking-id";
/// Argo CD's legacy tracking label.
pub const ARGOCD_INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
/// Branch used when none is given.
pub const DEFAULT_BRANCH: &str = "main";

/// Why the Git source cannot be resolved. Each variant names what is missing.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Neither an explicit URL nor `auto: true`.
    #[error("spec.gitops.source: set either auto: true or url")]
    NoSource,
    /// `auto: true`, but the target has no Flux or Argo CD tracking metadata.
    #[error(
        "auto: target has neither the {FLUX_NAME_LABEL}/{FLUX_NAMESPACE_LABEL} labels nor the \
         {ARGOCD_TRACKING_ANNOTATION} annotation or {ARGOCD_INSTANCE_LABEL} label"
    )]
    NotTracked,
    /// A field the resolution needs is missing or has the wrong type.
    #[error("{object}: missing {field}")]
    Missing {
        /// The object (`Kustomization apps/podinfo`).
        object: String,
        /// The field path.
        field: String,
    },
    /// The source is not a Git branch Serin can commit to.
    #[error("{object}: {why}")]
    Unsupported {
        /// The object.
        object: String,
        /// Why.
        why: String,
    },
    /// Reading an object from the API failed.
    #[error("reading {object}: {source}")]
    Api {
        /// The object.
        object: String,
        /// The API error.
        #[source]
        source: Box<kube::Error>,
    },
}

/// Where the source was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceOrigin {
    /// `spec.gitops.source.url`.
    Explicit,
    /// A Flux Kustomization and its GitRepository (`namespace/name` each).
    Flux {
        /// The Kustomization.
        kustomization: String,
        /// The GitRepository.
        git_repository: String,
    },
    /// An Argo CD Application (`namespace/name`).
    ArgoCd {
        /// The Application.
        application: String,
    },
}

/// A Secret named by the source, to be read by the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretRef {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

/// The Git repository, branch and path holding a workload's manifests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedSource {
    /// Clone URL.
    pub url: String,
    /// Branch the agent syncs.
    pub branch: String,
    /// Directory of the manifests inside the repository, if known.
    pub path: Option<String>,
    /// The commit the agent applied last, if known.
    pub live_commit: Option<String>,
    /// Where this came from.
    pub origin: SourceOrigin,
    /// Credentials Secret, if any.
    pub secret: Option<SecretRef>,
}

/// How the target is tracked by a GitOps agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tracking {
    /// A Flux Kustomization.
    Flux {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// An Argo CD Application (`namespace` when the tracking id names one).
    ArgoCd {
        /// Its namespace, when the tracking id says (`<ns>_<name>`).
        namespace: Option<String>,
        /// Its name.
        name: String,
    },
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(*p)?;
    }
    cur.as_str().filter(|s| !s.is_empty())
}

fn describe(kind: &str, obj: &Value) -> String {
    let ns = str_at(obj, &["metadata", "namespace"]).unwrap_or("?");
    let name = str_at(obj, &["metadata", "name"]).unwrap_or("?");
    format!("{kind} {ns}/{name}")
}

fn missing(object: String, field: &str) -> SourceError {
    SourceError::Missing { object, field: field.to_string() }
}

/// The source given explicitly in `spec.gitops.source` (the Secret lives in the Canary's
/// namespace). `Ok(None)` when the spec asks for `auto`.
pub fn explicit(spec: &GitSource, namespace: &str) -> Result<Option<ResolvedSource>, SourceError> {
    match (&spec.url, spec.auto.unwrap_or(false)) {
        (Some(url), false) if !url.is_empty() => Ok(Some(ResolvedSource {
            url: url.clone(),
            branch: spec.branch.clone().unwrap_or_else(|| DEFAULT_BRANCH.to_string()),
            path: spec.path.clone(),
            live_commit: None,
            origin: SourceOrigin::Explicit,
            secret: spec
                .secret_ref
                .as_ref()
                .map(|s| SecretRef { namespace: namespace.to_string(), name: s.name.clone() }),
        })),
        (None, true) => Ok(None),
        _ => Err(SourceError::NoSource),
    }
}

/// Which agent tracks the target, from its metadata (a JSON object with `labels` and
/// `annotations`). Flux labels win over Argo CD's.
pub fn tracking_of(metadata: &Value) -> Result<Tracking, SourceError> {
    let label = |k: &str| metadata.get("labels").and_then(|l| l.get(k)).and_then(Value::as_str);
    let annotation = |k: &str| metadata.get("annotations").and_then(|l| l.get(k)).and_then(Value::as_str);
    if let (Some(name), Some(namespace)) = (label(FLUX_NAME_LABEL), label(FLUX_NAMESPACE_LABEL)) {
        return Ok(Tracking::Flux { namespace: namespace.to_string(), name: name.to_string() });
    }
    if let Some(id) = annotation(ARGOCD_TRACKING_ANNOTATION) {
        let app = id.split(':').next().unwrap_or_default();
        if !app.is_empty() {
            return Ok(match app.split_once('_') {
                Some((ns, name)) => Tracking::ArgoCd { namespace: Some(ns.into()), name: name.into() },
                None => Tracking::ArgoCd { namespace: None, name: app.into() },
            });
        }
    }
    if let Some(app) = label(ARGOCD_INSTANCE_LABEL).filter(|a| !a.is_empty()) {
        return Ok(Tracking::ArgoCd { namespace: None, name: app.to_string() });
    }
    Err(SourceError::NotTracked)
}

/// The GitRepository a Flux Kustomization points at: `(namespace, name)`.
pub fn flux_source_ref(kustomization: &Value) -> Result<(String, String), SourceError> {
    let object = describe("Kustomization", kustomization);
    let kind = str_at(kustomization, &["spec", "sourceRef", "kind"])
        .ok_or_else(|| missing(object.clone(), "spec.sourceRef.kind"))?;
    if kind != "GitRepository" {
        return Err(SourceError::Unsupported {
            object,
            why: format!("spec.sourceRef.kind is {kind}; only GitRepository sources can be reverted"),
        });
    }
    let name = str_at(kustomization, &["spec", "sourceRef", "name"])
        .ok_or_else(|| missing(object.clone(), "spec.sourceRef.name"))?;
    let namespace = str_at(kustomization, &["spec", "sourceRef", "namespace"])
        .or_else(|| str_at(kustomization, &["metadata", "namespace"]))
        .ok_or_else(|| missing(object, "spec.sourceRef.namespace (or metadata.namespace)"))?;
    Ok((namespace.to_string(), name.to_string()))
}

/// The commit SHA of a Flux revision string (`main@sha1:<sha>`, `sha1:<sha>`, `main/<sha>`).
pub fn parse_flux_revision(revision: &str) -> Option<String> {
    let tail = revision.rsplit_once('@').map_or(revision, |(_, t)| t);
    let sha = tail.strip_prefix("sha1:").or_else(|| tail.strip_prefix("sha256:")).unwrap_or(tail);
    let sha = sha.rsplit('/').next().unwrap_or(sha);
    is_sha(sha).then(|| sha.to_string())
}

fn is_sha(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.chars().all(|c| c.is_ascii_hexdigit())
}

/// The source of a Flux-applied target, from its Kustomization and GitRepository.
pub fn from_flux(kustomization: &Value, git_repository: &Value) -> Result<ResolvedSource, SourceError> {
    let repo_name = describe("GitRepository", git_repository);
    let url =
        str_at(git_repository, &["spec", "url"]).ok_or_else(|| missing(repo_name.clone(), "spec.url"))?;
    let reference = git_repository.get("spec").and_then(|s| s.get("ref"));
    let branch = match reference {
        Some(r) if str_at(r, &["branch"]).is_some() => str_at(r, &["branch"]).unwrap_or(DEFAULT_BRANCH),
        Some(r) if r.get("tag").is_some() || r.get("semver").is_some() || r.get("commit").is_some() => {
            return Err(SourceError::Unsupported {
                object: repo_name,
                why: "spec.ref follows a tag, semver range or commit, not a branch; nothing to push to"
                    .into(),
            });
        }
        Some(r) if str_at(r, &["name"]).is_some_and(|n| n.starts_with("refs/heads/")) => {
            str_at(r, &["name"]).and_then(|n| n.strip_prefix("refs/heads/")).unwrap_or(DEFAULT_BRANCH)
        }
        _ => DEFAULT_BRANCH,
    };
    let namespace = str_at(git_repository, &["metadata", "namespace"]).unwrap_or_default();
    let secret = str_at(git_repository, &["spec", "secretRef", "name"])
        .map(|name| SecretRef { namespace: namespace.to_string(), name: name.to_string() });
    let live_commit = str_at(kustomization, &["status", "lastAppliedRevision"]).and_then(parse_flux_revision);
    let path = str_at(kustomization, &["spec", "path"]).map(|p| p.trim_start_matches("./").to_string());
    Ok(ResolvedSource {
        url: url.to_string(),
        branch: branch.to_string(),
        path: path.filter(|p| !p.is_empty() && p != "."),
        live_commit,
        origin: SourceOrigin::Flux {
            kustomization: describe("", kustomization).trim_start().to_string(),
            git_repository: repo_name.trim_start_matches("GitRepository ").to_string(),
        },
        secret,
    })
}

/// The source of an Argo CD-applied target, from its Application.
pub fn from_argocd(application: &Value) -> Result<ResolvedSource, SourceError> {
    let object = describe("Application", application);
    let spec = application.get("spec").ok_or_else(|| missing(object.clone(), "spec"))?;
    let source = match spec.get("source") {
        Some(s) => s,
        None => spec
            .get("sources")
            .and_then(Value::as_array)
            .and_then(|all| all.iter().find(|s| s.get("path").is_some()).or(all.first()))
            .ok_or_else(|| missing(object.clone(), "spec.source (or spec.sources)"))?,
    };
    let url = str_at(source, &["repoURL"]).ok_or_else(|| missing(object.clone(), "spec.source.repoURL"))?;
    if source.get("chart").is_some() {
        return Err(SourceError::Unsupported {
            object,
            why: "spec.source is a Helm chart repository, not a Git repository".into(),
        });
    }
    let revision = str_at(source, &["targetRevision"]).unwrap_or("HEAD");
    if is_sha(revision) || revision.starts_with("refs/tags/") {
        return Err(SourceError::Unsupported {
            object,
            why: format!("spec.source.targetRevision {revision} is pinned; nothing to push to"),
        });
    }
    // `HEAD` means the remote's default branch; resolved when Serin connects.
    let branch = revision.strip_prefix("refs/heads/").unwrap_or(revision);
    let sync = str_at(application, &["status", "sync", "revision"]).filter(|s| is_sha(s));
    let name = object.trim_start_matches("Application ").to_string();
    Ok(ResolvedSource {
        url: url.to_string(),
        branch: branch.to_string(),
        path: str_at(source, &["path"]).map(str::to_string).filter(|p| p != "."),
        live_commit: sync.map(str::to_string),
        origin: SourceOrigin::ArgoCd { application: name },
        secret: None,
    })
}

/// `ApiResource` of Flux Kustomizations (`kustomize.toolkit.fluxcd.io/v1`).
pub fn kustomization_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("kustomize.toolkit.fluxcd.io", "v1", "Kustomization"),
        "kustomizations",
    )
}

/// `ApiResource` of Flux GitRepositories (`source.toolkit.fluxcd.io/v1`).
pub fn git_repository_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("source.toolkit.fluxcd.io", "v1", "GitRepository"),
        "gitrepositories",
    )
}

/// `ApiResource` of Argo CD Applications (`argoproj.io/v1alpha1`).
pub fn application_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Application"),
        "applications",
    )
}

async fn get_json(
    client: &Client,
    ar: &ApiResource,
    namespace: &str,
    name: &str,
) -> Result<Value, SourceError> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, ar);
    let object = format!("{} {namespace}/{name}", ar.kind);
    let obj =
        api.get(name).await.map_err(|e| SourceError::Api { object: object.clone(), source: Box::new(e) })?;
    serde_json::to_value(&obj).map_err(|e| SourceError::Unsupported { object, why: e.to_string() })
}

/// Resolves the source of `target`: the explicit spec, or (for `auto`) its Flux Kustomization
/// and GitRepository, or its Argo CD Application (looked up in `argocd_namespace` unless the
/// tracking id names a namespace).
pub async fn resolve(
    client: &Client,
    spec: &GitSource,
    canary_namespace: &str,
    target: &DynamicObject,
    argocd_namespace: &str,
) -> Result<ResolvedSource, SourceError> {
    if let Some(explicit) = explicit(spec, canary_namespace)? {
        return Ok(explicit);
    }
    let metadata = serde_json::to_value(&target.metadata).unwrap_or(Value::Null);
    let mut resolved = match tracking_of(&metadata)? {
        Tracking::Flux { namespace, name } => {
            let kustomization = get_json(client, &kustomization_resource(), &namespace, &name).await?;
            let (repo_ns, repo_name) = flux_source_ref(&kustomization)?;
            let repo = get_json(client, &git_repository_resource(), &repo_ns, &repo_name).await?;
            from_flux(&kustomization, &repo)?
        }
        Tracking::ArgoCd { namespace, name } => {
            let ns = namespace.as_deref().unwrap_or(argocd_namespace);
            from_argocd(&get_json(client, &application_resource(), ns, &name).await?)?
        }
    };
    // An explicit branch, path or Secret next to `auto: true` overrides what was discovered.
    if let Some(branch) = &spec.branch {
        resolved.branch = branch.clone();
    }
    if let Some(path) = &spec.path {
        resolved.path = Some(path.clone());
    }
    if let Some(secret) = &spec.secret_ref {
        resolved.secret =
            Some(SecretRef { namespace: canary_namespace.to_string(), name: secret.name.clone() });
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::crd::common::SecretReference;

    fn source(auto: Option<bool>, url: Option<&str>) -> GitSource {
        GitSource {
            auto,
            url: url.map(str::to_string),
            branch: None,
            path: Some("apps/podinfo".into()),
            secret_ref: Some(SecretReference { name: "git".into() }),
        }
    }

    #[test]
    fn explicit_table() {
        let ok =
            explicit(&source(None, Some("https://git.example/r.git")), "apps").expect("ok").expect("some");
        assert_eq!(ok.branch, "main");
        assert_eq!(ok.secret, Some(SecretRef { namespace: "apps".into(), name: "git".into() }));
        assert!(explicit(&source(Some(true), None), "apps").expect("ok").is_none());
        assert!(matches!(explicit(&source(None, None), "apps"), Err(SourceError::NoSource)));
        assert!(matches!(explicit(&source(Some(true), Some("x")), "apps"), Err(SourceError::NoSource)));
    }

    #[test]
    fn tracking_table() {
        let cases = [
            (
                json!({"labels": {FLUX_NAME_LABEL: "apps", FLUX_NAMESPACE_LABEL: "flux-system"}}),
                Some(Tracking::Flux { namespace: "flux-system".into(), name: "apps".into() }),
            ),
            (
                json!({"annotations": {ARGOCD_TRACKING_ANNOTATION: "podinfo:apps/Deployment:apps/podinfo"}}),
                Some(Tracking::ArgoCd { namespace: None, name: "podinfo".into() }),
            ),
            (
                json!({"annotations": {ARGOCD_TRACKING_ANNOTATION: "team_podinfo:apps/Deployment:apps/podinfo"}}),
                Some(Tracking::ArgoCd { namespace: Some("team".into()), name: "podinfo".into() }),
            ),
            (
                json!({"labels": {ARGOCD_INSTANCE_LABEL: "podinfo"}}),
                Some(Tracking::ArgoCd { namespace: None, name: "podinfo".into() }),
            ),
            (json!({"labels": {FLUX_NAME_LABEL: "apps"}}), None),
            (json!({}), None),
        ];
        for (meta, want) in cases {
            assert_eq!(tracking_of(&meta).ok(), want, "{meta}");
        }
    }

    #[test]
    fn flux_revision_formats() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(parse_flux_revision(&format!("main@sha1:{sha}")).as_deref(), Some(sha));
        assert_eq!(parse_flux_revision(&format!("main/{sha}")).as_deref(), Some(sha));
        assert_eq!(parse_flux_revision(&format!("sha1:{sha}")).as_deref(), Some(sha));
        assert_eq!(parse_flux_revision("main@sha1:nothex"), None);
    }

    fn kustomization(source_kind: &str) -> Value {
        json!({
            "metadata": {"name": "apps", "namespace": "flux-system"},
            "spec": {"path": "./clusters/prod/apps", "sourceRef": {"kind": source_kind, "name": "fleet"}},
            "status": {"lastAppliedRevision": "main@sha1:0123456789abcdef0123456789abcdef01234567"}
        })
    }

    #[test]
    fn flux_table() {
        assert_eq!(
            flux_source_ref(&kustomization("GitRepository")).expect("ref"),
            ("flux-system".into(), "fleet".into())
        );
        assert!(matches!(
            flux_source_ref(&kustomization("OCIRepository")),
            Err(SourceError::Unsupported { .. })
        ));
        let no_ref = json!({"metadata": {"name": "apps", "namespace": "f"}, "spec": {}});
        let err = flux_source_ref(&no_ref).expect_err("missing").to_string();
        assert_eq!(err, "Kustomization f/apps: missing spec.sourceRef.kind");

        let repo = json!({
            "metadata": {"name": "fleet", "namespace": "flux-system"},
            "spec": {"url": "ssh://git@github.com/acme/fleet", "ref": {"branch": "prod"}, "secretRef": {"name": "deploy-key"}}
        });
        let got = from_flux(&kustomization("GitRepository"), &repo).expect("resolved");
        assert_eq!(got.url, "ssh://git@github.com/acme/fleet");
        assert_eq!(got.branch, "prod");
        assert_eq!(got.path.as_deref(), Some("clusters/prod/apps"));
        assert_eq!(got.live_commit.as_deref(), Some("0123456789abcdef0123456789abcdef01234567"));
        assert_eq!(
            got.secret,
            Some(SecretRef { namespace: "flux-system".into(), name: "deploy-key".into() })
        );

        let tag = json!({"metadata": {"name": "fleet", "namespace": "f"}, "spec": {"url": "u", "ref": {"tag": "v1"}}});
        assert!(matches!(
            from_flux(&kustomization("GitRepository"), &tag),
            Err(SourceError::Unsupported { .. })
        ));
        let no_url = json!({"metadata": {"name": "fleet", "namespace": "f"}, "spec": {}});
        assert_eq!(
            from_flux(&kustomization("GitRepository"), &no_url).expect_err("no url").to_string(),
            "GitRepository f/fleet: missing spec.url"
        );
    }

    #[test]
    fn argocd_table() {
        let app = json!({
            "metadata": {"name": "podinfo", "namespace": "argocd"},
            "spec": {"source": {"repoURL": "https://git.example/fleet.git", "targetRevision": "main", "path": "apps/podinfo"}},
            "status": {"sync": {"revision": "0123456789abcdef0123456789abcdef01234567"}}
        });
        let got = from_argocd(&app).expect("resolved");
        assert_eq!(got.branch, "main");
        assert_eq!(got.path.as_deref(), Some("apps/podinfo"));
        assert_eq!(got.live_commit.as_deref(), Some("0123456789abcdef0123456789abcdef01234567"));
        assert_eq!(got.origin, SourceOrigin::ArgoCd { application: "argocd/podinfo".into() });

        let multi = json!({"metadata": {"name": "p", "namespace": "argocd"},
            "spec": {"sources": [{"repoURL": "https://charts", "chart": "x"}, {"repoURL": "https://git/r", "path": "p"}]}});
        let got = from_argocd(&multi).expect("multi");
        assert_eq!((got.url.as_str(), got.branch.as_str()), ("https://git/r", "HEAD"));

        let pinned = json!({"metadata": {"name": "p", "namespace": "a"},
            "spec": {"source": {"repoURL": "r", "targetRevision": "0123456789abcdef0123456789abcdef01234567"}}});
        assert!(matches!(from_argocd(&pinned), Err(SourceError::Unsupported { .. })));
        let chart = json!({"metadata": {"name": "p", "namespace": "a"}, "spec": {"source": {"repoURL": "r", "chart": "c"}}});
        assert!(matches!(from_argocd(&chart), Err(SourceError::Unsupported { .. })));
        let empty = json!({"metadata": {"name": "p", "namespace": "a"}, "spec": {}});
        assert_eq!(
            from_argocd(&empty).expect_err("missing").to_string(),
            "Application a/p: missing spec.source (or spec.sources)"
        );
    }
}
