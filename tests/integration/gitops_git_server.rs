//! The GitOps reverter against a real git server: `git daemon --enable=receive-pack` on
//! loopback, bare repositories with GitOps layouts built by the `git` CLI, and (for
//! pull-request mode) a local axum fake of the GitHub endpoints Serin calls.

use std::{
    net::{SocketAddr, TcpListener, TcpStream},
    path::Path,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serin::{
    crd::canary::GitMode,
    gitops::{
        Author, CanaryId, CommitKind, Credentials, FailedRelease, Git2Reverter, GitReverter, PullRequestApi,
        RevertOutcome, RevertRequest, ReverterConfig, WorkloadId,
        source::{ResolvedSource, SourceOrigin},
    },
};
use tempfile::TempDir;

const TEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A `git daemon` serving a temp directory; killed by PID on drop.
struct GitDaemon {
    child: Child,
    port: u16,
    base: TempDir,
}

impl GitDaemon {
    fn start() -> GitDaemon {
        let base = TempDir::new().expect("tempdir");
        let port = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        // Run `git-daemon` itself: `git daemon` would fork it as a child, and killing `git`
        // would leave the daemon running.
        let exec_path = git(base.path(), &["--exec-path"]);
        let child = Command::new(Path::new(&exec_path).join("git-daemon"))
            .args([
                "--export-all",
                "--enable=receive-pack",
                "--reuseaddr",
                "--informative-errors",
                "--listen=127.0.0.1",
            ])
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", base.path().display()))
            .arg(base.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("git daemon");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).is_err() {
            assert!(Instant::now() < deadline, "git daemon did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        GitDaemon { child, port, base }
    }

    /// Creates a bare repository and returns its git:// URL.
    fn repo(&self, name: &str) -> String {
        let path = self.base.path().join(name);
        git(self.base.path(), &["init", "-q", "--bare", "-b", "main", path.to_str().expect("utf8")]);
        git(&path, &["config", "receive.denyNonFastForwards", "true"]);
        format!("git://127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Dev")
        .env("GIT_AUTHOR_EMAIL", "dev@example.com")
        .env("GIT_COMMITTER_NAME", "Dev")
        .env("GIT_COMMITTER_EMAIL", "dev@example.com")
        .args(args)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A working clone where "other writers" (CI, people) make commits.
struct Work {
    dir: TempDir,
}

impl Work {
    fn clone(url: &str) -> Work {
        let dir = TempDir::new().expect("tempdir");
        git(dir.path(), &["clone", "-q", url, "."]);
        git(dir.path(), &["checkout", "-q", "-B", "main"]);
        Work { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, path: &str, content: &str) {
        let full = self.dir.path().join(path);
        std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
        std::fs::write(full, content).expect("write");
    }

    fn read(&self, path: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(path)).expect("read")
    }

    /// Commits everything and pushes; returns the SHA.
    fn commit_push(&self, message: &str) -> String {
        git(self.path(), &["add", "-A"]);
        git(self.path(), &["commit", "-q", "-m", message]);
        git(self.path(), &["push", "-q", "origin", "HEAD:main"]);
        git(self.path(), &["rev-parse", "HEAD"])
    }

    fn pull(&self) {
        git(self.path(), &["pull", "-q", "--ff-only", "origin", "main"]);
    }

    fn head(&self) -> String {
        git(self.path(), &["rev-parse", "HEAD"])
    }

    fn count(&self) -> usize {
        git(self.path(), &["rev-list", "--count", "HEAD"]).parse().expect("count")
    }
}

fn deployment(name: &str, image: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: apps\n  labels:\n    app: {name}\n\
         spec:\n  replicas: 2\n  template:\n    spec:\n      containers:\n        - name: app\n          \
         image: {image} # tag bumped by CI\n          ports:\n            - containerPort: 9898\n"
    )
}

fn request(url: &str, live: Option<&str>, base: Option<&str>, images: &[&str]) -> RevertRequest {
    RevertRequest {
        canary: CanaryId { namespace: "apps".into(), name: "podinfo".into() },
        workload: WorkloadId {
            kind: "Deployment".into(),
            name: "podinfo".into(),
            namespace: "apps".into(),
            images: vec!["ghcr.io/acme/podinfo".into()],
            values_files: vec![],
        },
        source: ResolvedSource {
            url: url.into(),
            branch: "main".into(),
            path: Some("apps".into()),
            live_commit: live.map(str::to_string),
            origin: SourceOrigin::Explicit,
            secret: None,
        },
        failed: FailedRelease {
            revision: "7f3a9c0d1e2b4a65".into(),
            images: images.iter().map(|s| s.to_string()).collect(),
            commit: None,
        },
        last_promoted_commit: base.map(str::to_string),
        reason: "request-success-rate 91.2% below 99% (3 failed checks)".into(),
        failed_checks: vec!["request-success-rate".into(), "request-duration".into()],
        author: Author::default(),
        mode: GitMode::Push,
        credentials: Credentials::None,
        pull_request: None,
    }
}

fn reverter(cache: &Path) -> Git2Reverter {
    Git2Reverter::new(ReverterConfig { cache_dir: Some(cache.to_path_buf()), ..ReverterConfig::default() })
}

async fn run(reverter: &Git2Reverter, req: RevertRequest) -> RevertOutcome {
    tokio::time::timeout(TEST_TIMEOUT, reverter.revert(req)).await.expect("in time").expect("revert")
}

/// Repository with two apps, podinfo at 1.0.0 and frontend at 3.0.0; returns the base SHA.
fn seed_two_apps(work: &Work) -> String {
    work.write("apps/podinfo/deploy.yaml", &deployment("podinfo", "ghcr.io/acme/podinfo:1.0.0"));
    work.write("apps/frontend/deploy.yaml", &deployment("frontend", "ghcr.io/acme/frontend:3.0.0"));
    work.write("README.md", "# fleet\n");
    work.commit_push("initial fleet")
}

fn show(work: &Work, sha: &str, format: &str) -> String {
    git(work.path(), &["show", "-s", &format!("--format={format}"), sha])
}

fn changed_files(work: &Work, sha: &str) -> Vec<String> {
    git(work.path(), &["show", "--name-only", "--format=", sha]).lines().map(str::to_string).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_app_image_bump_is_reverted_with_trailers() {
    let daemon = GitDaemon::start();
    let url = daemon.repo("fleet.git");
    let work = Work::clone(&url);
    seed_two_apps(&work);
    work.write("apps/podinfo/deploy.yaml", &deployment("podinfo", "ghcr.io/acme/podinfo:2.0.0"));
    let bad = work.commit_push("podinfo: bump to 2.0.0");
    let cache = TempDir::new().expect("cache");

    // Last promoted commit unknown: the live commit's own change is undone.
    let outcome =
        run(&reverter(cache.path()), request(&url, Some(&bad), None, &["ghcr.io/acme/podinfo:2.0.0"])).await;
    let RevertOutcome::Pushed { sha, reverted, kind } = outcome else { panic!("pushed: {outcome:?}") };
    assert_eq!(kind, Some(CommitKind::Revert));
    assert_eq!(reverted, vec![bad.clone()]);

    work.pull();
    assert_eq!(work.head(), sha);
    assert_eq!(work.read("apps/podinfo/deploy.yaml"), deployment("podinfo", "ghcr.io/acme/podinfo:1.0.0"));
    assert_eq!(show(&work, &sha, "%P"), bad, "a child of the bad commit, never a rewrite");
    assert_eq!(show(&work, &sha, "%s"), "Revert \"podinfo: bump to 2.0.0\"");
    assert_eq!(show(&work, &sha, "%an <%ae>"), "Serin <serin@serin.dev>");
    let body = show(&work, &sha, "%B");
    assert!(body.contains(&format!("This reverts commit {bad}.")), "{body}");
    assert!(body.contains("request-success-rate 91.2% below 99%"), "{body}");
    let trailers = git(work.path(), &["show", "-s", "--format=%(trailers:only,unfold)", &sha]);
    assert!(trailers.contains("Serin-Canary: apps/podinfo"), "{trailers}");
    assert!(trailers.contains(&format!("Serin-Reverts: {bad}")), "{trailers}");
    assert!(trailers.contains("Serin-Failed-Checks: request-success-rate, request-duration"), "{trailers}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_touching_two_apps_gets_a_restore_of_ours_only() {
    let daemon = GitDaemon::start();
    let url = daemon.repo("fleet.git");
    let work = Work::clone(&url);
    let base = seed_two_apps(&work);
    work.write("apps/podinfo/deploy.yaml", &deployment("podinfo", "ghcr.io/acme/podinfo:2.0.0"));
    work.write("apps/frontend/deploy.yaml", &deployment("frontend", "ghcr.io/acme/frontend:3.1.0"));
    let bad = work.commit_push("release train: podinfo 2.0.0, frontend 3.1.0");
    let cache = TempDir::new().expect("cache");

    let outcome = run(&reverter(cache.path()), request(&url, Some(&bad), Some(&base), &[])).await;
    let RevertOutcome::Pushed { sha, reverted, kind } = outcome else { panic!("pushed: {outcome:?}") };
    assert_eq!(kind, Some(CommitKind::Restore));
    assert_eq!(reverted, vec![bad.clone()]);
    work.pull();
    assert_eq!(changed_files(&work, &sha), vec!["apps/podinfo/deploy.yaml".to_string()]);
    assert_eq!(work.read("apps/podinfo/deploy.yaml"), deployment("podinfo", "ghcr.io/acme/podinfo:1.0.0"));
    assert_eq!(work.read("apps/frontend/deploy.yaml"), deployment("frontend", "ghcr.io/acme/frontend:3.1.0"));
    assert_eq!(show(&work, &sha, "%s"), "Restore apps/podinfo to its last promoted version");
    let trailers = git(work.path(), &["show", "-s", "--format=%(trailers:only,unfold)", &sha]);
    assert!(
        trailers.contains(&format!("Serin-Reverts: {bad}")) && trailers.contains("Serin-Action: restore")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kustomize_images_new_tag_restored_in_place() {
    let daemon = GitDaemon::start();
    let url = daemon.repo("fleet.git");
    let work = Work::clone(&url);
    let kustomization = |ours: &str, theirs: &str| {
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../../base\n\
             images:\n  # podinfo is released by its own pipeline\n  - name: ghcr.io/acme/podinfo\n    newTag: \"{ours}\"\n\
             \x20 - name: ghcr.io/acme/frontend\n    newName: registry.local/frontend\n    newTag: \"{theirs}\" # pinned\n"
        )
    };
    work.write("base/podinfo.yaml", &deployment("podinfo", "ghcr.io/acme/podinfo"));
    work.write("overlays/prod/kustomization.yaml", &kustomization("1.0.0", "3.0.0"));
    let base = work.commit_push("prod overlay");
    work.write("overlays/prod/kustomization.yaml", &kustomization("1.1.0", "3.1.0"));
    let bad = work.commit_push("prod: podinfo 1.1.0, frontend 3.1.0");
    let cache = TempDir::new().expect("cache");

    let outcome =
        run(&reverter(cache.path()), request(&url, Some(&bad), Some(&base), &["ghcr.io/acme/podinfo:1.1.0"]))
            .await;
    let RevertOutcome::Pushed { kind, .. } = outcome else { panic!("pushed: {outcome:?}") };
    assert_eq!(kind, Some(CommitKind::Restore));
    work.pull();
    // Only the podinfo newTag line changed; the comment, quoting and the frontend entry stay.
    assert_eq!(work.read("overlays/prod/kustomization.yaml"), kustomization("1.0.0", "3.1.0"));

    // A kustomize bump of podinfo alone is a plain revert.
    work.write("overlays/prod/kustomization.yaml", &kustomization("1.2.0", "3.1.0"));
    let bad2 = work.commit_push("prod: podinfo 1.2.0");
    let mut req = request(&url, Some(&bad2), None, &["ghcr.io/acme/podinfo:1.2.0"]);
    req.failed.revision = "second-failure".into();
    let outcome = run(&reverter(cache.path()), req).await;
    let RevertOutcome::Pushed { kind, reverted, .. } = outcome else { panic!("pushed: {outcome:?}") };
    assert_eq!((kind, reverted), (Some(CommitKind::Revert), vec![bad2]));
    work.pull();
    assert_eq!(work.read("overlays/prod/kustomization.yaml"), kustomization("1.0.0", "3.1.0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn later_conflicting_commit_falls_back_to_restore() {
    let daemon = GitDaemon::start();
    let url = daemon.repo("fleet.git");
    let work = Work::clone(&url);
    // The image line is the last line of podinfo's document, right above the separator.
    let short = |name: &str, image: &str| {
        format!(
            "kind: Deployment\nmetadata:\n  name: {name}\nspec:\n  template:\n    spec:\n      containers:\n        - name: app\n          image: {image}\n"
        )
    };
    let both =
        |p: &str, f: &str, sep: &str| format!("{}{sep}\n{}", short("podinfo", p), short("frontend", f));
    work.write("apps/all.yaml", &both("ghcr.io/acme/podinfo:1.0.0", "f:1", "---"));
    let base = work.commit_push("apps");
    work.write("apps/all.yaml", &both("ghcr.io/acme/podinfo:2.0.0", "f:1", "---"));
    let bad = work.commit_push("podinfo 2.0.0");
    // Another writer edits the neighbouring line (the separator) and the next document.
    let later = both("ghcr.io/acme/podinfo:2.0.0", "f:2", "--- # frontend");
    work.write("apps/all.yaml", &later);
    let other = work.commit_push("frontend f:2");
    let cache = TempDir::new().expect("cache");

    let outcome = run(&reverter(cache.path()), request(&url, Some(&bad), Some(&base), &[])).await;
    let RevertOutcome::Pushed { sha, kind, .. } = outcome else { panic!("pushed: {outcome:?}") };
    assert_eq!(kind, Some(CommitKind::Restore), "the revert conflicts with {other}");
    let body = {
        work.pull();
        show(&work, &sha, "%B")
    };
    assert!(body.contains("conflicts with later commits"), "{body}");
    assert_eq!(work.read("apps/all.yaml"), later.replace("podinfo:2.0.0", "podinfo:1.0.0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unrestorable_change_makes_no_commit_and_names_the_commit() {
    let daemon = GitDaemon::start();
    let url = daemon.repo("fleet.git");
    let work = Work::clone(&url);
    work.write(
        "kustomization.yaml",
        "images:\n  - name: ghcr.io/acme/podinfo\n    newTag: \"1.0.0\"\n  - name: ghcr.io/acme/frontend\n    newTag: \"3\"\n",
    );
    let base = work.commit_push("images");
    // One commit switches podinfo from a tag to a digest and bumps frontend too.
    work.write(
        "kustomization.yaml",
        "images:\n  - name: ghcr.io/acme/podinfo\n    digest: sha256:abcd\n  - name: ghcr.io/acme/frontend\n    newTag: \"4\"\n",
    );
    let bad = work.commit_push("pin podinfo by digest, frontend 4");
    let before = work.count();
    let cache = TempDir::new().expect("cache");

    let outcome = run(&reverter(cache.path()), request(&url, Some(&bad), Some(&base), &[])).await;
    let RevertOutcome::Failed { commit_to_revert, why } = outcome else { panic!("failed: {outcome:?}") };
    assert_eq!(commit_to_revert, bad);
    assert!(why.contains("also changed other workloads") && why.contains("kustomization.yaml"), "{why}");
    work.pull();
    assert_eq!(work.count(), before, "no commit was made");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_fast_forward_race_is_retried_and_nobody_is_lost() {
    let daemon = GitDaemon::start();
    let url = daemon.repo("fleet.git");
    let work = Work::clone(&url);
    seed_two_apps(&work);
    work.write("apps/podinfo/deploy.yaml", &deployment("podinfo", "ghcr.io/acme/podinfo:2.0.0"));
    let bad = work.commit_push("podinfo 2.0.0");
    let racer = Arc::new(Mutex::new(Work::clone(&url)));
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let cache = TempDir::new().expect("cache");
    let hook_racer = racer.clone();
    let hook_attempts = attempts.clone();
    let reverter = Git2Reverter::new(ReverterConfig {
        cache_dir: Some(cache.path().to_path_buf()),
        before_push: Some(Arc::new(move |attempt| {
            hook_attempts.lock().expect("lock").push(attempt);
            if attempt == 1 {
                // Another writer pushes between Serin's fetch and its push.
                let w = hook_racer.lock().expect("lock");
                w.write("README.md", "# fleet\n\nowned by the platform team\n");
                w.commit_push("docs: owners");
            }
        })),
        ..ReverterConfig::default()
    });

    let outcome = run(&reverter, request(&url, Some(&bad), None, &[])).await;
    let RevertOutcome::Pushed { sha, kind, .. } = outcome else { panic!("pushed: {outcome:?}") };
    assert_eq!(kind, Some(CommitKind::Revert));
    assert_eq!(*attempts.lock().expect("lock"), vec![1, 2]);
    work.pull();
    let docs = racer.lock().expect("lock").head();
    assert_eq!(show(&work, &sha, "%P"), docs, "the revert sits on top of the other writer's commit");
    assert!(work.read("README.md").contains("platform team"));
    assert_eq!(work.read("apps/podinfo/deploy.yaml"), deployment("podinfo", "ghcr.io/acme/podinfo:1.0.0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_revert_is_refused() {
    let daemon = GitDaemon::start();
    let url = daemon.repo("fleet.git");
    let work = Work::clone(&url);
    seed_two_apps(&work);
    work.write("apps/podinfo/deploy.yaml", &deployment("podinfo", "ghcr.io/acme/podinfo:2.0.0"));
    let bad = work.commit_push("podinfo 2.0.0");
    work.write("apps/podinfo/deploy.yaml", &deployment("podinfo", "ghcr.io/acme/podinfo:2.0.1"));
    let fix = work.commit_push("podinfo 2.0.1 (hotfix)");
    let cache = TempDir::new().expect("cache");

    let outcome = run(&reverter(cache.path()), request(&url, Some(&bad), None, &[])).await;
    let RevertOutcome::NotNeeded { why } = outcome else { panic!("refused: {outcome:?}") };
    assert!(why.starts_with("stale:") && why.contains(&fix), "{why}");

    // Live commit unknown, but the canary ran 2.0.0 and the branch now says 2.0.1: refused too.
    let outcome =
        run(&reverter(cache.path()), request(&url, None, None, &["ghcr.io/acme/podinfo:2.0.0"])).await;
    let RevertOutcome::NotNeeded { why } = outcome else { panic!("refused: {outcome:?}") };
    assert!(why.starts_with("stale:") && why.contains("2.0.0"), "{why}");
    work.pull();
    assert_eq!(work.head(), fix, "nothing pushed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revert_is_idempotent_across_restarts_and_concurrent_controllers() {
    let daemon = GitDaemon::start();
    let url = daemon.repo("fleet.git");
    let work = Work::clone(&url);
    seed_two_apps(&work);
    work.write("apps/podinfo/deploy.yaml", &deployment("podinfo", "ghcr.io/acme/podinfo:2.0.0"));
    let bad = work.commit_push("podinfo 2.0.0");

    // Two controllers (separate caches, separate reverters) race on the same failure.
    let (c1, c2) = (TempDir::new().expect("c1"), TempDir::new().expect("c2"));
    let (r1, r2) = (reverter(c1.path()), reverter(c2.path()));
    let req = request(&url, Some(&bad), None, &[]);
    let (a, b) = tokio::join!(run(&r1, req.clone()), run(&r2, req.clone()));
    let (RevertOutcome::Pushed { sha: sa, .. }, RevertOutcome::Pushed { sha: sb, .. }) = (&a, &b) else {
        panic!("both pushed: {a:?} {b:?}")
    };
    assert_eq!(sa, sb, "one revert commit, found by the loser");
    work.pull();
    let count = work.count();

    // A restarted controller (fresh cache) asks again: same SHA, no new commit.
    let c3 = TempDir::new().expect("c3");
    let again = run(&reverter(c3.path()), req).await;
    assert_eq!(again, RevertOutcome::Pushed { sha: sa.clone(), reverted: vec![bad], kind: None });
    work.pull();
    assert_eq!(work.count(), count);
    assert_eq!(&work.head(), sa);
}

/// What the fake GitHub API saw.
#[derive(Default)]
struct Recorded {
    requests: Vec<(String, String, String)>,
}

async fn fake_github() -> (SocketAddr, Arc<Mutex<Recorded>>, tokio::task::JoinHandle<()>) {
    use axum::{
        Router,
        extract::{RawQuery, State},
        http::{HeaderMap, StatusCode},
        routing::post,
    };
    type Shared = Arc<Mutex<Recorded>>;
    async fn create(State(s): State<Shared>, headers: HeaderMap, body: String) -> (StatusCode, String) {
        let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let mut rec = s.lock().expect("lock");
        let first = !rec.requests.iter().any(|(m, _, _)| m == "POST");
        rec.requests.push(("POST".into(), auth, body));
        if first {
            (StatusCode::CREATED, r#"{"number":7,"html_url":"http://github.local/acme/fleet/pull/7"}"#.into())
        } else {
            (StatusCode::UNPROCESSABLE_ENTITY, r#"{"message":"A pull request already exists"}"#.into())
        }
    }
    async fn list(State(s): State<Shared>, RawQuery(q): RawQuery) -> (StatusCode, String) {
        s.lock().expect("lock").requests.push(("GET".into(), String::new(), q.unwrap_or_default()));
        (StatusCode::OK, r#"[{"number":7,"html_url":"http://github.local/acme/fleet/pull/7"}]"#.into())
    }
    let state: Shared = Arc::default();
    let app =
        Router::new().route("/repos/acme/fleet/pulls", post(create).get(list)).with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, state, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_request_mode_pushes_a_branch_and_opens_one_pull_request() {
    let daemon = GitDaemon::start();
    let url = daemon.repo("fleet.git");
    let work = Work::clone(&url);
    seed_two_apps(&work);
    work.write("apps/podinfo/deploy.yaml", &deployment("podinfo", "ghcr.io/acme/podinfo:2.0.0"));
    let bad = work.commit_push("podinfo 2.0.0");
    let (addr, recorded, server) = fake_github().await;
    let cache = TempDir::new().expect("cache");
    let mut req = request(&url, Some(&bad), None, &[]);
    req.mode = GitMode::PullRequest;
    req.pull_request = Some(PullRequestApi::GitHub {
        api_url: format!("http://{addr}"),
        owner: "acme".into(),
        repo: "fleet".into(),
        token: "ghp_test".into(),
    });

    let outcome = run(&reverter(cache.path()), req.clone()).await;
    let RevertOutcome::PullRequest { url: pr, branch, sha, reverted } = outcome else {
        panic!("pr: {outcome:?}")
    };
    assert_eq!(pr.as_deref(), Some("http://github.local/acme/fleet/pull/7"));
    assert_eq!(branch, "serin/revert-apps-podinfo-7f3a9c0d1e2b4a65");
    assert_eq!(reverted, vec![bad.clone()]);
    let remote_branch = git(work.path(), &["ls-remote", &url, &format!("refs/heads/{branch}")]);
    assert!(remote_branch.starts_with(&sha), "{remote_branch}");
    work.pull();
    assert_eq!(work.head(), bad, "main is untouched in pull-request mode");
    {
        let rec = recorded.lock().expect("lock");
        let (method, auth, body) = &rec.requests[0];
        assert_eq!((method.as_str(), auth.as_str()), ("POST", "Bearer ghp_test"));
        let body: serde_json::Value = serde_json::from_str(body).expect("json");
        assert_eq!(body["head"], branch.as_str());
        assert_eq!(body["base"], "main");
    }

    // Restart: the branch is found, the API says the PR exists, and the same one is returned.
    let c2 = TempDir::new().expect("c2");
    let again = run(&reverter(c2.path()), req).await;
    assert_eq!(
        again,
        RevertOutcome::PullRequest { url: pr, branch: branch.clone(), sha: sha.clone(), reverted: vec![bad] }
    );
    let rec = recorded.lock().expect("lock");
    let methods: Vec<&str> = rec.requests.iter().map(|(m, _, _)| m.as_str()).collect();
    assert_eq!(methods, vec!["POST", "POST", "GET"]);
    assert!(rec.requests[2].2.contains("head=acme%3Aserin%2Frevert-apps-podinfo"), "{}", rec.requests[2].2);
    server.abort();
}

/// `git http-backend` (CGI) behind a tiny axum server that demands HTTP basic auth with a token,
/// as GitHub/GitLab do for `x-access-token:<token>`.
async fn http_git_server(
    base: &Path,
    token: &str,
) -> (SocketAddr, Arc<Mutex<Vec<String>>>, tokio::task::JoinHandle<()>) {
    use axum::{
        Router,
        body::{Body, Bytes},
        extract::State,
        http::{HeaderMap, Method, StatusCode, Uri},
        response::Response,
    };
    use base64::Engine;

    #[derive(Clone)]
    struct St {
        base: std::path::PathBuf,
        expected: String,
        seen: Arc<Mutex<Vec<String>>>,
    }
    async fn handle(
        State(st): State<St>,
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> Response {
        let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
        st.seen.lock().expect("lock").push(format!("{method} {} auth={}", uri.path(), auth == st.expected));
        if auth != st.expected {
            return Response::builder()
                .status(StatusCode::UNAUTHORIZED)
                .header("WWW-Authenticate", "Basic realm=\"git\"")
                .body(Body::empty())
                .expect("response");
        }
        let content_type =
            headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let output = tokio::task::spawn_blocking(move || {
            use std::io::Write;
            let mut child = Command::new("git")
                .arg("http-backend")
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .env("GIT_PROJECT_ROOT", &st.base)
                .env("GIT_HTTP_EXPORT_ALL", "1")
                .env("REMOTE_USER", "x-access-token")
                .env("REMOTE_ADDR", "127.0.0.1")
                .env("REQUEST_METHOD", method.as_str())
                .env("PATH_INFO", uri.path())
                .env("QUERY_STRING", uri.query().unwrap_or_default())
                .env("CONTENT_TYPE", content_type)
                .env("CONTENT_LENGTH", body.len().to_string())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("http-backend");
            child.stdin.take().expect("stdin").write_all(&body).expect("body");
            child.wait_with_output().expect("output").stdout
        })
        .await
        .expect("cgi");
        let split = output.windows(4).position(|w| w == b"\r\n\r\n").map(|i| (i, 4));
        let split = split.or_else(|| output.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
        let (head_end, sep) = split.expect("CGI headers");
        let mut response = Response::builder();
        for line in String::from_utf8_lossy(&output[..head_end]).lines() {
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("status") {
                    let code: u16 = v.trim()[..3].parse().expect("status");
                    response = response.status(code);
                } else {
                    response = response.header(k.trim(), v.trim());
                }
            }
        }
        response.body(Body::from(output[head_end + sep..].to_vec())).expect("response")
    }
    let seen = Arc::new(Mutex::new(Vec::new()));
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{token}"))
    );
    let st = St { base: base.to_path_buf(), expected, seen: seen.clone() };
    let app = Router::new().fallback(handle).with_state(st);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, seen, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_style_token_auth_over_git_http_backend() {
    let base = TempDir::new().expect("base");
    git(base.path(), &["init", "-q", "--bare", "-b", "main", "fleet.git"]);
    git(&base.path().join("fleet.git"), &["config", "http.receivepack", "true"]);
    let (addr, seen, server) = http_git_server(base.path(), "t0ken").await;
    let url = format!("http://{addr}/fleet.git");
    let authed = format!("http://x-access-token:t0ken@{addr}/fleet.git");
    let (work, bad) = tokio::task::spawn_blocking(move || {
        let work = Work::clone(&authed);
        seed_two_apps(&work);
        work.write("apps/podinfo/deploy.yaml", &deployment("podinfo", "ghcr.io/acme/podinfo:2.0.0"));
        let bad = work.commit_push("podinfo 2.0.0");
        (work, bad)
    })
    .await
    .expect("seed");
    let cache = TempDir::new().expect("cache");

    // Wrong token: a bounded authentication failure, not a hang, and no commit.
    let mut req = request(&url, Some(&bad), None, &[]);
    req.credentials = Credentials::Token { token: "wrong".into() };
    let err = tokio::time::timeout(TEST_TIMEOUT, reverter(cache.path()).revert(req.clone()))
        .await
        .expect("in time")
        .expect_err("rejected");
    assert!(!err.to_string().contains("wrong"), "the token never appears in errors: {err}");
    assert!(err.to_string().contains("authentication"), "{err}");

    req.credentials = Credentials::Token { token: "t0ken".into() };
    let outcome = run(&reverter(cache.path()), req).await;
    let RevertOutcome::Pushed { sha, kind, .. } = outcome else { panic!("pushed: {outcome:?}") };
    assert_eq!(kind, Some(CommitKind::Revert));
    let work = tokio::task::spawn_blocking(move || {
        work.pull();
        work
    })
    .await
    .expect("pull");
    assert_eq!(work.head(), sha);
    let seen = seen.lock().expect("lock");
    assert!(seen.iter().any(|s| s.starts_with("POST /fleet.git/git-receive-pack auth=true")), "{seen:?}");
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_commit_since_the_last_promotion_is_reverted_in_one_commit() {
    let daemon = GitDaemon::start();
    let url = daemon.repo("fleet.git");
    let work = Work::clone(&url);
    let base = seed_two_apps(&work);
    work.write("apps/podinfo/deploy.yaml", &deployment("podinfo", "ghcr.io/acme/podinfo:2.0.0"));
    let first = work.commit_push("podinfo 2.0.0");
    work.write("apps/frontend/deploy.yaml", &deployment("frontend", "ghcr.io/acme/frontend:3.0.1"));
    let unrelated = work.commit_push("frontend 3.0.1");
    work.write("apps/podinfo/deploy.yaml", &deployment("podinfo", "ghcr.io/acme/podinfo:2.1.0"));
    let second = work.commit_push("podinfo 2.1.0");
    let cache = TempDir::new().expect("cache");

    let outcome = run(
        &reverter(cache.path()),
        request(&url, Some(&second), Some(&base), &["ghcr.io/acme/podinfo:2.1.0"]),
    )
    .await;
    let RevertOutcome::Pushed { sha, reverted, kind } = outcome else { panic!("pushed: {outcome:?}") };
    assert_eq!(kind, Some(CommitKind::Revert));
    assert_eq!(reverted, vec![second.clone(), first.clone()], "newest first; {unrelated} is not ours");
    work.pull();
    assert_eq!(show(&work, &sha, "%P"), second, "one commit on top of the branch");
    assert_eq!(show(&work, &sha, "%s"), "Revert 2 commits of apps/podinfo");
    assert_eq!(work.read("apps/podinfo/deploy.yaml"), deployment("podinfo", "ghcr.io/acme/podinfo:1.0.0"));
    assert_eq!(work.read("apps/frontend/deploy.yaml"), deployment("frontend", "ghcr.io/acme/frontend:3.0.1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_release_values_are_restored_when_a_commit_bumps_two_releases() {
    let daemon = GitDaemon::start();
    let url = daemon.repo("fleet.git");
    let work = Work::clone(&url);
    let release = |name: &str, tag: &str| {
        format!(
            "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: {name}\n  namespace: apps\n\
             spec:\n  chart:\n    spec:\n      chart: {name}\n      version: \"6.x\"\n  values:\n    replicaCount: 2\n\
             \x20   image:\n      repository: ghcr.io/acme/{name}\n      tag: \"{tag}\"\n"
        )
    };
    let file = |p: &str, f: &str| format!("{}---\n{}", release("podinfo", p), release("frontend", f));
    work.write("releases/apps.yaml", &file("6.0.0", "3.0.0"));
    let base = work.commit_push("releases");
    work.write("releases/apps.yaml", &file("6.1.0", "3.1.0"));
    let bad = work.commit_push("bump podinfo and frontend charts' images");
    let cache = TempDir::new().expect("cache");

    let outcome =
        run(&reverter(cache.path()), request(&url, Some(&bad), Some(&base), &["ghcr.io/acme/podinfo:6.1.0"]))
            .await;
    let RevertOutcome::Pushed { kind, .. } = outcome else { panic!("pushed: {outcome:?}") };
    assert_eq!(kind, Some(CommitKind::Restore));
    work.pull();
    assert_eq!(work.read("releases/apps.yaml"), file("6.0.0", "3.1.0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shallow_fetch_is_deepened_until_the_live_commit() {
    let daemon = GitDaemon::start();
    let url = daemon.repo("fleet.git");
    let work = Work::clone(&url);
    let base = seed_two_apps(&work);
    work.write("apps/podinfo/deploy.yaml", &deployment("podinfo", "ghcr.io/acme/podinfo:2.0.0"));
    let bad = work.commit_push("podinfo 2.0.0");
    for i in 0..150 {
        git(work.path(), &["commit", "-q", "--allow-empty", "-m", &format!("unrelated {i}")]);
    }
    git(work.path(), &["push", "-q", "origin", "HEAD:main"]);
    let cache = TempDir::new().expect("cache");
    let reverter = Git2Reverter::new(ReverterConfig {
        cache_dir: Some(cache.path().to_path_buf()),
        fetch_depth: Some(10),
        ..ReverterConfig::default()
    });

    let outcome = run(&reverter, request(&url, Some(&bad), Some(&base), &[])).await;
    let RevertOutcome::Pushed { sha, kind, .. } = outcome else { panic!("pushed: {outcome:?}") };
    assert_eq!(kind, Some(CommitKind::Revert));
    work.pull();
    assert_eq!(work.head(), sha);
    assert_eq!(work.read("apps/podinfo/deploy.yaml"), deployment("podinfo", "ghcr.io/acme/podinfo:1.0.0"));
    // The cached clone is reused: asking again finds the revert without a new commit.
    let again = run(&reverter, request(&url, Some(&bad), Some(&base), &[])).await;
    assert!(matches!(again, RevertOutcome::Pushed { sha: ref s, kind: None, .. } if *s == sha), "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argo_head_target_revision_uses_the_remote_default_branch() {
    let daemon = GitDaemon::start();
    let url = daemon.repo("fleet.git");
    let work = Work::clone(&url);
    seed_two_apps(&work);
    work.write("apps/podinfo/deploy.yaml", &deployment("podinfo", "ghcr.io/acme/podinfo:2.0.0"));
    let bad = work.commit_push("podinfo 2.0.0");
    let cache = TempDir::new().expect("cache");
    let mut req = request(&url, Some(&bad), None, &[]);
    req.source.branch = "HEAD".into();

    let outcome = run(&reverter(cache.path()), req).await;
    let RevertOutcome::Pushed { sha, .. } = outcome else { panic!("pushed: {outcome:?}") };
    work.pull();
    assert_eq!(work.head(), sha);
}

async fn fake_gitlab() -> (SocketAddr, Arc<Mutex<Recorded>>, tokio::task::JoinHandle<()>) {
    use axum::{
        Router,
        extract::{RawQuery, State},
        http::{HeaderMap, StatusCode, Uri},
        routing::post,
    };
    type Shared = Arc<Mutex<Recorded>>;
    async fn create(
        State(s): State<Shared>,
        headers: HeaderMap,
        uri: Uri,
        body: String,
    ) -> (StatusCode, String) {
        let token =
            headers.get("private-token").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let mut rec = s.lock().expect("lock");
        let first = !rec.requests.iter().any(|(m, _, _)| m == "POST");
        rec.requests.push(("POST".into(), format!("{token} {}", uri.path()), body));
        if first {
            (
                StatusCode::CREATED,
                r#"{"iid":3,"web_url":"http://gitlab.local/acme/fleet/-/merge_requests/3"}"#.into(),
            )
        } else {
            (StatusCode::CONFLICT, r#"{"message":["Another open merge request already exists"]}"#.into())
        }
    }
    async fn list(State(s): State<Shared>, RawQuery(q): RawQuery) -> (StatusCode, String) {
        s.lock().expect("lock").requests.push(("GET".into(), String::new(), q.unwrap_or_default()));
        (
            StatusCode::OK,
            r#"[{"iid":3,"web_url":"http://gitlab.local/acme/fleet/-/merge_requests/3"}]"#.into(),
        )
    }
    let state: Shared = Arc::default();
    let app = Router::new()
        .route("/api/v4/projects/{project}/merge_requests", post(create).get(list))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, state, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitlab_merge_request_is_opened_once() {
    let (addr, recorded, server) = fake_gitlab().await;
    let api = PullRequestApi::GitLab {
        api_url: format!("http://{addr}/api/v4"),
        project: "acme/fleet".into(),
        token: "glpat-test".into(),
    };
    let open = |api: PullRequestApi| async move {
        serin::gitops::pull_request::open(&api, "serin/revert-apps-podinfo-1", "main", "Revert", "body").await
    };
    let first = open(api.clone()).await.expect("created");
    let second = open(api).await.expect("found");
    assert_eq!(first, "http://gitlab.local/acme/fleet/-/merge_requests/3");
    assert_eq!(second, first);
    let rec = recorded.lock().expect("lock");
    assert_eq!(rec.requests[0].1, "glpat-test /api/v4/projects/acme%2Ffleet/merge_requests");
    let body: serde_json::Value = serde_json::from_str(&rec.requests[0].2).expect("json");
    assert_eq!(
        (body["source_branch"].as_str(), body["target_branch"].as_str()),
        (Some("serin/revert-apps-podinfo-1"), Some("main"))
    );
    assert_eq!(rec.requests[2].2, "source_branch=serin%2Frevert-apps-podinfo-1&state=opened");
    server.abort();
}
