//! Walking the branch with git2 to find the commits that changed the workload, the commits
//! that changed it again after the live one (a stale revert), and an earlier Serin commit for
//! the same failure (idempotence).
//!
//! The walk follows first parents from the branch head: that is the order the GitOps agent
//! applied them. A merge commit is judged by its diff against its first parent, and is never
//! reverted with `git revert` (it gets a restore commit). When the last promoted commit is not
//! known, the newest commit at or before the live commit that changed the workload is the one to
//! undo, and its first parent stands for the last promoted state.

use git2::{Commit, Oid, Repository};

use super::{
    changes::{FileImpact, WorkloadId, classify_file},
    revert::{TRAILER_CANARY, TRAILER_REVERTS, TRAILER_REVISION, parse_trailers},
};

/// Why the history cannot be read as needed.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The live commit is not reachable from the branch head (the branch was rewritten).
    #[error("commit {0} is not on the branch (within the walked history)")]
    LiveNotOnBranch(String),
    /// The last promoted commit is not reachable from the live commit.
    #[error("last promoted commit {0} is not an ancestor of the live commit (within the walked history)")]
    BaseNotFound(String),
    /// The walk reached the boundary of a shallow fetch: more history is needed.
    #[error("the fetched history is too shallow")]
    Truncated,
    /// libgit2 failed.
    #[error("git: {0}")]
    Git(#[from] git2::Error),
}

/// A commit that changed the workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TouchingCommit {
    /// Its id.
    pub oid: Oid,
    /// First line of its message.
    pub subject: String,
    /// What it touched.
    pub impact: FileImpact,
    /// The files it changed.
    pub files: Vec<String>,
    /// Whether it has more than one parent.
    pub merge: bool,
}

/// A Serin commit already on the branch for the same failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExistingRevert {
    /// Its id.
    pub oid: Oid,
    /// Its `Serin-Reverts` trailers.
    pub reverts: Vec<String>,
}

/// What the walk found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scan {
    /// A Serin commit for this failure, if the branch has one.
    pub existing: Option<ExistingRevert>,
    /// Commits to undo, newest first.
    pub to_revert: Vec<TouchingCommit>,
    /// Commits after the live one that changed the workload again, newest first.
    pub superseded_by: Vec<TouchingCommit>,
}

/// What to look for.
#[derive(Clone, Debug)]
pub struct ScanInput<'a> {
    /// Branch head.
    pub head: Oid,
    /// The commit that rolled out the failed release, if known.
    pub live: Option<Oid>,
    /// The last promoted commit, if known.
    pub base: Option<Oid>,
    /// The workload.
    pub workload: &'a WorkloadId,
    /// `namespace/name` of the Canary.
    pub canary: &'a str,
    /// The failed revision.
    pub revision: &'a str,
    /// Most commits to walk.
    pub limit: usize,
}

/// Text of a blob, lossily decoded.
fn blob_text(repo: &Repository, id: Oid) -> Result<Option<String>, git2::Error> {
    if id.is_zero() {
        return Ok(None);
    }
    let blob = repo.find_blob(id)?;
    Ok(Some(String::from_utf8_lossy(blob.content()).into_owned()))
}

/// How a commit (against its first parent) touches the workload, and the files it changed.
pub fn commit_impact(
    repo: &Repository,
    commit: &Commit<'_>,
    w: &WorkloadId,
) -> Result<(FileImpact, Vec<String>), git2::Error> {
    let tree = commit.tree()?;
    let parent_tree = if commit.parent_count() == 0 { None } else { Some(commit.parent(0)?.tree()?) };
    let diff = repo.diff_tree_to_tree(parent_tree.as_ref(), Some(&tree), None)?;
    let mut impact = FileImpact::default();
    let mut files = Vec::new();
    for delta in diff.deltas() {
        let old_path = delta.old_file().path().map(|p| p.to_string_lossy().into_owned());
        let new_path = delta.new_file().path().map(|p| p.to_string_lossy().into_owned());
        let Some(path) = new_path.or(old_path) else { continue };
        let before = blob_text(repo, delta.old_file().id())?;
        let after = blob_text(repo, delta.new_file().id())?;
        impact = impact.merge(classify_file(&path, before.as_deref(), after.as_deref(), w));
        files.push(path);
    }
    Ok((impact, files))
}

fn is_existing_revert(message: &str, input: &ScanInput<'_>) -> Option<Vec<String>> {
    let trailers = parse_trailers(message);
    let values = |k: &str| -> Vec<String> {
        trailers.iter().filter(|(key, _)| key == k).map(|(_, v)| v.clone()).collect()
    };
    if !values(TRAILER_CANARY).iter().any(|c| c == input.canary) {
        return None;
    }
    let reverts = values(TRAILER_REVERTS);
    let same_revision = values(TRAILER_REVISION).iter().any(|r| r == input.revision);
    let same_commit = input.live.is_some_and(|l| reverts.iter().any(|r| *r == l.to_string()));
    (same_revision || same_commit).then_some(reverts)
}

/// Walks first parents from the head; see the module docs.
pub fn scan(repo: &Repository, input: &ScanInput<'_>) -> Result<Scan, HistoryError> {
    let mut result = Scan::default();
    let mut commit = repo.find_commit(input.head)?;
    let mut passed_live = input.live.is_none();
    for _ in 0..input.limit {
        if Some(commit.id()) == input.base {
            break;
        }
        if !passed_live && Some(commit.id()) == input.live {
            passed_live = true;
        }
        if let Some(reverts) = is_existing_revert(commit.message().unwrap_or_default(), input) {
            result.existing = Some(ExistingRevert { oid: commit.id(), reverts });
            return Ok(result);
        }
        if commit.parent_count() > 0 && commit.parent(0).is_err() {
            // A shallow fetch's boundary: the parent was not fetched.
            return Err(HistoryError::Truncated);
        }
        let (impact, files) = commit_impact(repo, &commit, input.workload)?;
        if impact.touches_workload {
            let touching = TouchingCommit {
                oid: commit.id(),
                subject: commit.summary().ok().flatten().unwrap_or_default().to_string(),
                impact,
                files,
                merge: commit.parent_count() > 1,
            };
            if passed_live {
                result.to_revert.push(touching);
                if input.base.is_none() {
                    return Ok(result);
                }
            } else {
                result.superseded_by.push(touching);
            }
        }
        match commit.parent(0) {
            Ok(parent) => commit = parent,
            Err(_) => {
                // Reached the root commit.
                if !passed_live {
                    return Err(HistoryError::LiveNotOnBranch(
                        input.live.map(|l| l.to_string()).unwrap_or_default(),
                    ));
                }
                if let Some(base) = input.base {
                    return Err(HistoryError::BaseNotFound(base.to_string()));
                }
                return Ok(result);
            }
        }
    }
    if !passed_live {
        return Err(HistoryError::LiveNotOnBranch(input.live.map(|l| l.to_string()).unwrap_or_default()));
    }
    if let Some(base) = input.base
        && Some(commit.id()) != Some(base)
    {
        return Err(HistoryError::BaseNotFound(base.to_string()));
    }
    Ok(result)
}
