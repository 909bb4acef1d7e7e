//! Real Prometheus (Debian's `/usr/bin/prometheus`, `apt-get install -y prometheus`) for the
//! test bed, started on 127.0.0.1 with a temporary data directory and killed by PID on drop.
//!
//! The generated `prometheus.yml` scrapes every second:
//! - job `proxy`: the weighted proxy's `/metrics` (static target), the Istio-shaped series;
//! - job `pods`: the demo app pods listed in a `file_sd` file the simulator rewrites, with the
//!   labels `kubernetes_namespace` and `kubernetes_pod_name` for the `kubernetes` queries.
//!
//! It runs with `--scrape.discovery-reload-interval=100ms` (a hidden flag; the default 5 s
//! throttle delays the first scrape by ~6 s) and `--web.enable-lifecycle`.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use tracing::{info, warn};

use crate::{error::BedError, util};

/// Settings of the Prometheus instance.
#[derive(Debug, Clone)]
pub struct PrometheusConfig {
    /// Working directory: `prometheus.yml`, `data/` and `prometheus.log` go here.
    pub dir: PathBuf,
    /// Static scrape targets as (job name, address).
    pub static_targets: Vec<(String, SocketAddr)>,
    /// `file_sd` file for the job `pods`, if any.
    pub file_sd: Option<PathBuf>,
    /// Scrape and evaluation interval in seconds.
    pub scrape_interval_secs: u32,
    /// The prometheus binary; `/usr/bin/prometheus` (or `$PATH`) when `None`.
    pub binary: Option<PathBuf>,
}

/// A running Prometheus.
#[derive(Debug)]
pub struct Prometheus {
    config: PrometheusConfig,
    binary: PathBuf,
    port: u16,
    child: Option<Child>,
    http: reqwest::Client,
}

/// One sample of an instant-vector answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series labels.
    pub labels: serde_json::Map<String, Value>,
    /// The value (NaN when Prometheus says so).
    pub value: f64,
}

impl Prometheus {
    /// Writes the config and starts Prometheus on a free port; returns once `/-/ready` answers.
    pub async fn start(config: PrometheusConfig) -> Result<Self, BedError> {
        let binary = match &config.binary {
            Some(b) => b.clone(),
            None if Path::new("/usr/bin/prometheus").is_file() => PathBuf::from("/usr/bin/prometheus"),
            None => {
                util::find_program("prometheus", "apt-get install -y --no-install-recommends prometheus")?
            }
        };
        std::fs::create_dir_all(config.dir.join("data")).map_err(BedError::io("create prometheus dir"))?;
        let yml = render_config(&config);
        std::fs::write(config.dir.join("prometheus.yml"), yml)
            .map_err(BedError::io("write prometheus.yml"))?;
        let mut last_err = None;
        for _ in 0..3 {
            let port = util::free_port()?;
            let mut prom = Prometheus {
                config: config.clone(),
                binary: binary.clone(),
                port,
                child: None,
                http: util::http_client()?,
            };
            match prom.spawn().await {
                Ok(()) => return Ok(prom),
                Err(err) => {
                    warn!(%err, port, "prometheus did not start; retrying on another port");
                    prom.stop();
                    last_err = Some(err);
                }
            }
        }
        Err(last_err.unwrap_or_else(|| BedError::Process("prometheus did not start".into())))
    }

    async fn spawn(&mut self) -> Result<(), BedError> {
        let log = std::fs::File::create(self.config.dir.join("prometheus.log"))
            .map_err(BedError::io("create prometheus.log"))?;
        let log2 = log.try_clone().map_err(BedError::io("clone log handle"))?;
        let child = Command::new(&self.binary)
            .arg(format!("--config.file={}", self.config.dir.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", self.config.dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{}", self.port))
            .arg("--web.enable-lifecycle")
            .arg("--scrape.discovery-reload-interval=100ms")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(BedError::io(format!("start {}", self.binary.display())))?;
        info!(pid = child.id(), port = self.port, "prometheus started");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(BedError::Process(format!(
                    "prometheus exited with {status}; see {}",
                    self.config.dir.join("prometheus.log").display()
                )));
            }
            let ready = self.http.get(format!("{}/-/ready", self.url())).send().await;
            if matches!(ready, Ok(r) if r.status().is_success()) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(BedError::Timeout(Duration::from_secs(15), "prometheus /-/ready".into()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Base URL, e.g. `http://127.0.0.1:9090`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the process by PID and reaps it (a no-op when stopped). The data are kept.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id();
            if let Err(err) = child.kill() {
                warn!(pid, %err, "killing prometheus failed");
            }
            let _ = child.wait();
            info!(pid, "prometheus stopped");
        }
    }

    /// Starts Prometheus again on the same port and data directory after [`Self::stop`].
    pub async fn restart(&mut self) -> Result<(), BedError> {
        self.stop();
        self.spawn().await
    }

    /// Runs an instant query and returns its samples (an empty vector for no data).
    pub async fn query(&self, promql: &str) -> Result<Vec<Sample>, BedError> {
        let url =
            reqwest::Url::parse_with_params(&format!("{}/api/v1/query", self.url()), &[("query", promql)])
                .map_err(|e| BedError::Parse(format!("query url: {e}")))?;
        let body: Value = self.http.get(url).send().await?.json().await?;
        if body["status"] != "success" {
            return Err(BedError::Parse(format!("prometheus answered {body}")));
        }
        let result = body["data"]["result"].as_array().cloned().unwrap_or_default();
        let mut out = Vec::new();
        for item in result {
            let value = item["value"][1].as_str().and_then(|v| v.parse::<f64>().ok()).unwrap_or(f64::NAN);
            let labels = item["metric"].as_object().cloned().unwrap_or_default();
            out.push(Sample { labels, value });
        }
        Ok(out)
    }

    /// Polls `promql` every 250 ms until it returns exactly one non-NaN value that `accept`
    /// likes, and returns that value.
    pub async fn wait_for_value(
        &self,
        promql: &str,
        timeout: Duration,
        accept: impl Fn(f64) -> bool,
    ) -> Result<f64, BedError> {
        let deadline = Instant::now() + timeout;
        loop {
            let last = match self.query(promql).await {
                Ok(samples) => {
                    if let [one] = samples.as_slice()
                        && !one.value.is_nan()
                        && accept(one.value)
                    {
                        return Ok(one.value);
                    }
                    format!("{samples:?}")
                }
                Err(err) => err.to_string(),
            };
            if Instant::now() >= deadline {
                return Err(BedError::Timeout(timeout, format!("query {promql}: last answer {last}")));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.stop();
    }
}

fn render_config(config: &PrometheusConfig) -> String {
    let interval = config.scrape_interval_secs.max(1);
    let mut yml = format!("global:\n  scrape_interval: {interval}s\n  evaluation_interval: {interval}s\n");
    yml.push_str(&format!("  scrape_timeout: {interval}s\nscrape_configs:\n"));
    for (job, addr) in &config.static_targets {
        yml.push_str(&format!("  - job_name: {job:?}\n    static_configs:\n      - targets: [\"{addr}\"]\n"));
    }
    if let Some(path) = &config.file_sd {
        yml.push_str(&format!(
            "  - job_name: pods\n    file_sd_configs:\n      - files: [{:?}]\n        refresh_interval: 1s\n",
            path.display().to_string()
        ));
    }
    yml
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_lists_static_and_file_sd_jobs() {
        let yml = render_config(&PrometheusConfig {
            dir: PathBuf::from("/tmp/x"),
            static_targets: vec![("proxy".into(), SocketAddr::from(([127, 0, 0, 1], 1234)))],
            file_sd: Some(PathBuf::from("/tmp/x/pods.json")),
            scrape_interval_secs: 1,
            binary: None,
        });
        assert!(yml.contains("scrape_interval: 1s"));
        assert!(yml.contains("targets: [\"127.0.0.1:1234\"]"));
        assert!(yml.contains("files: [\"/tmp/x/pods.json\"]"));
    }
}
