//! Benchmark (issue 7, issue 10): "rollback decided" → revert commit pushed, on a GitOps
//! repository with 10,000 commits and 2,000 files served by a real `git daemon` on loopback.
//!
//! `cargo bench --bench git_revert` (optional arguments: commits, files, runs). The repository
//! is written with `git fast-import`: one commit with `files` Deployment manifests
//! (`apps/app-NNNN/deploy.yaml`), then image bumps of other apps, the bad release of
//! `apps/podinfo` a few commits before the head (main moved on after it). Each run reverts a
//! different app's bad release with [`Git2Reverter`] exactly as the controller calls it, first
//! with an empty clone cache (a new controller pod), then with the warm cache the controller
//! keeps between rollbacks.

use std::{
    error::Error,
    io::Write,
    net::{SocketAddr, TcpListener, TcpStream},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serin::{
    crd::canary::GitMode,
    gitops::{
        Author, CanaryId, Credentials, FailedRelease, Git2Reverter, GitReverter, RevertOutcome,
        RevertRequest, ReverterConfig, WorkloadId,
        source::{ResolvedSource, SourceOrigin},
    },
};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

fn git(dir: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("git")
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .args(args)
        .output()?;
    if !out.status.success() {
        return Err(format!("git {args:?}: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn deployment(name: &str, tag: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: apps\n  labels:\n    app: {name}\n\
         spec:\n  replicas: 2\n  template:\n    spec:\n      containers:\n        - name: app\n          \
         image: ghcr.io/acme/{name}:{tag}\n          ports:\n            - containerPort: 9898\n"
    )
}

/// The fast-import stream; returns it with the marks of the bad releases (one per bad app).
fn history(commits: usize, files: usize, bad_apps: &[String]) -> (Vec<u8>, Vec<usize>) {
    let mut out = Vec::new();
    let mut bad_marks = Vec::new();
    let mut put = |mark: usize, message: &str, changes: &[(String, String)]| {
        let _ = write!(
            out,
            "commit refs/heads/main\nmark :{mark}\ncommitter Dev <dev@example.com> {} +0000\n",
            1_700_000_000 + mark
        );
        let _ = write!(out, "data {}\n{message}\n", message.len());
        if mark > 1 {
            let _ = writeln!(out, "from :{}", mark - 1);
        }
        for (path, content) in changes {
            let _ = write!(out, "M 100644 inline {path}\ndata {}\n{content}\n", content.len());
        }
    };
    let mut first = Vec::new();
    for i in 0..files.saturating_sub(bad_apps.len()) {
        let name = format!("app-{i:04}");
        first.push((format!("apps/{name}/deploy.yaml"), deployment(&name, "1.0.0")));
    }
    for name in bad_apps {
        first.push((format!("apps/{name}/deploy.yaml"), deployment(name, "1.0.0")));
    }
    put(1, "initial fleet", &first);
    let others = files.saturating_sub(bad_apps.len()).max(1);
    // The bad releases sit among the last 50 commits, 10 apart.
    let bad_at: Vec<usize> = (0..bad_apps.len()).map(|k| commits - 50 + 10 * k).collect();
    for mark in 2..=commits {
        if let Some(k) = bad_at.iter().position(|&m| m == mark) {
            let name = &bad_apps[k];
            put(
                mark,
                &format!("{name}: bump to 2.0.0"),
                &[(format!("apps/{name}/deploy.yaml"), deployment(name, "2.0.0"))],
            );
            bad_marks.push(mark);
            continue;
        }
        let name = format!("app-{:04}", (mark * 7919) % others);
        let tag = format!("1.{}.0", mark);
        put(
            mark,
            &format!("{name}: bump to {tag}"),
            &[(format!("apps/{name}/deploy.yaml"), deployment(&name, &tag))],
        );
    }
    (out, bad_marks)
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn daemon(base: &Path) -> Result<(Daemon, u16)> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let exec_path = git(base, &["--exec-path"])?;
    let child = Command::new(Path::new(&exec_path).join("git-daemon"))
        .args(["--export-all", "--enable=receive-pack", "--reuseaddr", "--listen=127.0.0.1"])
        .arg(format!("--port={port}"))
        .arg(format!("--base-path={}", base.display()))
        .arg(base)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let daemon = Daemon(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).is_err() {
        if Instant::now() > deadline {
            return Err("git daemon did not start".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((daemon, port))
}

fn request(url: &str, app: &str, bad: &str) -> RevertRequest {
    RevertRequest {
        canary: CanaryId { namespace: "apps".into(), name: app.into() },
        workload: WorkloadId {
            kind: "Deployment".into(),
            name: app.into(),
            namespace: "apps".into(),
            images: vec![format!("ghcr.io/acme/{app}")],
            values_files: vec![],
        },
        source: ResolvedSource {
            url: url.into(),
            branch: "main".into(),
            path: Some("apps".into()),
            live_commit: Some(bad.into()),
            origin: SourceOrigin::Explicit,
            secret: None,
        },
        failed: FailedRelease {
            revision: "7f3a9c0d1e2b4a65".into(),
            images: vec![format!("ghcr.io/acme/{app}:2.0.0")],
            commit: None,
        },
        last_promoted_commit: None,
        reason: "request-success-rate 0% below 99% (1 failed check)".into(),
        failed_checks: vec!["request-success-rate".into()],
        author: Author::default(),
        mode: GitMode::Push,
        credentials: Credentials::None,
        pull_request: None,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let commits = args.first().copied().unwrap_or(10_000).max(100);
    let files = args.get(1).copied().unwrap_or(2_000).max(10);
    let runs = args.get(2).copied().unwrap_or(5).clamp(1, 5);
    let base = tempfile::TempDir::new()?;
    let repo = base.path().join("fleet.git");
    git(base.path(), &["init", "-q", "--bare", "-b", "main", &repo.to_string_lossy()])?;
    git(&repo, &["config", "receive.denyNonFastForwards", "true"])?;
    let bad_apps: Vec<String> = (0..runs).map(|k| format!("podinfo-{k}")).collect();
    let started = Instant::now();
    let (stream, _) = history(commits, files, &bad_apps);
    let mut import = Command::new("git")
        .current_dir(&repo)
        .args(["fast-import", "--quiet"])
        .stdin(Stdio::piped())
        .spawn()?;
    import.stdin.take().ok_or("fast-import stdin")?.write_all(&stream)?;
    if !import.wait()?.success() {
        return Err("git fast-import failed".into());
    }
    let count = git(&repo, &["rev-list", "--count", "main"])?;
    let tree_files = git(&repo, &["ls-tree", "-r", "--name-only", "main"])?.lines().count();
    println!("repository: {count} commits, {tree_files} files, built in {:.1?}", started.elapsed());
    let (_daemon, port) = daemon(base.path())?;
    let url = format!("git://127.0.0.1:{port}/fleet.git");
    let log = git(&repo, &["log", "--format=%H %s", "-n", "60", "main"])?;
    let cache = tempfile::TempDir::new()?;
    let reverter = Git2Reverter::new(ReverterConfig {
        cache_dir: Some(cache.path().to_path_buf()),
        ..ReverterConfig::default()
    });
    println!("| run | clone cache | rollback decided → revert pushed | outcome |\n|---|---|---|---|");
    for (k, app) in bad_apps.iter().enumerate() {
        let subject = format!("{app}: bump to 2.0.0");
        let bad = log
            .lines()
            .find_map(|l| l.split_once(' ').filter(|(_, s)| *s == subject).map(|(sha, _)| sha.to_string()))
            .ok_or("bad release commit not found")?;
        let t = Instant::now();
        let outcome =
            tokio::time::timeout(Duration::from_secs(120), reverter.revert(request(&url, app, &bad)))
                .await??;
        let took = t.elapsed();
        let what = match &outcome {
            RevertOutcome::Pushed { sha, kind, .. } => {
                format!("pushed {} ({kind:?})", &sha[..12.min(sha.len())])
            }
            other => format!("{other:?}"),
        };
        println!(
            "| {} | {} | {:.0} ms | {what} |",
            k + 1,
            if k == 0 { "empty" } else { "warm" },
            took.as_secs_f64() * 1e3
        );
        if !matches!(outcome, RevertOutcome::Pushed { .. }) {
            return Err(format!("revert of {app} did not push: {what}").into());
        }
    }
    let head = git(&repo, &["log", "--format=%s", "-n", "1", "main"])?;
    println!("head of main after the runs: {head}");
    Ok(())
}
