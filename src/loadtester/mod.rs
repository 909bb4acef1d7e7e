//! `serin loadtester`: a drop-in for flagger-loadtester that generates HTTP load natively (no
//! `hey` process, no shell), keeps load outcomes for a follow-up hook to judge, persists manual
//! gates across restarts, and runs shell commands only when explicitly allowed.
//!
//! Modules: [`task`] reads a payload's metadata, [`hey`] translates `hey` command lines,
//! [`load`] generates load, [`runs`] deduplicates loads and keeps their outcomes, [`gates`]
//! holds gate state, [`shell`] runs allowed commands, [`metrics`] and [`server`] expose it all;
//! [`bench`](mod@bench) measures the load generator.

pub mod bench;
pub mod gates;
pub mod hey;
pub mod load;
pub mod metrics;
pub mod runs;
pub mod server;
pub mod shell;
pub mod task;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use regex::Regex;
use thiserror::Error;
use tokio::net::TcpListener;

use crate::loadtester::gates::{GateError, GateStore};
use crate::loadtester::load::Limits;
use crate::loadtester::metrics::LoadtesterMetrics;
use crate::loadtester::runs::Runs;
use crate::loadtester::shell::Background;

/// Settings of a load tester.
#[derive(Clone, Debug)]
pub struct Config {
    /// Run `bash`, non-`hey` `cmd`, `helm` and `kubectl` tasks.
    pub allow_shell: bool,
    /// Only payloads whose namespace matches (anchored at both ends).
    pub namespace_regexp: Option<Regex>,
    /// Where gate state is persisted; `None`: memory only.
    pub state_file: Option<PathBuf>,
    /// Caps of every load.
    pub limits: Limits,
    /// Longest shell command.
    pub exec_timeout: Duration,
    /// Most loads running at once.
    pub max_loads: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            allow_shell: false,
            namespace_regexp: None,
            state_file: None,
            limits: Limits::default(),
            exec_timeout: Duration::from_secs(3600),
            max_loads: 32,
        }
    }
}

/// Why the load tester could not start or serve.
#[derive(Debug, Error)]
pub enum LoadtesterError {
    /// The gate state file could not be read.
    #[error(transparent)]
    Gates(#[from] GateError),
    /// `--namespace-regexp` is not a valid regular expression.
    #[error("--namespace-regexp: {0}")]
    Regex(#[from] regex::Error),
    /// The listen address could not be bound.
    #[error("listening on {0}: {1}")]
    Bind(String, std::io::Error),
    /// Serving failed.
    #[error("serving: {0}")]
    Serve(std::io::Error),
}

/// Compiles a namespace pattern so that it must match the whole namespace.
pub fn namespace_regexp(pattern: &str) -> Result<Regex, LoadtesterError> {
    Ok(Regex::new(&format!("^(?:{pattern})$"))?)
}

/// The load tester's state, shared by all requests.
#[derive(Debug)]
pub struct LoadTester {
    /// Settings.
    pub config: Config,
    /// Manual gates.
    pub gates: GateStore,
    /// Loads and their outcomes.
    pub runs: Runs,
    /// Background shell commands.
    pub background: Background,
    /// Metrics handles.
    pub metrics: LoadtesterMetrics,
    /// The registry `/metrics` encodes.
    pub registry: Registry,
}

impl LoadTester {
    /// Builds the state, reading the gate state file if there is one.
    pub fn new(config: Config) -> Result<Self, LoadtesterError> {
        let gates = GateStore::open(config.state_file.clone())?;
        let mut registry = Registry::default();
        let metrics = LoadtesterMetrics::register(&mut registry);
        let runs = Runs::new(config.max_loads);
        Ok(Self { config, gates, runs, background: Background::default(), metrics, registry })
    }
}

/// Serves `tester` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    tester: Arc<LoadTester>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), LoadtesterError> {
    axum::serve(listener, server::router(tester))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(LoadtesterError::Serve)
}

/// Runs the load tester on `listen` until SIGINT or SIGTERM.
pub async fn run(listen: &str, config: Config) -> Result<(), LoadtesterError> {
    let tester = Arc::new(LoadTester::new(config)?);
    let listener =
        TcpListener::bind(listen).await.map_err(|err| LoadtesterError::Bind(listen.to_string(), err))?;
    let address = listener.local_addr().map(|a| a.to_string()).unwrap_or_else(|_| listen.to_string());
    tracing::info!(%address, allow_shell = tester.config.allow_shell, state_file = ?tester.config.state_file,
        "load tester listening");
    serve(listener, tester, shutdown_signal()).await
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
