//! The GitOps sync loop: a small stand-in for Flux's source- and kustomize-controllers.
//!
//! Every [`SyncConfig::interval`] it asks the Git server where the branch points
//! (`git ls-remote`). On a new revision it fetches it into a private checkout, reads every
//! `*.yaml`/`*.yml` file under [`SyncConfig::path`] (multi-document files allowed), and
//! server-side-applies each object to the API with field manager `kustomize-controller` and
//! `force`, as Flux does, adding Flux's `kustomize.toolkit.fluxcd.io/name|namespace` labels.
//! Namespaces and CRDs go first. With [`SyncConfig::prune`], objects applied by an earlier
//! revision and missing from the new one are deleted. A revert commit therefore brings the
//! cluster back to the reverted state.
//!
//! The loop also keeps Flux's own objects (when [`SyncConfig::flux_objects`] is set): it
//! ([`create_flux_objects`]) registers minimal `GitRepository` (`source.toolkit.fluxcd.io/v1`) and
//! `Kustomization` (`kustomize.toolkit.fluxcd.io/v1`) CRDs and creates `flux-system/testbed` of
//! each (URL, branch, `./<path>`, `sourceRef`); after each sync the loop writes their status like Flux
//! (`lastAppliedRevision: main@sha1:<sha>`, `Ready` condition), so Serin's `gitops.source.auto`
//! can find the repository from the target's labels.
//!
//! A failed sync is retried on the next tick; [`SyncStatus`] reports the last applied revision
//! and the last error.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use kube::{
    Api, Client,
    api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams},
    discovery::{self, Scope},
};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::{sync::watch, task::JoinHandle};
use tracing::{info, warn};

use crate::{error::BedError, git::git};

/// The field manager Flux's kustomize-controller uses.
pub const FIELD_MANAGER: &str = "kustomize-controller";
/// Namespace of the Flux objects (and the value of the `kustomize.toolkit.fluxcd.io/namespace`
/// label on applied objects).
pub const FLUX_NAMESPACE: &str = "flux-system";
/// Name of the Flux `GitRepository` and `Kustomization` (and of the
/// `kustomize.toolkit.fluxcd.io/name` label on applied objects).
pub const FLUX_NAME: &str = "testbed";

/// Settings of the sync loop.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// Repository URL (e.g. [`crate::git::GitServer::url`]).
    pub url: String,
    /// Branch to follow.
    pub branch: String,
    /// Directory inside the repository whose manifests are applied ("" or "." for all).
    pub path: String,
    /// Poll interval.
    pub interval: Duration,
    /// Delete objects that disappeared from the repository.
    pub prune: bool,
    /// Where the checkout lives.
    pub checkout: PathBuf,
    /// Keep the status of Flux's `GitRepository` and `Kustomization` objects
    /// ([`FLUX_NAMESPACE`]/[`FLUX_NAME`]) up to date; create them first with
    /// [`create_flux_objects`].
    pub flux_objects: bool,
}

/// What the sync loop has done so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncStatus {
    /// SHA of the last revision applied completely.
    pub revision: Option<String>,
    /// Objects applied from that revision.
    pub applied: usize,
    /// The last error, cleared by the next successful sync.
    pub error: Option<String>,
    /// Completed syncs.
    pub syncs: u64,
}

/// A running sync loop; stops on drop.
#[derive(Debug)]
pub struct SyncLoop {
    status: watch::Receiver<SyncStatus>,
    task: Option<JoinHandle<()>>,
}

type Inventory = BTreeSet<(String, String, String, String)>;

impl SyncLoop {
    /// Starts polling.
    pub fn start(client: Client, config: SyncConfig) -> Self {
        let (tx, status) = watch::channel(SyncStatus::default());
        let task = tokio::spawn(run(client, config, tx));
        SyncLoop { status, task: Some(task) }
    }

    /// The current status.
    pub fn status(&self) -> SyncStatus {
        self.status.borrow().clone()
    }

    /// Waits until revision `sha` has been applied.
    pub async fn wait_for_revision(&self, sha: &str, timeout: Duration) -> Result<SyncStatus, BedError> {
        let mut rx = self.status.clone();
        let res = tokio::time::timeout(timeout, rx.wait_for(|s| s.revision.as_deref() == Some(sha))).await;
        match res {
            Ok(Ok(status)) => Ok(status.clone()),
            Ok(Err(_)) => Err(BedError::Process("sync loop stopped".into())),
            Err(_) => Err(BedError::Timeout(timeout, format!("sync of {sha}: status {:?}", self.status()))),
        }
    }
}

impl Drop for SyncLoop {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn run(client: Client, config: SyncConfig, status: watch::Sender<SyncStatus>) {
    let mut inventory = Inventory::new();
    let mut applied: Option<String> = None;
    loop {
        match remote_head(&config).await {
            Ok(Some(sha)) if applied.as_deref() != Some(&sha) => {
                let started = Instant::now();
                match sync(&client, &config, &sha, &mut inventory).await {
                    Ok(count) => {
                        info!(revision = %sha, objects = count, elapsed = ?started.elapsed(), "sync applied");
                        applied = Some(sha.clone());
                        if config.flux_objects
                            && let Err(err) = write_flux_status(&client, &config, &sha, None).await
                        {
                            warn!(%err, "sync: writing the Flux status failed");
                        }
                        status.send_modify(|s| {
                            s.revision = Some(sha);
                            s.applied = count;
                            s.error = None;
                            s.syncs += 1;
                        });
                    }
                    Err(err) => {
                        warn!(revision = %sha, %err, "sync failed");
                        if config.flux_objects {
                            let _ = write_flux_status(&client, &config, &sha, Some(&err.to_string())).await;
                        }
                        status.send_modify(|s| s.error = Some(err.to_string()));
                    }
                }
            }
            Ok(_) => {}
            Err(err) => {
                warn!(%err, "sync: reading the remote branch failed");
                status.send_modify(|s| s.error = Some(err.to_string()));
            }
        }
        tokio::time::sleep(config.interval).await;
    }
}

async fn remote_head(config: &SyncConfig) -> Result<Option<String>, BedError> {
    let out = git(None, &["ls-remote", &config.url, &format!("refs/heads/{}", config.branch)]).await?;
    Ok(out.split_whitespace().next().map(str::to_string))
}

async fn sync(
    client: &Client,
    config: &SyncConfig,
    sha: &str,
    inventory: &mut Inventory,
) -> Result<usize, BedError> {
    let dir = config.checkout.as_path();
    if !dir.join(".git").exists() {
        git(None, &["init", "--quiet", &dir.display().to_string()]).await?;
    }
    git(Some(dir), &["fetch", "--quiet", &config.url, &format!("refs/heads/{}", config.branch)]).await?;
    git(Some(dir), &["checkout", "--quiet", "--force", "--detach", sha]).await?;
    git(Some(dir), &["clean", "--quiet", "-fdx"]).await?;
    let root = match config.path.trim_matches('/') {
        "" | "." => dir.to_path_buf(),
        p => dir.join(p),
    };
    let mut objects = read_manifests(&root)?;
    objects.sort_by_key(|o| match o["kind"].as_str() {
        Some("Namespace") => 0,
        Some("CustomResourceDefinition") => 1,
        _ => 2,
    });
    let mut next = Inventory::new();
    for obj in &objects {
        next.insert(apply(client, obj).await?);
    }
    if config.prune {
        for (api_version, kind, namespace, name) in inventory.difference(&next) {
            let (ar, namespaced) = resolve(client, api_version, kind).await?;
            let api: Api<DynamicObject> = if namespaced {
                Api::namespaced_with(client.clone(), namespace, &ar)
            } else {
                Api::all_with(client.clone(), &ar)
            };
            match api.delete(name, &DeleteParams::background()).await {
                Ok(_) => info!(%kind, %namespace, %name, "pruned"),
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(err) => return Err(err.into()),
            }
        }
    }
    *inventory = next;
    Ok(objects.len())
}

/// Every object in the `*.yaml`/`*.yml` files under `root` (sorted by path; empty documents and
/// `List` wrappers handled).
pub fn read_manifests(root: &Path) -> Result<Vec<Value>, BedError> {
    let mut files = Vec::new();
    collect_files(root, &mut files)?;
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let text =
            std::fs::read_to_string(&file).map_err(BedError::io(format!("read {}", file.display())))?;
        for doc in serde_norway::Deserializer::from_str(&text) {
            let value =
                Value::deserialize(doc).map_err(|e| BedError::Parse(format!("{}: {e}", file.display())))?;
            match value {
                Value::Null => {}
                v if v["kind"] == "List" => out.extend(v["items"].as_array().cloned().unwrap_or_default()),
                v => out.push(v),
            }
        }
    }
    Ok(out)
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), BedError> {
    if !dir.exists() {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir).map_err(BedError::io(format!("list {}", dir.display())))? {
        let path = entry.map_err(BedError::io("read dir entry"))?.path();
        if path.file_name().is_some_and(|n| n == ".git") {
            continue;
        }
        if path.is_dir() {
            collect_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
    Ok(())
}

async fn resolve(client: &Client, api_version: &str, kind: &str) -> Result<(ApiResource, bool), BedError> {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let (ar, caps) = discovery::pinned_kind(client, &gvk).await?;
    Ok((ar, caps.scope == Scope::Namespaced))
}

async fn apply(client: &Client, obj: &Value) -> Result<(String, String, String, String), BedError> {
    let api_version = obj["apiVersion"].as_str().unwrap_or_default().to_string();
    let kind = obj["kind"].as_str().unwrap_or_default().to_string();
    let name = obj["metadata"]["name"].as_str().unwrap_or_default().to_string();
    if api_version.is_empty() || kind.is_empty() || name.is_empty() {
        return Err(BedError::Parse(format!("manifest without apiVersion, kind or metadata.name: {obj}")));
    }
    let (ar, namespaced) = resolve(client, &api_version, &kind).await?;
    let mut obj = obj.clone();
    let namespace = if namespaced {
        let ns = obj["metadata"]["namespace"].as_str().unwrap_or("default").to_string();
        obj["metadata"]["namespace"] = json!(ns);
        ns
    } else {
        String::new()
    };
    let labels = &mut obj["metadata"]["labels"];
    if !labels.is_object() {
        *labels = json!({});
    }
    labels["kustomize.toolkit.fluxcd.io/name"] = json!(FLUX_NAME);
    labels["kustomize.toolkit.fluxcd.io/namespace"] = json!(FLUX_NAMESPACE);
    let api: Api<DynamicObject> = if namespaced {
        Api::namespaced_with(client.clone(), &namespace, &ar)
    } else {
        Api::all_with(client.clone(), &ar)
    };
    api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&obj)).await?;
    Ok((api_version, kind, namespace, name))
}

fn flux_crd(group: &str, kind: &str, plural: &str) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.{group}")},
        "spec": {
            "group": group,
            "names": {
                "kind": kind,
                "listKind": format!("{kind}List"),
                "plural": plural,
                "singular": kind.to_lowercase(),
            },
            "scope": "Namespaced",
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": true,
                }},
                "subresources": {"status": {}},
            }],
        },
    })
}

fn git_repository_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("source.toolkit.fluxcd.io", "v1", "GitRepository"),
        "gitrepositories",
    )
}

fn kustomization_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("kustomize.toolkit.fluxcd.io", "v1", "Kustomization"),
        "kustomizations",
    )
}

/// Registers the two Flux CRDs and creates the `flux-system` namespace, GitRepository and
/// Kustomization for `config` (call before [`SyncLoop::start`] with `flux_objects`).
pub async fn create_flux_objects(client: &Client, config: &SyncConfig) -> Result<(), BedError> {
    let pp = PatchParams::apply("testbed").force();
    let crd_ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
        "customresourcedefinitions",
    );
    let crds: Api<DynamicObject> = Api::all_with(client.clone(), &crd_ar);
    for crd in [
        flux_crd("source.toolkit.fluxcd.io", "GitRepository", "gitrepositories"),
        flux_crd("kustomize.toolkit.fluxcd.io", "Kustomization", "kustomizations"),
    ] {
        let name = crd["metadata"]["name"].as_str().unwrap_or_default().to_string();
        crds.patch(&name, &pp, &Patch::Apply(&crd)).await?;
    }
    let ns_ar =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("", "v1", "Namespace"), "namespaces");
    let namespaces: Api<DynamicObject> = Api::all_with(client.clone(), &ns_ar);
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": FLUX_NAMESPACE}});
    namespaces.patch(FLUX_NAMESPACE, &pp, &Patch::Apply(&ns)).await?;
    let repo = json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "GitRepository",
        "metadata": {"name": FLUX_NAME, "namespace": FLUX_NAMESPACE},
        "spec": {"url": config.url, "ref": {"branch": config.branch}, "interval": "1m"},
    });
    let path = match config.path.trim_matches('/') {
        "" | "." => "./".to_string(),
        p => format!("./{p}"),
    };
    let kustomization = json!({
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": FLUX_NAME, "namespace": FLUX_NAMESPACE},
        "spec": {
            "path": path,
            "prune": config.prune,
            "interval": "1m",
            "sourceRef": {"kind": "GitRepository", "name": FLUX_NAME},
        },
    });
    let repos: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), FLUX_NAMESPACE, &git_repository_resource());
    repos.patch(FLUX_NAME, &pp, &Patch::Apply(&repo)).await?;
    let ks: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), FLUX_NAMESPACE, &kustomization_resource());
    ks.patch(FLUX_NAME, &pp, &Patch::Apply(&kustomization)).await?;
    Ok(())
}

/// Writes Flux-style status: the GitRepository's artifact revision and the Kustomization's
/// last attempted/applied revision with a `Ready` condition (`False` with `error`).
async fn write_flux_status(
    client: &Client,
    config: &SyncConfig,
    sha: &str,
    error: Option<&str>,
) -> Result<(), BedError> {
    let revision = format!("{}@sha1:{sha}", config.branch);
    let now = format!("{:.0}", jiff::Timestamp::now());
    let repos: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), FLUX_NAMESPACE, &git_repository_resource());
    let repo_status = json!({"status": {
        "artifact": {"revision": revision, "lastUpdateTime": now},
        "conditions": [{
            "type": "Ready",
            "status": "True",
            "reason": "Succeeded",
            "message": format!("stored artifact for revision '{revision}'"),
            "lastTransitionTime": now,
        }],
    }});
    repos.patch_status(FLUX_NAME, &PatchParams::default(), &Patch::Merge(&repo_status)).await?;
    let ks: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), FLUX_NAMESPACE, &kustomization_resource());
    let (ready, reason, message) = match error {
        None => ("True", "ReconciliationSucceeded", format!("Applied revision: {revision}")),
        Some(err) => ("False", "ReconciliationFailed", err.to_string()),
    };
    let mut status = json!({
        "lastAttemptedRevision": revision,
        "conditions": [{
            "type": "Ready",
            "status": ready,
            "reason": reason,
            "message": message,
            "lastTransitionTime": now,
        }],
    });
    if error.is_none() {
        status["lastAppliedRevision"] = json!(revision);
    }
    ks.patch_status(FLUX_NAME, &PatchParams::default(), &Patch::Merge(&json!({"status": status}))).await?;
    Ok(())
}
