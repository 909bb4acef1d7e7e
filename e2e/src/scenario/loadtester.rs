//! `serin loadtester` as a child process: the webhook target for gates and failing hooks in
//! scenarios 4 and 5.

use std::{
    net::SocketAddr,
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use crate::{error::BedError, util};

/// A running load tester; killed by PID on drop.
pub struct LoadTester {
    child: Child,
    url: String,
    http: reqwest::Client,
}

impl LoadTester {
    /// Starts `serin loadtester` on a free port and waits until it listens.
    pub async fn start(serin: &Path, log_file: &Path) -> Result<Self, BedError> {
        let port = util::free_port()?;
        let log = std::fs::File::create(log_file)
            .map_err(BedError::io(format!("create {}", log_file.display())))?;
        let err = log.try_clone().map_err(BedError::io("clone the log file handle"))?;
        let child = Command::new(serin)
            .args(["loadtester", "--listen", &format!("127.0.0.1:{port}"), "--log-format", "text"])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(BedError::io("start serin loadtester"))?;
        let tester =
            LoadTester { child, url: format!("http://127.0.0.1:{port}"), http: util::http_client()? };
        util::wait_for_tcp(SocketAddr::from(([127, 0, 0, 1], port)), Duration::from_secs(10)).await?;
        Ok(tester)
    }

    /// Base URL (`http://127.0.0.1:<port>`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Opens the gate of canary `namespace/name` (`POST /gate/open`).
    pub async fn open_gate(&self, namespace: &str, name: &str) -> Result<(), BedError> {
        let response = self
            .http
            .post(format!("{}/gate/open", self.url))
            .json(&serde_json::json!({"name": name, "namespace": namespace}))
            .send()
            .await?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(BedError::Process(format!("gate/open answered {}", response.status())))
        }
    }
}

impl Drop for LoadTester {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
