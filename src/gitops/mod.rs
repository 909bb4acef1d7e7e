//! GitOps rollback: when a release is rolled back, revert the change in Git so Flux or Argo CD
//! do not re-apply the bad version.
//!
//! The reconciler talks to a [`GitReverter`] (a trait, so it can be tested with fakes); the real
//! one is [`Git2Reverter`], built on libgit2 (`git2`), whose blocking work runs in
//! `tokio::task::spawn_blocking`. The pieces, one job per file:
//! - [`source`]: which repository, branch and path hold the workload (explicit, Flux, Argo CD);
//! - [`changes`]: which parts of a file belong to the workload, and whether a change touches it
//!   (pure, over file contents);
//! - [`history`]: walking the branch with git2 to find the commits that changed the workload;
//! - [`revert`]: the revert commit, or the forward restore commit, and their messages;
//! - [`push`]: fetching, credentials, pushing (never forced) with bounded retries, and the
//!   whole fetch → decide → commit → push loop;
//! - [`pull_request`]: opening the pull request (GitHub) or merge request (GitLab).
//!
//! Order and exactly-once: the caller moves traffic back to the primary first, records
//! `status.gitops` as `Pending`, then calls [`GitReverter::revert`] and records the outcome
//! ([`RevertOutcome::to_status`]). The reverter is idempotent as well: the Serin trailers
//! (`Serin-Canary`, `Serin-Revision`, `Serin-Reverts`) on the branch are checked before acting,
//! so a restart or a second controller returns the existing commit instead of a second one.
//!
//! Limits (documented, not done here): commit signing (libgit2 can create signed commits only
//! with a signature made by the caller; no GPG/SSH signer is wired in); Flux `ImagePolicy`
//! exclusions for the quarantined image; partial clone (libgit2 has no `--filter`): instead the
//! branch is fetched alone (no tags), shallow at first and deepened only when needed, into a
//! cached bare repository, so later fetches are incremental.

pub mod changes;
pub mod history;
pub mod pull_request;
pub mod push;
pub mod revert;
pub mod source;

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex},
};

use async_trait::async_trait;

use crate::crd::{
    canary::{GitAuthor, GitMode},
    status::{GitOpsStatus, GitRevertState},
};
pub use changes::WorkloadId;
pub use pull_request::PullRequestApi;
pub use push::Credentials;
pub use source::ResolvedSource;

/// Default author of Serin's commits.
pub const DEFAULT_AUTHOR_NAME: &str = "Serin";
/// Default author email of Serin's commits.
pub const DEFAULT_AUTHOR_EMAIL: &str = "serin@serin.dev";

/// Errors of the GitOps rollback that are not an outcome (the caller retries them later).
#[derive(Debug, thiserror::Error)]
pub enum GitOpsError {
    /// Resolving the source failed.
    #[error(transparent)]
    Source(#[from] source::SourceError),
    /// A Git operation failed.
    #[error("git: {context}: {source}")]
    Git {
        /// What was being done.
        context: String,
        /// The libgit2 error.
        #[source]
        source: git2::Error,
    },
    /// Fetching or pushing failed.
    #[error(transparent)]
    Push(#[from] push::PushError),
    /// The pull-request API call failed.
    #[error(transparent)]
    PullRequest(#[from] pull_request::PullRequestError),
    /// The request is not usable.
    #[error("invalid revert request: {0}")]
    Invalid(String),
    /// The blocking task panicked or was cancelled.
    #[error("git task did not finish: {0}")]
    Task(String),
}

impl GitOpsError {
    /// Wraps a libgit2 error with what was being done.
    pub fn git(context: impl Into<String>, source: git2::Error) -> Self {
        GitOpsError::Git { context: context.into(), source }
    }
}

/// `namespace/name` of a Canary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CanaryId {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl std::fmt::Display for CanaryId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The release that failed.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct FailedRelease {
    /// The failed revision (pod-template hash plus tracked configs).
    pub revision: String,
    /// Image references the canary ran (`repo:tag` or `repo@sha256:…`); used to check that the
    /// branch still says what the canary rolled out.
    pub images: Vec<String>,
    /// The commit that rolled it out, when known (Flux `lastAppliedRevision`, Argo CD
    /// `status.sync.revision`); defaults to [`ResolvedSource::live_commit`].
    pub commit: Option<String>,
}

/// Author of Serin's commits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Author {
    /// Name.
    pub name: String,
    /// Email.
    pub email: String,
}

impl Default for Author {
    fn default() -> Self {
        Author { name: DEFAULT_AUTHOR_NAME.into(), email: DEFAULT_AUTHOR_EMAIL.into() }
    }
}

impl From<Option<&GitAuthor>> for Author {
    /// `spec.gitops.author`, or Serin's default identity.
    fn from(author: Option<&GitAuthor>) -> Self {
        author.map_or_else(Author::default, |a| Author { name: a.name.clone(), email: a.email.clone() })
    }
}

/// Everything a revert needs.
#[derive(Clone, Debug)]
pub struct RevertRequest {
    /// The Canary.
    pub canary: CanaryId,
    /// The target workload (kind, name, namespace, image repositories, values files).
    pub workload: WorkloadId,
    /// The resolved Git source.
    pub source: ResolvedSource,
    /// The failed release.
    pub failed: FailedRelease,
    /// The commit of the last promoted release, recorded at promotion, if known.
    pub last_promoted_commit: Option<String>,
    /// Why the release was rolled back.
    pub reason: String,
    /// Names of the failed checks.
    pub failed_checks: Vec<String>,
    /// Author of the commit.
    pub author: Author,
    /// Push to the branch or open a pull request.
    pub mode: GitMode,
    /// Resolved credentials (never logged).
    pub credentials: Credentials,
    /// Where to open the pull request in `PullRequest` mode; `None` pushes the branch only.
    pub pull_request: Option<PullRequestApi>,
}

/// How the change was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommitKind {
    /// A `git revert` of the original commit(s).
    Revert,
    /// A forward commit restoring only this workload's fields.
    Restore,
}

/// What the reverter did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RevertOutcome {
    /// The commit is on the branch.
    Pushed {
        /// SHA of the revert or restore commit.
        sha: String,
        /// The commits whose change was undone.
        reverted: Vec<String>,
        /// Revert or restore (`None` when an earlier Serin commit was found and reused).
        kind: Option<CommitKind>,
    },
    /// A branch with the commit was pushed and (when an API is configured) a pull request opened.
    PullRequest {
        /// URL of the pull request, when one was opened.
        url: Option<String>,
        /// The pushed branch.
        branch: String,
        /// SHA of the commit.
        sha: String,
        /// The commits whose change is undone.
        reverted: Vec<String>,
    },
    /// Nothing to do, or refused as stale; `why` says which.
    NotNeeded {
        /// The reason.
        why: String,
    },
    /// No commit could be made: a human must revert `commit_to_revert`.
    Failed {
        /// The commit a human must revert.
        commit_to_revert: String,
        /// Why Serin could not.
        why: String,
    },
}

impl RevertOutcome {
    /// The status state this outcome maps onto.
    pub fn state(&self) -> GitRevertState {
        match self {
            RevertOutcome::Pushed { .. } => GitRevertState::Pushed,
            RevertOutcome::PullRequest { .. } => GitRevertState::PullRequestOpened,
            RevertOutcome::NotNeeded { .. } => GitRevertState::NotNeeded,
            RevertOutcome::Failed { .. } => GitRevertState::Failed,
        }
    }

    /// The `status.gitops` to record for `revision` (without the transition time, which the
    /// caller sets).
    pub fn to_status(&self, revision: &str) -> GitOpsStatus {
        let mut status = GitOpsStatus {
            revision: revision.to_string(),
            state: self.state(),
            reverted_commits: None,
            revert_commit: None,
            pull_request_url: None,
            message: None,
            last_transition_time: None,
        };
        match self {
            RevertOutcome::Pushed { sha, reverted, kind } => {
                status.revert_commit = Some(sha.clone());
                status.reverted_commits = Some(reverted.clone());
                status.message = Some(match kind {
                    Some(CommitKind::Revert) => format!("reverted in {sha}"),
                    Some(CommitKind::Restore) => format!("restored the promoted values in {sha}"),
                    None => format!("already reverted in {sha}"),
                });
            }
            RevertOutcome::PullRequest { url, branch, sha, reverted } => {
                status.revert_commit = Some(sha.clone());
                status.reverted_commits = Some(reverted.clone());
                status.pull_request_url = url.clone();
                status.message = Some(format!("branch {branch} pushed"));
            }
            RevertOutcome::NotNeeded { why } => status.message = Some(why.clone()),
            RevertOutcome::Failed { commit_to_revert, why } => {
                status.reverted_commits = Some(vec![commit_to_revert.clone()]);
                status.message = Some(format!("revert {commit_to_revert} by hand: {why}"));
            }
        }
        status
    }
}

/// Reverts a failed release in Git. Dyn-compatible, so the reconciler holds an
/// `Arc<dyn GitReverter>` and tests use fakes.
#[async_trait]
pub trait GitReverter: Send + Sync {
    /// Reverts (or restores) the change that introduced the failed release, exactly once.
    async fn revert(&self, request: RevertRequest) -> Result<RevertOutcome, GitOpsError>;
}

/// Called before each push attempt with the attempt number (1-based); lets tests race another
/// writer against the reverter.
pub type BeforePushHook = Arc<dyn Fn(u32) + Send + Sync>;

/// Settings of [`Git2Reverter`].
#[derive(Clone)]
pub struct ReverterConfig {
    /// Directory for cached bare clones (one per URL); a temporary directory per call if `None`.
    pub cache_dir: Option<PathBuf>,
    /// Fetch → commit → push attempts before giving up on non-fast-forward rejections.
    pub max_attempts: u32,
    /// Most commits walked back from the branch head.
    pub history_limit: usize,
    /// Depth of the first fetch into an empty cache (`None`: the whole branch). When the walk
    /// reaches the shallow boundary before the live or last promoted commit, Serin fetches ten
    /// times deeper, and finally the whole history.
    pub fetch_depth: Option<u32>,
    /// Hook run before each push (tests).
    pub before_push: Option<BeforePushHook>,
}

impl Default for ReverterConfig {
    fn default() -> Self {
        ReverterConfig {
            cache_dir: None,
            max_attempts: 5,
            history_limit: 2_000,
            fetch_depth: Some(100),
            before_push: None,
        }
    }
}

impl std::fmt::Debug for ReverterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReverterConfig")
            .field("cache_dir", &self.cache_dir)
            .field("max_attempts", &self.max_attempts)
            .field("history_limit", &self.history_limit)
            .field("fetch_depth", &self.fetch_depth)
            .field("before_push", &self.before_push.is_some())
            .finish()
    }
}

/// The real reverter: libgit2 in `spawn_blocking`, then the pull-request API over HTTPS.
#[derive(Debug, Clone, Default)]
pub struct Git2Reverter {
    config: ReverterConfig,
    locks: Arc<Mutex<HashMap<String, Arc<Mutex<()>>>>>,
}

impl Git2Reverter {
    /// A reverter with these settings.
    pub fn new(config: ReverterConfig) -> Self {
        Git2Reverter { config, locks: Arc::default() }
    }

    fn lock_for(&self, url: &str) -> Arc<Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(url.to_string()).or_default().clone()
    }
}

#[async_trait]
impl GitReverter for Git2Reverter {
    async fn revert(&self, request: RevertRequest) -> Result<RevertOutcome, GitOpsError> {
        tracing::info!(
            canary = %request.canary,
            url = %push::redact_url(&request.source.url),
            branch = %request.source.branch,
            revision = %request.failed.revision,
            mode = ?request.mode,
            "reverting the failed release in git"
        );
        let config = self.config.clone();
        let lock = self.lock_for(&request.source.url);
        let req = request.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            // One revert per repository at a time in this process: the cached clone is shared.
            let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
            push::run_blocking(&req, &config)
        })
        .await
        .map_err(|e| GitOpsError::Task(e.to_string()))??;
        let outcome = match (outcome, &request.pull_request) {
            (RevertOutcome::PullRequest { url: None, branch, sha, reverted }, Some(api)) => {
                let title = format!("Revert the failed release of {}", request.canary);
                let body = format!(
                    "Serin rolled back canary {}: {}\n\nFailed checks: {}\nReverts: {}\n",
                    request.canary,
                    request.reason,
                    request.failed_checks.join(", "),
                    reverted.join(", ")
                );
                let url = pull_request::open(api, &branch, &request.source.branch, &title, &body).await?;
                RevertOutcome::PullRequest { url: Some(url), branch, sha, reverted }
            }
            (other, _) => other,
        };
        tracing::info!(canary = %request.canary, state = ?outcome.state(), "git revert finished");
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_map_onto_status() {
        let pushed = RevertOutcome::Pushed {
            sha: "b".into(),
            reverted: vec!["a".into()],
            kind: Some(CommitKind::Revert),
        };
        let s = pushed.to_status("rev1");
        assert_eq!((s.state, s.revert_commit.as_deref()), (GitRevertState::Pushed, Some("b")));
        let failed = RevertOutcome::Failed { commit_to_revert: "a".into(), why: "conflict".into() };
        let s = failed.to_status("rev1");
        assert_eq!(s.state, GitRevertState::Failed);
        assert_eq!(s.reverted_commits, Some(vec!["a".to_string()]));
        assert_eq!(s.message.as_deref(), Some("revert a by hand: conflict"));
        let pr = RevertOutcome::PullRequest {
            url: Some("u".into()),
            branch: "b".into(),
            sha: "c".into(),
            reverted: vec![],
        };
        assert_eq!(pr.to_status("r").pull_request_url.as_deref(), Some("u"));
        assert_eq!(RevertOutcome::NotNeeded { why: "x".into() }.state(), GitRevertState::NotNeeded);
    }

    struct Fake;

    #[async_trait]
    impl GitReverter for Fake {
        async fn revert(&self, _request: RevertRequest) -> Result<RevertOutcome, GitOpsError> {
            Ok(RevertOutcome::NotNeeded { why: "fake".into() })
        }
    }

    #[test]
    fn trait_is_dyn_compatible() {
        let reverter: Arc<dyn GitReverter> = Arc::new(Fake);
        let _ = reverter;
        let real: Arc<dyn GitReverter> = Arc::new(Git2Reverter::default());
        let _ = real;
    }
}
