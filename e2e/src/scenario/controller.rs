//! `serin controller` as a child process of the test bed: started with the bed's kubeconfig,
//! logging to a file, killed by PID (SIGKILL for crash tests, SIGTERM for a clean stop).

use std::{
    fs::OpenOptions,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use crate::error::BedError;

/// How to start one `serin controller` process.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// The `serin` binary.
    pub serin: PathBuf,
    /// Kubeconfig of the API stand-in.
    pub kubeconfig: PathBuf,
    /// `--provider`: the default router for canaries that name none.
    pub provider: String,
    /// `--metrics-server`: Prometheus for builtin metrics.
    pub metrics_server: String,
    /// `--gateway-metrics`: whose metrics the Gateway API builtins query.
    pub gateway_metrics: String,
    /// `--listen` address for `/metrics`, `/healthz`, `/readyz`.
    pub listen: String,
    /// `--leader-election` with this identity, or none.
    pub leader_identity: Option<String>,
    /// `--git-cache-dir`.
    pub git_cache_dir: PathBuf,
    /// Where stdout and stderr go (appended, so restarts keep one log).
    pub log_file: PathBuf,
}

impl ControllerConfig {
    /// One controller as the scenarios and benchmarks run it: the Gateway API router with the
    /// Istio gateway's metrics from `metrics_server`, `/metrics` on a free port, no leader
    /// election, the Git cache under `dir`.
    pub fn new(
        serin: &Path,
        kubeconfig: &Path,
        metrics_server: String,
        dir: &Path,
        log_file: PathBuf,
    ) -> Result<Self, BedError> {
        Ok(ControllerConfig {
            serin: serin.to_path_buf(),
            kubeconfig: kubeconfig.to_path_buf(),
            provider: "gatewayapi:v1".into(),
            metrics_server,
            gateway_metrics: "istio".into(),
            listen: format!("127.0.0.1:{}", crate::util::free_port()?),
            leader_identity: None,
            git_cache_dir: dir.join("git-cache"),
            log_file,
        })
    }
}

/// A running (or stopped) controller process. Clones are handles to the same process, so a
/// chaos task can kill it while a scenario runs; the last handle dropped kills it.
#[derive(Debug, Clone)]
pub struct ControllerProcess {
    config: ControllerConfig,
    child: Arc<Mutex<Option<Child>>>,
    starts: Arc<AtomicU32>,
}

impl ControllerProcess {
    /// Starts the controller.
    pub fn start(config: ControllerConfig) -> Result<Self, BedError> {
        let process = ControllerProcess { config, child: Arc::default(), starts: Arc::default() };
        process.restart()?;
        Ok(process)
    }

    fn child(&self) -> MutexGuard<'_, Option<Child>> {
        self.child.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts the controller again after [`Self::kill`] or [`Self::terminate`] (a no-op while
    /// it runs).
    pub fn restart(&self) -> Result<(), BedError> {
        let mut slot = self.child();
        if running(&mut slot) {
            return Ok(());
        }
        let c = &self.config;
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&c.log_file)
            .map_err(BedError::io(format!("open {}", c.log_file.display())))?;
        let err = log.try_clone().map_err(BedError::io("clone the log file handle"))?;
        let mut command = Command::new(&c.serin);
        command
            .arg("controller")
            .args(["--provider", &c.provider])
            .args(["--metrics-server", &c.metrics_server])
            .args(["--gateway-metrics", &c.gateway_metrics])
            .args(["--listen", &c.listen])
            .args(["--cluster-name", "testbed"])
            .args(["--log-format", "text"])
            .arg("--git-cache-dir")
            .arg(&c.git_cache_dir)
            .env("KUBECONFIG", &c.kubeconfig)
            .env("RUST_LOG", std::env::var("SERIN_E2E_CONTROLLER_LOG").unwrap_or_else(|_| "info".into()))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err);
        if let Some(identity) = &c.leader_identity {
            command.args(["--leader-election", "--lease-namespace", "serin-system", "--identity", identity]);
        }
        let child =
            command.spawn().map_err(BedError::io(format!("start {} controller", c.serin.display())))?;
        *slot = Some(child);
        self.starts.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// PID of the running process.
    pub fn pid(&self) -> Option<u32> {
        self.child().as_ref().map(Child::id)
    }

    /// How many times the process was started.
    pub fn starts(&self) -> u32 {
        self.starts.load(Ordering::SeqCst)
    }

    /// Whether the process is alive (reaps it if it exited).
    pub fn is_running(&self) -> bool {
        running(&mut self.child())
    }

    /// SIGKILL: a crash, no cleanup, no lease release.
    pub fn kill(&self) {
        if let Some(mut child) = self.child().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait up to `grace` for a clean exit (then SIGKILL). Returns whether it
    /// exited on its own with status 0.
    pub fn terminate(&self, grace: Duration) -> bool {
        let Some(mut child) = self.child().take() else { return false };
        let sent =
            Command::new("kill").args(["-TERM", &child.id().to_string()]).status().is_ok_and(|s| s.success());
        let deadline = Instant::now() + grace;
        while sent && Instant::now() < deadline {
            match child.try_wait() {
                Ok(Some(status)) => return status.success(),
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                Err(_) => break,
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// The log file (all starts).
    pub fn log_file(&self) -> &Path {
        &self.config.log_file
    }

    /// The last `lines` lines of the log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.config.log_file).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for ControllerProcess {
    fn drop(&mut self) {
        if Arc::strong_count(&self.child) == 1 {
            self.kill();
        }
    }
}

fn running(slot: &mut Option<Child>) -> bool {
    match slot.as_mut().map(Child::try_wait) {
        Some(Ok(None)) => true,
        Some(_) => {
            *slot = None;
            false
        }
        None => false,
    }
}

/// Where the `serin` binary is: `$SERIN_BIN`, else next to the running executable.
pub fn find_serin() -> Option<PathBuf> {
    crate::util::find_binary("SERIN_BIN", "serin")
}
