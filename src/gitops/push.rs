//! Delivery: fetching the branch, credentials, and pushing the commit (never forced), with
//! the whole fetch → decide → commit → push loop retried on non-fast-forward rejections.
//!
//! - Every attempt fetches the branch again and redoes the decision from scratch
//!   ([`super::revert::plan`]): so a commit another writer pushed in between is kept, a Serin
//!   commit pushed by another controller is found (idempotence), and a branch that changed the
//!   workload again makes the revert stale (refused, not forced).
//! - Push refspecs never carry `+`; libgit2 refuses a non-fast-forward update locally, and the
//!   server's receive-pack checks the old value of the ref, so a race is a rejection, not a loss.
//! - Credentials come in resolved ([`Credentials`]); they are handed to libgit2 through
//!   `RemoteCallbacks::credentials` and never logged (`Debug` redacts them). SSH host keys are
//!   checked against the given `known_hosts` (plain host names; hashed `|1|` entries are not
//!   supported — a documented limit); HTTPS certificates are checked by libgit2 (OpenSSL).

use std::path::{Path, PathBuf};

use base64::Engine;
use git2::{
    AutotagOption, CertificateCheckStatus, Cred, CredentialType, ErrorCode, FetchOptions, Oid, PushOptions,
    RemoteCallbacks, Repository,
};

use super::{
    GitOpsError, RevertOutcome, RevertRequest, ReverterConfig,
    revert::{Built, Plan, plan},
};
use crate::crd::canary::GitMode;

/// Resolved Git credentials (from the Secret the caller read).
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Credentials {
    /// Anonymous (public repositories, tests).
    #[default]
    None,
    /// HTTPS basic auth.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: String,
    },
    /// HTTPS token (sent as the password of user `x-access-token`, which GitHub, GitLab and
    /// Gitea accept).
    Token {
        /// The token.
        token: String,
    },
    /// SSH private key.
    Ssh {
        /// User (usually `git`).
        username: String,
        /// PEM/OpenSSH private key.
        private_key: String,
        /// Key passphrase.
        passphrase: Option<String>,
        /// `known_hosts` content; the host key must be listed.
        known_hosts: String,
    },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self {
            Credentials::None => "None",
            Credentials::Basic { .. } => "Basic(<redacted>)",
            Credentials::Token { .. } => "Token(<redacted>)",
            Credentials::Ssh { .. } => "Ssh(<redacted>)",
        };
        f.write_str(kind)
    }
}

/// Fetch and push failures.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// Fetching failed.
    #[error("fetching {branch}: {source}")]
    Fetch {
        /// The branch.
        branch: String,
        /// libgit2's error.
        #[source]
        source: git2::Error,
    },
    /// The branch does not exist on the remote.
    #[error("branch {0} not found on the remote")]
    NoBranch(String),
    /// The push failed for a reason other than a race.
    #[error("pushing to {branch}: {message}")]
    Push {
        /// The branch.
        branch: String,
        /// What the server or libgit2 said.
        message: String,
    },
    /// Every attempt lost the race.
    #[error("gave up after {attempts} attempts: the branch kept moving (last: {last})")]
    Exhausted {
        /// Attempts made.
        attempts: u32,
        /// The last rejection.
        last: String,
    },
    /// Preparing the local repository failed.
    #[error("local repository {path}: {source}")]
    Local {
        /// Its path.
        path: PathBuf,
        /// libgit2's error.
        #[source]
        source: git2::Error,
    },
}

/// The URL without any user name or password in it, for logs and messages.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if !parsed.username().is_empty() || parsed.password().is_some() => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

/// Does a known_hosts line list `host` with this key?
pub fn known_host_matches(known_hosts: &str, host: &str, key_type: &str, key: &[u8]) -> bool {
    known_hosts.lines().any(|line| {
        let mut parts = line.split_whitespace();
        let (Some(hosts), Some(kt), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
            return false;
        };
        if hosts.starts_with('#') || hosts.starts_with('|') || kt != key_type {
            return false;
        }
        let host_ok = hosts.split(',').any(|h| {
            let h = h.trim_start_matches('[');
            let name = h.split(']').next().unwrap_or(h);
            name == host
        });
        host_ok && base64::engine::general_purpose::STANDARD.decode(b64).is_ok_and(|k| k == key)
    })
}

/// Remote callbacks with credentials and SSH host-key checking. libgit2 asks again after a
/// failed authentication, so the credentials are offered a bounded number of times.
pub fn callbacks(credentials: &Credentials) -> RemoteCallbacks<'_> {
    let mut cb = RemoteCallbacks::new();
    let mut tries = 0u32;
    cb.credentials(move |_url, username_from_url, allowed| {
        tries += 1;
        if tries > 3 {
            return Err(git2::Error::from_str("authentication failed (credentials rejected)"));
        }
        match credentials {
            Credentials::Basic { username, password }
                if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) =>
            {
                Cred::userpass_plaintext(username, password)
            }
            Credentials::Token { token } if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) => {
                Cred::userpass_plaintext("x-access-token", token)
            }
            Credentials::Ssh { username, private_key, passphrase, .. } => {
                if allowed.contains(CredentialType::USERNAME) {
                    return Cred::username(username);
                }
                let user = username_from_url.unwrap_or(username);
                Cred::ssh_key_from_memory(user, None, private_key, passphrase.as_deref())
            }
            _ => Err(git2::Error::from_str("the remote asks for credentials Serin was not given")),
        }
    });
    if let Credentials::Ssh { known_hosts, .. } = credentials {
        cb.certificate_check(move |cert, host| {
            let Some(hostkey) = cert.as_hostkey() else {
                return Ok(CertificateCheckStatus::CertificatePassthrough);
            };
            let (Some(key), Some(kind)) = (hostkey.hostkey(), hostkey.hostkey_type()) else {
                return Err(git2::Error::from_str("the SSH server sent no host key"));
            };
            if known_host_matches(known_hosts, host, kind.name(), key) {
                Ok(CertificateCheckStatus::CertificateOk)
            } else {
                Err(git2::Error::from_str(&format!("host key of {host} is not in known_hosts")))
            }
        });
    }
    cb
}

fn remote_tracking(branch: &str) -> String {
    format!("refs/remotes/origin/{branch}")
}

/// libgit2's "fetch the whole history of a shallow repository" depth.
pub const UNSHALLOW: i32 = i32::MAX;

/// Fetches `branches` (no tags) into `refs/remotes/origin/*`, `depth` commits deep (`None`:
/// as deep as the repository already is, or everything); returns the tip of the first.
pub fn fetch(
    repo: &Repository,
    url: &str,
    branches: &[&str],
    credentials: &Credentials,
    depth: Option<i32>,
) -> Result<Oid, PushError> {
    let main = branches.first().copied().unwrap_or("main");
    let mut remote =
        repo.remote_anonymous(url).map_err(|e| PushError::Fetch { branch: main.into(), source: e })?;
    let mut options = FetchOptions::new();
    options.remote_callbacks(callbacks(credentials));
    options.download_tags(AutotagOption::None);
    options.update_fetchhead(false);
    if let Some(depth) = depth {
        options.depth(depth);
    }
    let refspecs: Vec<String> =
        branches.iter().map(|b| format!("+refs/heads/{b}:{}", remote_tracking(b))).collect();
    remote
        .fetch(&refspecs, Some(&mut options), None)
        .map_err(|e| PushError::Fetch { branch: main.into(), source: e })?;
    let tip =
        repo.refname_to_id(&remote_tracking(main)).map_err(|_| PushError::NoBranch(main.to_string()))?;
    Ok(tip)
}

/// The remote's default branch (for Argo CD's `targetRevision: HEAD`).
pub fn default_branch(repo: &Repository, url: &str, credentials: &Credentials) -> Result<String, PushError> {
    let err = |e| PushError::Fetch { branch: "HEAD".into(), source: e };
    let mut remote = repo.remote_anonymous(url).map_err(err)?;
    let connection =
        remote.connect_auth(git2::Direction::Fetch, Some(callbacks(credentials)), None).map_err(err)?;
    let name = connection.default_branch().map_err(err)?;
    let name = name.as_str().unwrap_or("refs/heads/main");
    Ok(name.strip_prefix("refs/heads/").unwrap_or(name).to_string())
}

/// Result of one push attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum PushResult {
    /// The ref was updated.
    Pushed,
    /// The remote moved (non-fast-forward or a lost race); fetch and redo.
    Rejected(String),
}

/// Pushes `commit` to `refs/heads/<branch>` without force.
pub fn push(
    repo: &Repository,
    url: &str,
    commit: Oid,
    branch: &str,
    credentials: &Credentials,
) -> Result<PushResult, PushError> {
    let local = "refs/serin/outgoing";
    repo.reference(local, commit, true, "serin: outgoing commit")
        .map_err(|e| PushError::Local { path: repo.path().to_path_buf(), source: e })?;
    let mut remote = repo
        .remote_anonymous(url)
        .map_err(|e| PushError::Push { branch: branch.into(), message: e.message().to_string() })?;
    let mut rejection: Option<String> = None;
    let result = {
        let mut cb = callbacks(credentials);
        cb.push_update_reference(|_refname, status| {
            if let Some(s) = status {
                rejection = Some(s.to_string());
            }
            Ok(())
        });
        let mut options = PushOptions::new();
        options.remote_callbacks(cb);
        remote.push(&[format!("{local}:refs/heads/{branch}")], Some(&mut options))
    };
    match result {
        Ok(()) => match rejection {
            None => Ok(PushResult::Pushed),
            Some(status) => Ok(PushResult::Rejected(status)),
        },
        Err(e) if is_race(&e) => Ok(PushResult::Rejected(e.message().to_string())),
        Err(e) => Err(PushError::Push { branch: branch.into(), message: e.message().to_string() }),
    }
}

fn is_race(e: &git2::Error) -> bool {
    let m = e.message();
    e.code() == ErrorCode::NotFastForward
        || m.contains("non-fast-forward")
        || m.contains("not present locally")
        || m.contains("fetch first")
        || m.contains("failed to update ref")
        || m.contains("failed to lock")
}

fn repo_dir(config: &ReverterConfig, url: &str) -> Result<(PathBuf, Option<tempfile::TempDir>), PushError> {
    match &config.cache_dir {
        Some(dir) => {
            let name: String = url.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
            Ok((dir.join(name), None))
        }
        None => {
            let tmp = tempfile::Builder::new().prefix("serin-git-").tempdir().map_err(|e| {
                PushError::Local { path: std::env::temp_dir(), source: git2::Error::from_str(&e.to_string()) }
            })?;
            Ok((tmp.path().to_path_buf(), Some(tmp)))
        }
    }
}

fn open_or_init(path: &Path) -> Result<Repository, PushError> {
    let local = |e| PushError::Local { path: path.to_path_buf(), source: e };
    if path.join("HEAD").exists() {
        Repository::open_bare(path).map_err(local)
    } else {
        std::fs::create_dir_all(path).map_err(|e| PushError::Local {
            path: path.to_path_buf(),
            source: git2::Error::from_str(&e.to_string()),
        })?;
        Repository::init_bare(path).map_err(local)
    }
}

/// Name of the pull-request branch for a failure.
pub fn pull_request_branch(req: &RevertRequest) -> String {
    let rev: String = req.failed.revision.chars().filter(char::is_ascii_alphanumeric).take(16).collect();
    let clean = |s: &str| {
        s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' }).collect::<String>()
    };
    format!("serin/revert-{}-{}-{rev}", clean(&req.canary.namespace), clean(&req.canary.name))
}

/// The blocking revert: fetch → plan → push, retried on rejections.
pub fn run_blocking(req: &RevertRequest, config: &ReverterConfig) -> Result<RevertOutcome, GitOpsError> {
    let (path, _tmp) = repo_dir(config, &req.source.url)?;
    let repo = open_or_init(&path)?;
    let creds = &req.credentials;
    let mut branch = req.source.branch.clone();
    if branch == "HEAD" || branch.is_empty() {
        branch = default_branch(&repo, &req.source.url, creds)?;
    }
    tracing::debug!(path = %path.display(), "local clone");
    let pr_branch = pull_request_branch(req);
    let mut last = String::new();
    // A fresh cache starts shallow; an existing one fetches as deep as it already is (asking
    // for a depth again would move the shallow boundary), unless a deepening is needed.
    let mut fetched_depth = match config.fetch_depth {
        Some(d) if repo.is_empty().unwrap_or(true) => Some(i32::try_from(d.max(1)).unwrap_or(UNSHALLOW)),
        _ => None,
    };
    let mut next_depth = fetched_depth;
    let mut attempt = 0;
    let mut deepenings = 0;
    while attempt < config.max_attempts.max(1) {
        attempt += 1;
        let branches: Vec<&str> = match req.mode {
            GitMode::Push => vec![&branch],
            GitMode::PullRequest => vec![&branch, &pr_branch],
        };
        let head = fetch(&repo, &req.source.url, &branches, creds, next_depth.take())?;
        if req.mode == GitMode::PullRequest
            && let Some(existing) = existing_pull_request_branch(&repo, &pr_branch, req)
        {
            return Ok(existing);
        }
        let built = match plan(&repo, head, req, config.history_limit)? {
            Plan::Done(outcome) => return Ok(outcome),
            Plan::Commit(built) => built,
            Plan::NeedHistory => {
                deepenings += 1;
                if fetched_depth == Some(UNSHALLOW) || deepenings > 8 {
                    return Err(GitOpsError::Invalid("history still too shallow after a full fetch".into()));
                }
                let start =
                    config.fetch_depth.and_then(|d| i32::try_from(d.max(1)).ok()).unwrap_or(UNSHALLOW);
                let deeper = match fetched_depth.unwrap_or(start) {
                    d if d < 100_000 => d.saturating_mul(10),
                    _ => UNSHALLOW,
                };
                fetched_depth = Some(deeper);
                next_depth = Some(deeper);
                tracing::info!(depth = deeper, "fetched history too shallow; fetching deeper");
                // Deepening is not a push attempt.
                attempt -= 1;
                continue;
            }
        };
        if let Some(hook) = &config.before_push {
            hook(attempt);
        }
        let target = match req.mode {
            GitMode::Push => &branch,
            GitMode::PullRequest => &pr_branch,
        };
        match push(&repo, &req.source.url, built.oid, target, creds)? {
            PushResult::Pushed => {
                tracing::info!(sha = %built.oid, kind = ?built.kind, attempt, branch = %target, "pushed");
                return Ok(outcome_for(req, built, &pr_branch));
            }
            PushResult::Rejected(why) => {
                tracing::warn!(attempt, branch = %target, why = %why, "push rejected; fetching and redoing");
                last = why;
            }
        }
    }
    Err(PushError::Exhausted { attempts: config.max_attempts.max(1), last }.into())
}

fn outcome_for(req: &RevertRequest, built: Built, pr_branch: &str) -> RevertOutcome {
    match req.mode {
        GitMode::Push => RevertOutcome::Pushed {
            sha: built.oid.to_string(),
            reverted: built.reverted,
            kind: Some(built.kind),
        },
        GitMode::PullRequest => RevertOutcome::PullRequest {
            url: None,
            branch: pr_branch.to_string(),
            sha: built.oid.to_string(),
            reverted: built.reverted,
        },
    }
}

/// A pull-request branch Serin already pushed for this failure (restart in the middle).
fn existing_pull_request_branch(
    repo: &Repository,
    pr_branch: &str,
    req: &RevertRequest,
) -> Option<RevertOutcome> {
    let tip = repo.refname_to_id(&remote_tracking(pr_branch)).ok()?;
    let commit = repo.find_commit(tip).ok()?;
    let trailers = super::revert::parse_trailers(commit.message().unwrap_or_default());
    let has = |k: &str, v: &str| trailers.iter().any(|(key, value)| key == k && value == v);
    let canary = req.canary.to_string();
    if !has(super::revert::TRAILER_CANARY, &canary)
        || !has(super::revert::TRAILER_REVISION, &req.failed.revision)
    {
        return None;
    }
    let reverted = trailers
        .iter()
        .filter(|(k, _)| k == super::revert::TRAILER_REVERTS)
        .map(|(_, v)| v.clone())
        .collect();
    Some(RevertOutcome::PullRequest {
        url: None,
        branch: pr_branch.to_string(),
        sha: tip.to_string(),
        reverted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_hosts_matching() {
        let key = b"0123456789";
        let b64 = base64::engine::general_purpose::STANDARD.encode(key);
        let kh =
            format!("# comment\ngithub.com,140.82.112.3 ssh-ed25519 {b64}\n[git.local]:2222 ssh-rsa {b64}\n");
        assert!(known_host_matches(&kh, "github.com", "ssh-ed25519", key));
        assert!(known_host_matches(&kh, "140.82.112.3", "ssh-ed25519", key));
        assert!(known_host_matches(&kh, "git.local", "ssh-rsa", key));
        assert!(!known_host_matches(&kh, "github.com", "ssh-rsa", key));
        assert!(!known_host_matches(&kh, "github.com", "ssh-ed25519", b"other"));
        assert!(!known_host_matches(&kh, "gitlab.com", "ssh-ed25519", key));
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(redact_url("https://x:s3cr3t@git.example/r.git"), "https://git.example/r.git");
        assert_eq!(redact_url("https://git.example/r.git"), "https://git.example/r.git");
        assert_eq!(redact_url("git@github.com:acme/fleet.git"), "git@github.com:acme/fleet.git");
        assert_eq!(redact_url("ssh://git@github.com/acme/fleet"), "ssh://github.com/acme/fleet");
    }

    #[test]
    fn credentials_are_redacted() {
        let c = Credentials::Token { token: "s3cr3t".into() };
        assert_eq!(format!("{c:?}"), "Token(<redacted>)");
        let c = Credentials::Ssh {
            username: "git".into(),
            private_key: "KEY".into(),
            passphrase: Some("pw".into()),
            known_hosts: String::new(),
        };
        assert!(!format!("{c:?}").contains("KEY"));
    }
}
