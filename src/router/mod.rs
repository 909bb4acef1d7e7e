//! Traffic routers: how a canary's traffic split reaches the data plane. One trait, one file per
//! implementation, chosen by the typed `spec.provider`.

pub mod cache;
pub mod contour;
pub mod gateway_api;
pub mod istio;
pub mod kubernetes;
pub mod linkerd;
pub mod live;
pub mod nginx;
pub mod object;
pub mod smi;
#[cfg(test)]
mod testkit;
pub mod traefik;

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
    /// The Canary's UID, when known: objects Serin creates get an owner reference to the Canary.
    pub uid: Option<&'a str>,
    /// The Canary's spec.
    pub spec: &'a CanarySpec,
    /// The session-affinity cookie of the current run (`status.sessionAffinityCookie`, as
    /// `<name>=<value>` or a bare value for `analysis.sessionAffinity.cookieName`); routers that
    /// pin sessions (Istio, Gateway API) use it while the canary takes weight.
    pub affinity_cookie: Option<&'a str>,
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
    /// The routing kind is not served by the cluster (e.g. `provider: istio` without Istio).
    #[error("{kind} is not served by the cluster: is its CRD installed?")]
    MissingKind {
        /// The kind and API version.
        kind: String,
    },
    /// A live object or a spec field cannot be read or translated.
    #[error("{object}: {reason}")]
    Invalid {
        /// The object or field.
        object: String,
        /// What is wrong.
        reason: String,
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

/// The router for `provider`, every read live (tests, one-off tools).
pub fn for_provider(provider: Provider, client: Client) -> Result<Arc<dyn TrafficRouter>, RouterError> {
    for_provider_with(provider, client, None)
}

/// The router for `provider`; with `cache`, the routing objects it reads come from watches
/// (the controller: an idle Canary then costs the API server no request per tick).
pub fn for_provider_with(
    provider: Provider,
    client: Client,
    cache: Option<Arc<cache::RoutingCache>>,
) -> Result<Arc<dyn TrafficRouter>, RouterError> {
    fn cached<S: object::Shape + 'static>(
        router: object::ObjectRouter<S>,
        cache: Option<Arc<cache::RoutingCache>>,
    ) -> Arc<dyn TrafficRouter> {
        match cache {
            Some(cache) => Arc::new(router.with_cache(cache)),
            None => Arc::new(router),
        }
    }
    let objects = match &cache {
        Some(cache) => object::Objects::new(client.clone()).with_cache(cache.clone()),
        None => object::Objects::new(client.clone()),
    };
    match provider {
        Provider::Kubernetes => Ok(Arc::new(kubernetes::KubernetesRouter::with_objects(objects))),
        Provider::GatewayApiV1 => Ok(cached(gateway_api::router(client, gateway_api::Version::V1), cache)),
        Provider::GatewayApiV1Beta1 => {
            Ok(cached(gateway_api::router(client, gateway_api::Version::V1Beta1), cache))
        }
        Provider::Istio => Ok(cached(istio::router(client), cache)),
        Provider::Linkerd => Ok(cached(linkerd::router(client), cache)),
        Provider::SmiV1Alpha1 => Ok(cached(smi::router(client, smi::Version::V1Alpha1), cache)),
        Provider::SmiV1Alpha2 => Ok(cached(smi::router(client, smi::Version::V1Alpha2), cache)),
        Provider::SmiV1Alpha3 => Ok(cached(smi::router(client, smi::Version::V1Alpha3), cache)),
        Provider::Nginx => Ok(Arc::new(nginx::NginxRouter::with_objects(objects))),
        Provider::Traefik => Ok(cached(traefik::router(client), cache)),
        Provider::Contour => Ok(cached(contour::router(client), cache)),
        other => Err(RouterError::NoRouter(other)),
    }
}
