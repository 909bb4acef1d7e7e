//! A real Git server for the test bed: a bare repository `gitops.git` (branch `main`) served by
//! `git-daemon` on 127.0.0.1 with pushes enabled and no authentication. `git-daemon` is run
//! directly (not through `git daemon`), so killing its PID stops it; it is killed on drop.
//!
//! Tests change the repository through [`GitServer::commit`], which works in a private clone,
//! rebases on whatever is on `main` (Serin may have pushed revert commits), commits and pushes.

use std::{
    path::{Path, PathBuf},
    process::{Child, Stdio},
    time::Duration,
};

use tokio::process::Command;
use tracing::{info, warn};

use crate::{error::BedError, util};

/// Name of the repository under the daemon's base path.
pub const REPO: &str = "gitops.git";
/// The branch everything happens on.
pub const BRANCH: &str = "main";

/// One commit as listed by [`GitServer::log`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitInfo {
    /// Full SHA.
    pub sha: String,
    /// First line of the message.
    pub subject: String,
    /// The full message (subject, body and trailers).
    pub message: String,
}

/// A running `git-daemon` with one bare repository.
#[derive(Debug)]
pub struct GitServer {
    root: PathBuf,
    work: PathBuf,
    port: u16,
    child: Option<Child>,
}

/// Runs `git` with a fixed identity and no system config; returns trimmed stdout.
pub async fn git(dir: Option<&Path>, args: &[&str]) -> Result<String, BedError> {
    let mut cmd = Command::new("git");
    if let Some(dir) = dir {
        cmd.arg("-C").arg(dir);
    }
    cmd.args(["-c", "user.name=Serin Testbed", "-c", "user.email=testbed@serin.invalid"])
        .args(["-c", "init.defaultBranch=main", "-c", "advice.detachedHead=false"])
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(30), cmd.output())
        .await
        .map_err(|_| BedError::Timeout(Duration::from_secs(30), format!("git {}", args.join(" "))))?
        .map_err(BedError::io(format!("run git {}", args.join(" "))))?;
    if !out.status.success() {
        return Err(BedError::Process(format!(
            "git {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

impl GitServer {
    /// Creates `<dir>/srv/gitops.git` (bare, branch `main`, empty) and a work clone, and starts
    /// `git-daemon` on a free port; returns once it accepts connections.
    pub async fn start(dir: &Path) -> Result<Self, BedError> {
        let root = dir.join("srv");
        let work = dir.join("work");
        std::fs::create_dir_all(&root).map_err(BedError::io("create git root"))?;
        let bare = root.join(REPO);
        git(None, &["init", "--quiet", "--bare", "-b", BRANCH, &bare.display().to_string()]).await?;
        git(Some(&bare), &["config", "daemon.receivepack", "true"]).await?;
        git(None, &["init", "--quiet", "-b", BRANCH, &work.display().to_string()]).await?;
        let exec_path = git(None, &["--exec-path"]).await?;
        let daemon = Path::new(&exec_path).join("git-daemon");
        if !daemon.is_file() {
            return Err(BedError::Missing {
                program: daemon.display().to_string(),
                hint: "install git".into(),
            });
        }
        let mut last_err = None;
        for _ in 0..3 {
            let port = util::free_port()?;
            let child = std::process::Command::new(&daemon)
                .args(["--reuseaddr", "--export-all", "--enable=receive-pack", "--informative-errors"])
                .arg("--listen=127.0.0.1")
                .arg(format!("--port={port}"))
                .arg(format!("--base-path={}", root.display()))
                .arg(&root)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(BedError::io("start git-daemon"))?;
            let mut server = GitServer { root: root.clone(), work: work.clone(), port, child: Some(child) };
            match util::wait_for_tcp(([127, 0, 0, 1], port).into(), Duration::from_secs(5)).await {
                Ok(()) => {
                    git(Some(&work), &["remote", "add", "origin", &server.url()]).await?;
                    info!(port, pid = ?server.pid(), "git-daemon started");
                    return Ok(server);
                }
                Err(err) => {
                    server.stop();
                    last_err = Some(err);
                }
            }
        }
        Err(last_err.unwrap_or_else(|| BedError::Process("git-daemon did not start".into())))
    }

    /// Clone URL, `git://127.0.0.1:<port>/gitops.git`.
    pub fn url(&self) -> String {
        format!("git://127.0.0.1:{}/{REPO}", self.port)
    }

    /// Path of the bare repository on disk.
    pub fn bare_path(&self) -> PathBuf {
        self.root.join(REPO)
    }

    /// The daemon's process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Writes `files` (path relative to the repository root → contents; `None` deletes), commits
    /// with `message` on top of the current `main`, and pushes. Returns the new commit's SHA.
    pub async fn commit(&self, files: &[(&str, Option<&str>)], message: &str) -> Result<String, BedError> {
        let work = Some(self.work.as_path());
        if !self.head().await?.is_empty() {
            git(work, &["fetch", "--quiet", "origin", BRANCH]).await?;
            git(work, &["checkout", "--quiet", "-B", BRANCH, "FETCH_HEAD"]).await?;
            git(work, &["reset", "--quiet", "--hard", "FETCH_HEAD"]).await?;
        }
        for (path, contents) in files {
            let target = self.work.join(path);
            match contents {
                Some(contents) => {
                    if let Some(parent) = target.parent() {
                        std::fs::create_dir_all(parent).map_err(BedError::io("create dir in work tree"))?;
                    }
                    std::fs::write(&target, contents).map_err(BedError::io(format!("write {path}")))?;
                }
                None => {
                    if target.exists() {
                        std::fs::remove_file(&target).map_err(BedError::io(format!("remove {path}")))?;
                    }
                }
            }
        }
        git(work, &["add", "--all"]).await?;
        git(work, &["commit", "--quiet", "--allow-empty", "-m", message]).await?;
        git(work, &["push", "--quiet", "origin", &format!("HEAD:refs/heads/{BRANCH}")]).await?;
        let sha = git(work, &["rev-parse", "HEAD"]).await?;
        info!(%sha, %message, "commit pushed");
        Ok(sha)
    }

    /// Reverts commit `sha` on top of the current `main` (`git revert --no-edit`) and pushes,
    /// as a person undoing a release would. Returns the revert commit's SHA.
    pub async fn revert(&self, sha: &str) -> Result<String, BedError> {
        let work = Some(self.work.as_path());
        git(work, &["fetch", "--quiet", "origin", BRANCH]).await?;
        git(work, &["checkout", "--quiet", "-B", BRANCH, "FETCH_HEAD"]).await?;
        git(work, &["reset", "--quiet", "--hard", "FETCH_HEAD"]).await?;
        git(work, &["revert", "--no-edit", sha]).await?;
        git(work, &["push", "--quiet", "origin", &format!("HEAD:refs/heads/{BRANCH}")]).await?;
        let new = git(work, &["rev-parse", "HEAD"]).await?;
        info!(reverted = %sha, sha = %new, "revert pushed");
        Ok(new)
    }

    /// The SHA `main` points at on the server (empty before the first commit).
    pub async fn head(&self) -> Result<String, BedError> {
        let out = git(None, &["ls-remote", &self.url(), &format!("refs/heads/{BRANCH}")]).await?;
        Ok(out.split_whitespace().next().unwrap_or("").to_string())
    }

    /// Commits on `main` in the bare repository, newest first.
    pub async fn log(&self) -> Result<Vec<CommitInfo>, BedError> {
        let bare = self.bare_path();
        let out = git(Some(&bare), &["log", "--format=%H%x1f%s%x1f%B%x1e", BRANCH]).await?;
        Ok(out
            .split('\x1e')
            .filter_map(|rec| {
                let mut f = rec.trim().splitn(3, '\x1f');
                let sha = f.next()?.to_string();
                if sha.is_empty() {
                    return None;
                }
                let subject = f.next().unwrap_or("").to_string();
                let message = f.next().unwrap_or("").trim().to_string();
                Some(CommitInfo { sha, subject, message })
            })
            .collect())
    }

    /// The contents of `path` at `rev` (e.g. `main`, a SHA) in the bare repository.
    pub async fn show(&self, rev: &str, path: &str) -> Result<String, BedError> {
        git(Some(&self.bare_path()), &["show", &format!("{rev}:{path}")]).await
    }

    /// Kills the daemon by PID and reaps it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id();
            if let Err(err) = child.kill() {
                warn!(pid, %err, "killing git-daemon failed");
            }
            let _ = child.wait();
            info!(pid, "git-daemon stopped");
        }
    }
}

impl Drop for GitServer {
    fn drop(&mut self) {
        self.stop();
    }
}
