//! Traffic routers: how a canary's traffic split reaches the data plane. One trait, one file per
//! implementation, chosen by the typed `spec.provider`.

pub mod kubernetes;

use std::sync::Arc;

use async_trait::async_trait;
use kube::Client;
use thiserror::Error;

use crate::crd::{CanarySpec, Provider};
pub use crate::rollout::Routes;
use crate::workload::primary::SelectorLabel;

/// Field manager of the fields routers own (server-side apply), distinct from the one that
/// applies workloads so the two never undo each other.
pub const ROUTER_FIELD_MANAGER: &str = "serin-router";

/// What a router needs to know about the canary it routes for.
#[derive(Clone, Copy, Debug)]
pub struct RouteContext<'a> {
    /// The Canary's namespace.
    pub namespace: &'a str,
    /// The Canary's name.
    pub name: &'a str,
    /// The Canary's spec.
    pub spec: &'a CanarySpec,
    /// The label that tells primary pods (`<value>-primary`) from canary pods (`<value>`).
    pub selector: &'a SelectorLabel,
}

/// Why routing failed.
#[derive(Debug, Error)]
pub enum RouterError {
    /// The API server refused or could not be reached.
    #[error("{action}: {source}")]
    Api {
        /// What the router was doing.
        action: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// The routing object does not exist (yet).
    #[error("{0} not found")]
    NotFound(String),
    /// The router cannot express this split.
    #[error("provider {provider} cannot route {routes:?}: {reason}")]
    Unsupported {
        /// The provider.
        provider: Provider,
        /// The split that was asked for.
        routes: Routes,
        /// Why not.
        reason: &'static str,
    },
    /// No router exists for this provider.
    #[error("provider {0} has no router in Serin")]
    NoRouter(Provider),
}

/// Moves traffic between primary and canary.
#[async_trait]
pub trait TrafficRouter: Send + Sync {
    /// Creates or updates the routing objects, leaving the current split as it is.
    async fn reconcile(&self, ctx: &RouteContext<'_>) -> Result<(), RouterError>;
    /// Sets the traffic split.
    async fn set_routes(&self, ctx: &RouteContext<'_>, routes: Routes) -> Result<(), RouterError>;
    /// Reads the traffic split currently in force.
    async fn get_routes(&self, ctx: &RouteContext<'_>) -> Result<Routes, RouterError>;
    /// Undoes Serin's routing on Canary deletion: traffic goes to the target's own pods.
    async fn finalize(&self, ctx: &RouteContext<'_>) -> Result<(), RouterError>;
}

/// The router for `provider`.
pub fn for_provider(provider: Provider, client: Client) -> Result<Arc<dyn TrafficRouter>, RouterError> {
    match provider {
        Provider::Kubernetes => Ok(Arc::new(kubernetes::KubernetesRouter::new(client))),
        other => Err(RouterError::NoRouter(other)),
    }
}
