//! The change itself: the revert commit's message and trailers, and the forward **restore**
//! of a workload's fields when a plain revert is not possible.
//!
//! How a restore edits YAML: it never re-serialises a file. For every owned unit that differs
//! between the last promoted tree ("base") and the branch head, it computes the scalar leaves
//! that differ (for example `image`, `newTag`, `digest`, `tag`) and rewrites only the value
//! part of the matching `key: value` line inside the unit's document (for kustomize `images:`
//! entries, inside that list entry), keeping indentation, quoting style and trailing comments.
//! When the shapes differ (a key or list item added or removed) and the unit is a whole
//! document (the Deployment, a HelmRelease), the document's lines are replaced by the base
//! document's lines; other documents of the file stay byte-identical. Every result is
//! re-parsed and verified: the workload's units must equal the base's and everything else must
//! equal the head's, otherwise the restore is refused ([`RestoreError`]) and a human is asked.

use git2::{Commit, Index, IndexEntry, IndexTime, Oid, Repository, Signature, Tree};
use serde_json::Value;

use super::{
    CommitKind, GitOpsError, RevertOutcome, RevertRequest,
    changes::{OwnedUnit, ParsedFile, WorkloadId, owned_mentions, parse_file, split_image},
    history::{HistoryError, ScanInput, TouchingCommit, scan},
};

/// Trailer naming the Canary (`namespace/name`).
pub const TRAILER_CANARY: &str = "Serin-Canary";
/// Trailer naming a reverted commit (one per commit).
pub const TRAILER_REVERTS: &str = "Serin-Reverts";
/// Trailer naming the failed revision (pod-template hash).
pub const TRAILER_REVISION: &str = "Serin-Revision";
/// Trailer listing the failed checks.
pub const TRAILER_FAILED_CHECKS: &str = "Serin-Failed-Checks";
/// Trailer telling whether the commit is a `revert` or a `restore`.
pub const TRAILER_ACTION: &str = "Serin-Action";

/// Why a restore cannot be made safely.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RestoreError {
    /// The workload's part of a file changed shape and cannot be put back by a targeted edit.
    #[error("{path}: cannot restore {unit}: {why}")]
    Unrestorable {
        /// File path.
        path: String,
        /// Owned unit key.
        unit: String,
        /// What went wrong.
        why: String,
    },
}

/// A commit being reverted, as named in messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitInfo {
    /// Full SHA.
    pub sha: String,
    /// First line of its message.
    pub subject: String,
}

/// What every Serin commit message says about the rollback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageContext {
    /// `namespace/name` of the Canary.
    pub canary: String,
    /// The failed revision.
    pub revision: String,
    /// Why the release was rolled back.
    pub reason: String,
    /// Names of the failed checks.
    pub failed_checks: Vec<String>,
}

/// Makes a value safe for a single-line trailer or subject.
fn one_line(s: &str) -> String {
    let flat: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let trimmed = flat.trim();
    if trimmed.chars().count() > 200 {
        trimmed.chars().take(200).collect::<String>() + "…"
    } else {
        trimmed.into()
    }
}

fn trailers(action: &str, reverted: &[CommitInfo], ctx: &MessageContext) -> String {
    let mut t = format!("{TRAILER_CANARY}: {}\n", one_line(&ctx.canary));
    t += &format!("{TRAILER_REVISION}: {}\n", one_line(&ctx.revision));
    for c in reverted {
        t += &format!("{TRAILER_REVERTS}: {}\n", c.sha);
    }
    let checks = if ctx.failed_checks.is_empty() {
        "none".to_string()
    } else {
        ctx.failed_checks.iter().map(|c| one_line(c)).collect::<Vec<_>>().join(", ")
    };
    t += &format!("{TRAILER_FAILED_CHECKS}: {checks}\n");
    t += &format!("{TRAILER_ACTION}: {action}\n");
    t
}

/// Message of a revert commit: `Revert "<subject>"` (or `Revert N commits of <canary>`), the
/// reason, and the Serin trailers.
pub fn revert_message(reverted: &[CommitInfo], ctx: &MessageContext) -> String {
    let mut msg = match reverted {
        [one] => format!("Revert \"{}\"\n\nThis reverts commit {}.\n", one_line(&one.subject), one.sha),
        many => {
            let mut m = format!("Revert {} commits of {}\n\n", many.len(), one_line(&ctx.canary));
            for c in many {
                m += &format!("This reverts commit {} (\"{}\").\n", c.sha, one_line(&c.subject));
            }
            m
        }
    };
    msg += &format!("\nSerin rolled back canary {}: {}\n\n", one_line(&ctx.canary), one_line(&ctx.reason));
    msg + &trailers("revert", reverted, ctx)
}

/// Message of a restore commit: names the commits whose change to this workload is undone and
/// the files edited.
pub fn restore_message(reverted: &[CommitInfo], files: &[String], why: &str, ctx: &MessageContext) -> String {
    let mut msg = format!("Restore {} to its last promoted version\n\n", one_line(&ctx.canary));
    for c in reverted {
        msg += &format!(
            "Undoes the change of commit {} (\"{}\") to this workload only.\n",
            c.sha,
            one_line(&c.subject)
        );
    }
    msg += &format!("A plain revert was not possible: {}.\n", one_line(why));
    msg += &format!("Files restored: {}.\n", files.join(", "));
    msg += &format!("\nSerin rolled back canary {}: {}\n\n", one_line(&ctx.canary), one_line(&ctx.reason));
    msg + &trailers("restore", reverted, ctx)
}

/// The trailers of a commit message (`Key: value` lines of its last paragraph).
pub fn parse_trailers(message: &str) -> Vec<(String, String)> {
    let trimmed = message.trim_end();
    let last = trimmed.rsplit("\n\n").next().unwrap_or("");
    let mut out = Vec::new();
    for line in last.lines() {
        let Some((key, value)) = line.split_once(": ") else {
            return Vec::new();
        };
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Vec::new();
        }
        out.push((key.to_string(), value.trim().to_string()));
    }
    out
}

/// One scalar that differs between base and head.
#[derive(Debug, Clone, PartialEq)]
struct ScalarDiff {
    key: String,
    current: String,
    wanted: Value,
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Collects scalar differences; `Err` when the shapes differ.
fn scalar_diffs(
    base: &Value,
    head: &Value,
    key: Option<&str>,
    out: &mut Vec<ScalarDiff>,
) -> Result<(), String> {
    match (base, head) {
        (Value::Object(b), Value::Object(h)) => {
            if b.len() != h.len() || b.keys().any(|k| !h.contains_key(k)) {
                return Err("keys were added or removed".into());
            }
            for (k, bv) in b {
                if let Some(hv) = h.get(k) {
                    scalar_diffs(bv, hv, Some(k), out)?;
                }
            }
            Ok(())
        }
        (Value::Array(b), Value::Array(h)) => {
            if b.len() != h.len() {
                return Err("list items were added or removed".into());
            }
            for (bv, hv) in b.iter().zip(h) {
                // A list item has no key of its own (nested objects carry theirs), so a changed
                // scalar item cannot be located by a `key: value` line.
                scalar_diffs(bv, hv, None, out)?;
            }
            Ok(())
        }
        (b, h) if b == h => Ok(()),
        (b, h) => {
            let (Some(key), Some(current), Some(_)) = (key, scalar_text(h), scalar_text(b)) else {
                return Err("a non-scalar value changed".into());
            };
            out.push(ScalarDiff { key: key.to_string(), current, wanted: b.clone() });
            Ok(())
        }
    }
}

/// A `key: value` line, split into the part before the value, the value, and the rest.
struct KeyLine<'a> {
    prefix: &'a str,
    quote: Option<char>,
    value: &'a str,
    suffix: &'a str,
}

fn parse_key_line<'a>(line: &'a str, key: &str) -> Option<KeyLine<'a>> {
    let body = line.trim_start();
    let body = body.strip_prefix("- ").map(str::trim_start).unwrap_or(body);
    let after_key = body.strip_prefix(key)?.trim_start();
    let after_colon = after_key.strip_prefix(':')?;
    if !after_colon.is_empty() && !after_colon.starts_with([' ', '\t']) {
        return None;
    }
    let value_part = after_colon.trim_start();
    let value_start = line.len() - value_part.len();
    let prefix = &line[..value_start];
    if let Some(q) = value_part.chars().next().filter(|c| *c == '"' || *c == '\'') {
        let inner = &value_part[1..];
        let end = inner.find(q)?;
        let value = &inner[..end];
        let suffix = &inner[end + 1..];
        return Some(KeyLine { prefix, quote: Some(q), value, suffix });
    }
    let (value, suffix) = match value_part.find(" #") {
        Some(i) => (value_part[..i].trim_end(), &value_part[value_part[..i].trim_end().len()..]),
        None => (value_part.trim_end(), &value_part[value_part.trim_end().len()..]),
    };
    Some(KeyLine { prefix, quote: None, value, suffix })
}

fn render_scalar(wanted: &Value, quote: Option<char>) -> Option<String> {
    let text = scalar_text(wanted)?;
    let needs_quotes = match wanted {
        Value::String(s) => serde_norway::from_str::<Value>(s).ok() != Some(Value::String(s.clone())),
        _ => false,
    };
    match (quote, wanted) {
        (Some('\''), Value::String(s)) => Some(format!("'{}'", s.replace('\'', "''"))),
        (Some(_), Value::String(s)) => serde_json::to_string(s).ok(),
        (None, Value::String(s)) if needs_quotes => serde_json::to_string(s).ok(),
        _ => Some(text),
    }
}

/// Lines of the list entry anchored by `name: <anchor>` inside `range`.
fn entry_range(
    lines: &[String],
    range: std::ops::Range<usize>,
    anchor: &str,
) -> Option<std::ops::Range<usize>> {
    let anchor_line =
        range.clone().find(|&i| parse_key_line(&lines[i], "name").is_some_and(|k| k.value == anchor))?;
    let start = (range.start..=anchor_line).rev().find(|&i| lines[i].trim_start().starts_with("- "))?;
    let indent = lines[start].len() - lines[start].trim_start().len();
    let end = (start + 1..range.end)
        .find(|&i| {
            let l = &lines[i];
            let t = l.trim_start();
            !t.is_empty() && !t.starts_with('#') && (l.len() - t.len()) <= indent
        })
        .unwrap_or(range.end);
    Some(start..end)
}

fn unrestorable(path: &str, unit: &str, why: impl Into<String>) -> RestoreError {
    RestoreError::Unrestorable { path: path.into(), unit: unit.into(), why: why.into() }
}

/// Tries targeted scalar edits for one unit; returns `Err(why)` when they cannot be made.
fn edit_scalars(
    lines: &mut [String],
    range: std::ops::Range<usize>,
    base: &OwnedUnit,
    head: &OwnedUnit,
) -> Result<(), String> {
    let mut diffs = Vec::new();
    scalar_diffs(&base.value, &head.value, None, &mut diffs)?;
    let region = match &head.anchor {
        Some(anchor) => entry_range(lines, range, anchor).ok_or("list entry not found")?,
        None => range,
    };
    let mut groups: Vec<(ScalarDiff, usize)> = Vec::new();
    for d in diffs {
        match groups.iter_mut().find(|(g, _)| *g == d) {
            Some((_, n)) => *n += 1,
            None => groups.push((d, 1)),
        }
    }
    for (diff, count) in groups {
        let hits: Vec<usize> = region
            .clone()
            .filter(|&i| parse_key_line(&lines[i], &diff.key).is_some_and(|k| k.value == diff.current))
            .collect();
        if hits.len() != count {
            return Err(format!(
                "found {} lines `{}: {}`, expected {count}",
                hits.len(),
                diff.key,
                diff.current
            ));
        }
        for i in hits {
            let line = lines[i].clone();
            let k = parse_key_line(&line, &diff.key).ok_or("line changed")?;
            let value = render_scalar(&diff.wanted, k.quote).ok_or("value cannot be written")?;
            lines[i] = format!("{}{}{}", k.prefix, value, k.suffix);
        }
    }
    Ok(())
}

/// Restores the workload's units of one file from `base_text` into `head_text`, keeping
/// everything else of the head. `Ok(None)` when the head already has the base's values.
pub fn restore_text(
    path: &str,
    head_text: &str,
    base_text: &str,
    w: &WorkloadId,
) -> Result<Option<String>, RestoreError> {
    let head = parse_file(path, head_text, w);
    let base = parse_file(path, base_text, w);
    if head.owned_values() == base.owned_values() {
        return Ok(None);
    }
    if head.documents.is_empty() {
        return Err(unrestorable(path, "file", "not a YAML file"));
    }
    let crlf = head_text.contains("\r\n");
    let mut lines: Vec<String> = head_text.lines().map(str::to_string).collect();
    let base_lines: Vec<&str> = base_text.lines().collect();
    let keys: std::collections::BTreeSet<&String> = head.owned.keys().chain(base.owned.keys()).collect();
    let mut splices = Vec::new();
    for key in keys {
        let (Some(h), Some(b)) = (head.owned.get(key), base.owned.get(key)) else {
            return Err(unrestorable(path, key, "it exists on one side only"));
        };
        if h.value == b.value {
            continue;
        }
        let range = head.documents[h.document].lines.clone();
        if let Err(why) = edit_scalars(&mut lines, range.clone(), b, h) {
            if h.whole_document && b.whole_document {
                splices.push((range, base.documents[b.document].lines.clone()));
            } else {
                return Err(unrestorable(path, key, why));
            }
        }
    }
    splices.sort_by_key(|(r, _)| std::cmp::Reverse(r.start));
    for (head_range, base_range) in splices {
        let replacement: Vec<String> = base_lines[base_range].iter().map(|s| s.to_string()).collect();
        lines.splice(head_range, replacement);
    }
    let mut text = lines.join(if crlf { "\r\n" } else { "\n" });
    if head_text.ends_with('\n') {
        text.push_str(if crlf { "\r\n" } else { "\n" });
    }
    verify(path, &text, &head, &base, w)?;
    Ok(Some(text))
}

fn verify(
    path: &str,
    text: &str,
    head: &ParsedFile,
    base: &ParsedFile,
    w: &WorkloadId,
) -> Result<(), RestoreError> {
    let new = parse_file(path, text, w);
    if new.owned_values() != base.owned_values() {
        return Err(unrestorable(path, "workload", "the edited file does not match the promoted values"));
    }
    if new.rest != head.rest {
        return Err(unrestorable(path, "rest", "the edit would change other parts of the file"));
    }
    Ok(())
}

/// A commit built locally, ready to push.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Built {
    /// The new commit.
    pub oid: Oid,
    /// Revert or restore.
    pub kind: CommitKind,
    /// The commits it undoes.
    pub reverted: Vec<String>,
}

/// What to do after looking at the branch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Nothing to push: this is the answer.
    Done(RevertOutcome),
    /// Push this commit.
    Commit(Built),
    /// The fetched history is too shallow to decide; fetch deeper and plan again.
    NeedHistory,
}

fn git(context: &str) -> impl FnOnce(git2::Error) -> GitOpsError + '_ {
    move |e| GitOpsError::git(context, e)
}

fn known_commit(repo: &Repository, sha: Option<&str>) -> Option<Oid> {
    let oid = Oid::from_str(sha?).ok()?;
    repo.find_commit(oid).ok().map(|c| c.id())
}

fn text_at(repo: &Repository, tree: &Tree<'_>, path: &str) -> Result<Option<String>, git2::Error> {
    let entry = match tree.get_path(std::path::Path::new(path)) {
        Ok(e) => e,
        Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let blob = repo.find_blob(entry.id())?;
    Ok(Some(String::from_utf8_lossy(blob.content()).into_owned()))
}

fn message_context(req: &RevertRequest) -> MessageContext {
    MessageContext {
        canary: req.canary.to_string(),
        revision: req.failed.revision.clone(),
        reason: req.reason.clone(),
        failed_checks: req.failed_checks.clone(),
    }
}

fn infos(commits: &[TouchingCommit]) -> Vec<CommitInfo> {
    commits.iter().map(|c| CommitInfo { sha: c.oid.to_string(), subject: c.subject.clone() }).collect()
}

/// Looks at the branch at `head` and decides: an outcome without a commit (already reverted,
/// nothing to do, stale, impossible), or a revert/restore commit on top of `head`.
pub fn plan(repo: &Repository, head: Oid, req: &RevertRequest, limit: usize) -> Result<Plan, GitOpsError> {
    let live_sha = req.failed.commit.as_deref().or(req.source.live_commit.as_deref());
    let live = known_commit(repo, live_sha);
    let base_missing = req.last_promoted_commit.is_some()
        && known_commit(repo, req.last_promoted_commit.as_deref()).is_none();
    if repo.is_shallow() && ((live_sha.is_some() && live.is_none()) || base_missing) {
        return Ok(Plan::NeedHistory);
    }
    if let (Some(sha), None) = (live_sha, live) {
        return Ok(Plan::Done(RevertOutcome::Failed {
            commit_to_revert: sha.to_string(),
            why: format!("the live commit is not on branch {}", req.source.branch),
        }));
    }
    let mut base = known_commit(repo, req.last_promoted_commit.as_deref());
    if let (Some(sha), None) = (&req.last_promoted_commit, base) {
        tracing::warn!(commit = %sha, "last promoted commit not found; undoing only the newest change");
    }
    let canary = req.canary.to_string();
    let mut input = ScanInput {
        head,
        live,
        base,
        workload: &req.workload,
        canary: &canary,
        revision: &req.failed.revision,
        limit,
    };
    let found = match scan(repo, &input) {
        Err(HistoryError::BaseNotFound(sha)) if !repo.is_shallow() => {
            tracing::warn!(commit = %sha, "last promoted commit is not an ancestor; undoing only the newest change");
            base = None;
            input.base = None;
            scan(repo, &input)
        }
        other => other,
    };
    let found = match found {
        Ok(found) => found,
        Err(HistoryError::Truncated) => return Ok(Plan::NeedHistory),
        Err(HistoryError::LiveNotOnBranch(_) | HistoryError::BaseNotFound(_)) if repo.is_shallow() => {
            return Ok(Plan::NeedHistory);
        }
        Err(HistoryError::LiveNotOnBranch(sha)) => {
            return Ok(Plan::Done(RevertOutcome::Failed {
                commit_to_revert: sha,
                why: format!("the live commit is not on branch {}", req.source.branch),
            }));
        }
        Err(HistoryError::BaseNotFound(sha)) => {
            return Err(GitOpsError::Invalid(format!("last promoted commit {sha} not found")));
        }
        Err(HistoryError::Git(e)) => return Err(GitOpsError::git("walking the branch", e)),
    };
    if let Some(existing) = found.existing {
        tracing::info!(sha = %existing.oid, "the branch already has Serin's commit for this failure");
        return Ok(Plan::Done(RevertOutcome::Pushed {
            sha: existing.oid.to_string(),
            reverted: existing.reverts,
            kind: None,
        }));
    }
    if let Some(newer) = found.superseded_by.last() {
        return Ok(Plan::Done(RevertOutcome::NotNeeded {
            why: format!(
                "stale: commit {} (\"{}\") changed {} again after the failed release; not reverting",
                newer.oid,
                one_line(&newer.subject),
                req.canary
            ),
        }));
    }
    let Some(newest) = found.to_revert.first() else {
        return Ok(Plan::Done(RevertOutcome::NotNeeded {
            why: format!("no commit since the last promotion changed {}", req.canary),
        }));
    };
    if let Some(image) = missing_failed_image(repo, newest, req).map_err(git("reading the failed commit"))? {
        return Ok(Plan::Done(RevertOutcome::NotNeeded {
            why: format!(
                "stale: commit {} does not set the failed image {image}; the branch no longer says what the canary rolled out",
                newest.oid
            ),
        }));
    }
    let head_commit = repo.find_commit(head).map_err(git("reading the branch head"))?;
    let author = Signature::now(&req.author.name, &req.author.email).map_err(git("author"))?;
    let ctx = message_context(req);
    let single_app = found.to_revert.iter().all(|c| !c.impact.touches_others && !c.merge);
    let why_restore = if single_app {
        match try_revert(repo, &head_commit, &found.to_revert, &author)? {
            Ok(tree) => {
                let message = revert_message(&infos(&found.to_revert), &ctx);
                let tree = repo.find_tree(tree).map_err(git("reading the revert tree"))?;
                let oid = repo
                    .commit(None, &author, &author, &message, &tree, &[&head_commit])
                    .map_err(git("committing the revert"))?;
                return Ok(Plan::Commit(Built {
                    oid,
                    kind: CommitKind::Revert,
                    reverted: found.to_revert.iter().map(|c| c.oid.to_string()).collect(),
                }));
            }
            Err(why) => why,
        }
    } else {
        "the commit also changed other workloads or files".to_string()
    };
    tracing::info!(why = %why_restore, "making a restore commit instead of a revert");
    let base_commit = match base {
        Some(b) => repo.find_commit(b).map_err(git("reading the last promoted commit"))?,
        None => {
            let oldest = found.to_revert.last().unwrap_or(newest);
            let c = repo.find_commit(oldest.oid).map_err(git("reading the commit"))?;
            match c.parent(0) {
                Ok(p) => p,
                Err(_) => {
                    return Ok(Plan::Done(RevertOutcome::Failed {
                        commit_to_revert: oldest.oid.to_string(),
                        why: "it is the root commit; there is no earlier state to restore".into(),
                    }));
                }
            }
        }
    };
    let mut files: Vec<String> = found.to_revert.iter().flat_map(|c| c.files.iter().cloned()).collect();
    files.sort();
    files.dedup();
    let restored = match restore_tree(repo, &head_commit, &base_commit, &files, &req.workload)? {
        Ok(Some(r)) => r,
        Ok(None) => {
            return Ok(Plan::Done(RevertOutcome::NotNeeded {
                why: "the branch already has the last promoted values".into(),
            }));
        }
        Err(e) => {
            let others: Vec<String> = found.to_revert.iter().skip(1).map(|c| c.oid.to_string()).collect();
            let also =
                if others.is_empty() { String::new() } else { format!(" (and {})", others.join(", ")) };
            return Ok(Plan::Done(RevertOutcome::Failed {
                commit_to_revert: newest.oid.to_string(),
                why: format!("{why_restore}, and a restore is impossible: {e}{also}"),
            }));
        }
    };
    let message = restore_message(&infos(&found.to_revert), &restored.1, &why_restore, &ctx);
    let tree = repo.find_tree(restored.0).map_err(git("reading the restore tree"))?;
    let oid = repo
        .commit(None, &author, &author, &message, &tree, &[&head_commit])
        .map_err(git("committing the restore"))?;
    Ok(Plan::Commit(Built {
        oid,
        kind: CommitKind::Restore,
        reverted: found.to_revert.iter().map(|c| c.oid.to_string()).collect(),
    }))
}

/// The first failed image whose tag or digest the commit's workload units do not mention.
fn missing_failed_image(
    repo: &Repository,
    commit: &TouchingCommit,
    req: &RevertRequest,
) -> Result<Option<String>, git2::Error> {
    if req.failed.images.is_empty() {
        return Ok(None);
    }
    let tree = repo.find_commit(commit.oid)?.tree()?;
    let mut parsed = Vec::new();
    for path in &commit.files {
        if let Some(text) = text_at(repo, &tree, path)? {
            parsed.push(parse_file(path, &text, &req.workload));
        }
    }
    for image in &req.failed.images {
        let (_, tag) = split_image(image);
        let Some(tag) = tag else { continue };
        if !parsed.iter().any(|f| owned_mentions(f, tag)) {
            return Ok(Some(image.clone()));
        }
    }
    Ok(None)
}

/// Reverts the commits (newest first) on top of `head`; `Ok(Err(why))` on a conflict.
fn try_revert(
    repo: &Repository,
    head: &Commit<'_>,
    commits: &[TouchingCommit],
    author: &Signature<'_>,
) -> Result<Result<Oid, String>, GitOpsError> {
    let mut current = head.clone();
    let mut tree = head.tree_id();
    for c in commits {
        let original = repo.find_commit(c.oid).map_err(git("reading the commit to revert"))?;
        let mut index = repo.revert_commit(&original, &current, 0, None).map_err(git("reverting"))?;
        if index.has_conflicts() {
            return Ok(Err(format!("reverting {} conflicts with later commits", c.oid)));
        }
        tree = index.write_tree_to(repo).map_err(git("writing the revert tree"))?;
        let t = repo.find_tree(tree).map_err(git("reading the revert tree"))?;
        // An unreferenced intermediate commit, so the next revert applies on top of this one.
        let id = repo
            .commit(None, author, author, "serin: intermediate revert", &t, &[&current])
            .map_err(git("committing an intermediate revert"))?;
        current = repo.find_commit(id).map_err(git("reading the intermediate revert"))?;
    }
    Ok(Ok(tree))
}

fn entry_for(path: &str, mode: u32, size: usize) -> IndexEntry {
    IndexEntry {
        ctime: IndexTime::new(0, 0),
        mtime: IndexTime::new(0, 0),
        dev: 0,
        ino: 0,
        mode,
        uid: 0,
        gid: 0,
        file_size: u32::try_from(size).unwrap_or(u32::MAX),
        id: Oid::ZERO_SHA1,
        flags: 0,
        flags_extended: 0,
        path: path.as_bytes().to_vec(),
    }
}

/// A restored tree and the files edited.
type Restored = (Oid, Vec<String>);

/// The head tree with the workload's units of `files` restored from `base`; `Ok(Ok(None))`
/// when nothing differs; the new tree and the files edited otherwise.
fn restore_tree(
    repo: &Repository,
    head: &Commit<'_>,
    base: &Commit<'_>,
    files: &[String],
    w: &WorkloadId,
) -> Result<Result<Option<Restored>, RestoreError>, GitOpsError> {
    let head_tree = head.tree().map_err(git("reading the head tree"))?;
    let base_tree = base.tree().map_err(git("reading the promoted tree"))?;
    let mut index = Index::new().map_err(git("index"))?;
    index.read_tree(&head_tree).map_err(git("reading the head tree"))?;
    let mut edited = Vec::new();
    for path in files {
        let head_text = text_at(repo, &head_tree, path).map_err(git("reading a file"))?;
        let base_text = text_at(repo, &base_tree, path).map_err(git("reading a file"))?;
        match (head_text, base_text) {
            (Some(h), Some(b)) => match restore_text(path, &h, &b, w) {
                Ok(Some(text)) => {
                    let mode = index.get_path(std::path::Path::new(path), 0).map_or(0o100644, |e| e.mode);
                    let blob = repo.blob(text.as_bytes()).map_err(git("writing a restored file"))?;
                    let mut entry = entry_for(path, mode, text.len());
                    entry.id = blob;
                    index.add(&entry).map_err(git("staging a restored file"))?;
                    edited.push(path.clone());
                }
                Ok(None) => {}
                Err(e) => return Ok(Err(e)),
            },
            (Some(h), None) => {
                let parsed = parse_file(path, &h, w);
                let only_ours = !parsed.owned.is_empty()
                    && match &parsed.rest {
                        Value::Array(docs) => docs.iter().all(Value::is_null),
                        Value::Null => true,
                        _ => false,
                    };
                if !only_ours {
                    return Ok(Err(unrestorable(
                        path,
                        "file",
                        "added after the last promotion with other content",
                    )));
                }
                index.remove_path(std::path::Path::new(path)).map_err(git("removing a file"))?;
                edited.push(path.clone());
            }
            (None, Some(_)) => {
                let parsed = parse_file(
                    path,
                    &text_at(repo, &base_tree, path).map_err(git("reading"))?.unwrap_or_default(),
                    w,
                );
                if !parsed.owned.is_empty() {
                    return Ok(Err(unrestorable(path, "file", "deleted since the last promotion")));
                }
            }
            (None, None) => {}
        }
    }
    if edited.is_empty() {
        return Ok(Ok(None));
    }
    let tree = index.write_tree_to(repo).map_err(git("writing the restore tree"))?;
    Ok(Ok(Some((tree, edited))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w() -> WorkloadId {
        WorkloadId {
            kind: "Deployment".into(),
            name: "podinfo".into(),
            namespace: "apps".into(),
            images: vec!["ghcr.io/acme/podinfo".into(), "ghcr.io/acme/frontend-x".into()],
            values_files: vec![],
        }
    }

    fn ctx() -> MessageContext {
        MessageContext {
            canary: "apps/podinfo".into(),
            revision: "abc123".into(),
            reason: "request-success-rate 91% < 99%\nmore".into(),
            failed_checks: vec!["request-success-rate".into(), "latency".into()],
        }
    }

    #[test]
    fn revert_message_has_subject_reason_and_trailers() {
        let msg =
            revert_message(&[CommitInfo { sha: "a".repeat(40), subject: "bump podinfo".into() }], &ctx());
        assert!(msg.starts_with("Revert \"bump podinfo\"\n\nThis reverts commit aaaa"));
        assert!(msg.contains("request-success-rate 91% < 99% more"));
        let t = parse_trailers(&msg);
        assert!(t.contains(&(TRAILER_CANARY.into(), "apps/podinfo".into())));
        assert!(t.contains(&(TRAILER_REVERTS.into(), "a".repeat(40))));
        assert!(t.contains(&(TRAILER_FAILED_CHECKS.into(), "request-success-rate, latency".into())));
        assert!(t.contains(&(TRAILER_ACTION.into(), "revert".into())));
    }

    #[test]
    fn trailers_only_from_a_trailer_paragraph() {
        assert!(parse_trailers("subject\n\nbody text here\n").is_empty());
        assert_eq!(parse_trailers("s\n\nA-B: c\n"), vec![("A-B".into(), "c".into())]);
    }

    #[test]
    fn restore_edits_only_the_image_line_and_keeps_comments() {
        let head = "# apps\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: podinfo\nspec:\n  template:\n    spec:\n      containers:\n        - name: app\n          image: \"ghcr.io/acme/podinfo:2.0.0\" # bumped by CI\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: frontend\nspec:\n  template:\n    spec:\n      containers:\n        - name: app\n          image: ghcr.io/acme/frontend:5\n";
        let base = head.replace("podinfo:2.0.0", "podinfo:1.0.0").replace("frontend:5", "frontend:4");
        let out = restore_text("all.yaml", head, &base, &w()).expect("restore").expect("changed");
        assert_eq!(out, head.replace("podinfo:2.0.0", "podinfo:1.0.0"));
    }

    #[test]
    fn restore_kustomize_new_tag_in_the_right_entry() {
        let k = |ours: &str, theirs: &str| {
            format!(
                "images:\n  - name: ghcr.io/acme/frontend-x\n    newTag: \"{theirs}\"\n  - name: ghcr.io/acme/podinfo\n    newTag: \"{ours}\" # prod\n  - name: other\n    newTag: \"{ours}\"\n"
            )
        };
        let mut w = w();
        w.images = vec!["ghcr.io/acme/podinfo".into()];
        let head = k("2.0.0", "2.0.0");
        let out =
            restore_text("kustomization.yaml", &head, &k("1.0.0", "1.5.0"), &w).expect("ok").expect("some");
        assert_eq!(
            out,
            k("1.0.0", "2.0.0").replace("other\n    newTag: \"1.0.0\"", "other\n    newTag: \"2.0.0\"")
        );
    }

    #[test]
    fn restore_splices_a_reshaped_document() {
        let head = "kind: ConfigMap\nmetadata:\n  name: c\n---\nkind: Deployment\nmetadata:\n  name: podinfo\nspec:\n  replicas: 3\n  template: {}\n";
        let base = "kind: ConfigMap\nmetadata:\n  name: c\n---\nkind: Deployment\nmetadata:\n  name: podinfo\nspec:\n  template: {}\n";
        let out = restore_text("a.yaml", head, base, &w()).expect("ok").expect("some");
        assert_eq!(out, base);
    }

    #[test]
    fn restore_refuses_a_reshaped_list_entry() {
        let mut w = w();
        w.images = vec!["ghcr.io/acme/podinfo".into()];
        let head = "images:\n  - name: ghcr.io/acme/podinfo\n    digest: sha256:bb\n";
        let base = "images:\n  - name: ghcr.io/acme/podinfo\n    newTag: \"1\"\n";
        let err = restore_text("kustomization.yaml", head, base, &w).expect_err("refused");
        assert!(matches!(err, RestoreError::Unrestorable { .. }));
    }

    #[test]
    fn restore_quotes_values_that_would_change_type() {
        let mut w = w();
        w.images = vec!["ghcr.io/acme/podinfo".into()];
        let head = "images:\n- name: ghcr.io/acme/podinfo\n  newTag: v2\n";
        let base = "images:\n- name: ghcr.io/acme/podinfo\n  newTag: \"1.0\"\n";
        let out = restore_text("kustomization.yaml", head, base, &w).expect("ok").expect("some");
        assert_eq!(out, base);
    }

    #[test]
    fn nothing_to_restore() {
        let t = "kind: Deployment\nmetadata:\n  name: podinfo\n";
        assert_eq!(restore_text("a.yaml", t, t, &w()), Ok(None));
    }
}
