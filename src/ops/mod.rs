//! Operator commands against a cluster: `serin status` and the one-shot actions
//! (`promote`, `abort`, `retry`, `pause`, `resume`).

pub mod actions;
pub mod status;

use thiserror::Error;

/// Why an operator command failed.
#[derive(Debug, Error)]
pub enum OpsError {
    /// No usable kubeconfig or in-cluster configuration.
    #[error("cannot reach the cluster: {0}")]
    Config(String),
    /// The API server refused or could not be reached.
    #[error("{action}: {source}")]
    Api {
        /// What the command was doing.
        action: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// Writing to the terminal failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A client from the kubeconfig (`KUBECONFIG`, `~/.kube/config`) or the in-cluster config.
pub async fn client() -> Result<kube::Client, OpsError> {
    kube::Client::try_default().await.map_err(|e| OpsError::Config(e.to_string()))
}
