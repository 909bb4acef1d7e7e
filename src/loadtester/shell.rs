//! Shell tasks (`bash`, non-`hey` `cmd`, `helm`, `kubectl`), run only when the load tester was
//! started with `--allow-shell`. Every command is bounded by `--timeout` and killed when it
//! runs over; background commands are deduplicated per canary+command while they run.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use thiserror::Error;
use tokio::process::Command;

use crate::loadtester::task::ShellTask;

/// Output returned or logged, at most this many bytes.
pub const OUTPUT_LIMIT: usize = 64 * 1024;

/// A shell command that did not succeed.
#[derive(Debug, Error)]
pub enum ShellError {
    /// The interpreter could not be started.
    #[error("starting {0}: {1}")]
    Spawn(&'static str, std::io::Error),
    /// It ran longer than `--timeout`.
    #[error("command timed out after {0:?}")]
    Timeout(Duration),
    /// It exited non-zero.
    #[error("command failed ({status}): {output}")]
    Failed {
        /// Exit status.
        status: String,
        /// stderr, then stdout.
        output: String,
    },
}

fn text(bytes: &[u8]) -> String {
    crate::webhook::caller::truncate_utf8(&String::from_utf8_lossy(bytes), OUTPUT_LIMIT)
}

/// Runs `task` to its end; `Ok(stdout)` on exit 0.
pub async fn run(task: &ShellTask, timeout: Duration) -> Result<String, ShellError> {
    let child = Command::new(task.shell)
        .arg("-c")
        .arg(&task.script)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(timeout, child)
        .await
        .map_err(|_| ShellError::Timeout(timeout))?
        .map_err(|err| ShellError::Spawn(task.shell, err))?;
    let stdout = text(&output.stdout);
    if output.status.success() {
        Ok(stdout)
    } else {
        let stderr = text(&output.stderr);
        Err(ShellError::Failed { status: output.status.to_string(), output: format!("{stderr}{stdout}") })
    }
}

/// Background commands running now, keyed by canary and command.
#[derive(Debug, Default)]
pub struct Background {
    running: Arc<Mutex<HashSet<(String, String)>>>,
}

impl Background {
    /// Starts `task` in the background unless the same command runs for `canary`; returns
    /// whether it started. Its exit status never fails the webhook (as in Flagger).
    pub fn start(&self, canary: &str, task: ShellTask, timeout: Duration) -> bool {
        let key = (canary.to_string(), task.script.clone());
        let inserted = self.running.lock().map(|mut running| running.insert(key.clone())).unwrap_or(false);
        if !inserted {
            return false;
        }
        let running = self.running.clone();
        tokio::spawn(async move {
            match run(&task, timeout).await {
                Ok(output) if task.log_output => tracing::info!(canary = %key.0, %output, "command finished"),
                Ok(_) => tracing::info!(canary = %key.0, "command finished"),
                Err(err) => tracing::warn!(canary = %key.0, error = %err, "command failed"),
            }
            if let Ok(mut running) = running.lock() {
                running.remove(&key);
            }
        });
        true
    }
}
