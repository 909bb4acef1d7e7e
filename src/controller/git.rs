//! The `RevertGit` effect: builds the revert request (source, credentials, failed images) and
//! records the outcome in `status.gitops`. Any failure becomes a `Failed` revert status with the
//! reason; it never stops the rest of the plan (traffic is already back on the primary).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::DynamicObject;

use super::context::Context;
use super::observe::Snapshot;
use super::secrets::secret_strings;
use crate::crd::Canary;
use crate::crd::canary::GitMode;
use crate::crd::status::{GitOpsStatus, GitRevertState};
use crate::gitops::changes::WorkloadId;
use crate::gitops::pull_request::PullRequestApi;
use crate::gitops::push::Credentials;
use crate::gitops::{Author, CanaryId, FailedRelease, RevertRequest, source};

/// Namespace where Argo CD Applications live, for source discovery.
pub const ARGOCD_NAMESPACE: &str = "argocd";

/// Git credentials from a Secret: `username`/`password` or `token` (HTTPS), or Flux's
/// `identity` and `known_hosts` (SSH).
pub fn credentials(data: &BTreeMap<String, String>) -> Credentials {
    if let Some(key) = data.get("identity") {
        return Credentials::Ssh {
            username: data.get("username").cloned().unwrap_or_else(|| "git".into()),
            private_key: key.clone(),
            passphrase: data.get("password").cloned(),
            known_hosts: data.get("known_hosts").cloned().unwrap_or_default(),
        };
    }
    match (data.get("username"), data.get("password"), data.get("token")) {
        (Some(username), Some(password), _) => {
            Credentials::Basic { username: username.clone(), password: password.clone() }
        }
        (_, _, Some(token)) => Credentials::Token { token: token.clone() },
        (None, Some(password), None) => Credentials::Token { token: password.clone() },
        _ => Credentials::None,
    }
}

fn failed_status(revision: &str, why: String) -> GitOpsStatus {
    GitOpsStatus {
        revision: revision.to_string(),
        state: GitRevertState::Failed,
        reverted_commits: None,
        revert_commit: None,
        pull_request_url: None,
        message: Some(why),
        last_transition_time: Some(Time(Timestamp::now())),
    }
}

fn images(snapshot: &Snapshot) -> Vec<String> {
    let pod = snapshot.target.spec.as_ref().and_then(|s| s.template.spec.as_ref());
    pod.map(|p| {
        p.containers
            .iter()
            .chain(p.init_containers.iter().flatten())
            .filter_map(|c| c.image.clone())
            .collect()
    })
    .unwrap_or_default()
}

/// Finds the Canary's Git source (explicit, or from the Flux / Argo CD objects managing the
/// target); the error says why not.
async fn resolve_source(
    ctx: &Context,
    canary: &Canary,
    snapshot: &Snapshot,
) -> Result<source::ResolvedSource, String> {
    let namespace = canary.metadata.namespace.clone().unwrap_or_default();
    let source_spec =
        canary.spec.gitops.as_ref().and_then(|g| g.source.clone()).unwrap_or(crate::crd::canary::GitSource {
            auto: Some(true),
            url: None,
            branch: None,
            path: None,
            secret_ref: None,
        });
    let target: DynamicObject = serde_json::to_value(&*snapshot.target)
        .and_then(serde_json::from_value)
        .map_err(|e| format!("reading the target: {e}"))?;
    source::resolve(&ctx.client, &source_spec, &namespace, &target, ARGOCD_NAMESPACE)
        .await
        .map_err(|e| format!("finding the Git source: {e}"))
}

/// The commit the GitOps agent has applied for the Canary's target now (recorded at
/// promotion as `status.lastPromotedCommit`); `None` when Git revert is off or the agent does
/// not report one (an explicit `url` source has no agent).
pub async fn live_commit(ctx: &Context, canary: &Canary, snapshot: &Snapshot) -> Option<String> {
    if !canary.spec.gitops.as_ref().is_some_and(|g| g.revert) {
        return None;
    }
    match resolve_source(ctx, canary, snapshot).await {
        Ok(resolved) => resolved.live_commit,
        Err(why) => {
            tracing::warn!(%why, "promoted commit not recorded");
            None
        }
    }
}

/// Performs the revert of `revision` and returns the status to record.
pub async fn revert(
    ctx: &Context,
    canary: &Canary,
    snapshot: &Snapshot,
    revision: &str,
    reason: &str,
    failed_checks: &[String],
) -> GitOpsStatus {
    let Some(gitops) = &canary.spec.gitops else {
        return failed_status(revision, "spec.gitops is not set".into());
    };
    let namespace = canary.metadata.namespace.clone().unwrap_or_default();
    let name = canary.metadata.name.clone().unwrap_or_default();
    let resolved = match resolve_source(ctx, canary, snapshot).await {
        Ok(resolved) => resolved,
        Err(why) => return failed_status(revision, why),
    };
    let secret_data = match &resolved.secret {
        Some(secret) => match secret_strings(&ctx.stores, &secret.namespace, &secret.name) {
            Ok(data) => data,
            Err(e) => return failed_status(revision, format!("Git credentials: {e}")),
        },
        None => BTreeMap::new(),
    };
    let mode = gitops.mode.unwrap_or(GitMode::Push);
    let token = secret_data.get("token").or_else(|| secret_data.get("password"));
    let pull_request = match (mode, token) {
        (GitMode::PullRequest, Some(token)) => PullRequestApi::from_clone_url(&resolved.url, token),
        _ => None,
    };
    let images = images(snapshot);
    let request = RevertRequest {
        canary: CanaryId { namespace: namespace.clone(), name },
        workload: WorkloadId::new("Deployment", &namespace, &canary.spec.target_ref.name, &images),
        failed: FailedRelease {
            revision: revision.to_string(),
            images,
            commit: resolved.live_commit.clone(),
        },
        last_promoted_commit: canary.status.as_ref().and_then(|s| s.last_promoted_commit.clone()),
        reason: reason.to_string(),
        failed_checks: failed_checks.to_vec(),
        author: Author::from(gitops.author.as_ref()),
        mode,
        credentials: credentials(&secret_data),
        pull_request,
        source: resolved,
    };
    match ctx.git.revert(request).await {
        Ok(outcome) => {
            let mut status = outcome.to_status(revision);
            status.last_transition_time = Some(Time(Timestamp::now()));
            status
        }
        Err(e) => failed_status(revision, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn credentials_follow_flux_secret_keys() {
        assert_eq!(credentials(&data(&[])), Credentials::None);
        assert_eq!(credentials(&data(&[("token", "t")])), Credentials::Token { token: "t".into() });
        assert_eq!(
            credentials(&data(&[("username", "u"), ("password", "p")])),
            Credentials::Basic { username: "u".into(), password: "p".into() }
        );
        assert_eq!(credentials(&data(&[("password", "p")])), Credentials::Token { token: "p".into() });
        assert_eq!(
            credentials(&data(&[("identity", "KEY"), ("known_hosts", "host ssh-ed25519 AAA")])),
            Credentials::Ssh {
                username: "git".into(),
                private_key: "KEY".into(),
                passphrase: None,
                known_hosts: "host ssh-ed25519 AAA".into()
            }
        );
    }
}
