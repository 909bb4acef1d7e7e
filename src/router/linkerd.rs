//! The `linkerd` router: Linkerd splits traffic with a Gateway API HTTPRoute `<svc>`
//! (`gateway.networking.k8s.io/v1`, which Linkerd reads since 2.14; the `policy.linkerd.io`
//! HTTPRoute that 2.12 and 2.13 need is not written)
//! attached to the apex Service (`parentRefs: [{group: core, kind: Service, name: <svc>}]`),
//! with weighted backendRefs to `<svc>-primary` and `<svc>-canary`. The object is the one the
//! Gateway API router writes (see [`super::gateway_api`]) minus `hostnames`; A/B matches,
//! mirroring, timeouts and header filters translate the same way. Older meshes use `smi`.
//!
//! Builtin metrics: `analysis/linkerd` (`response_total` / `response_latency_ms` from the
//! Linkerd proxy).

use kube::Client;

use super::gateway_api::{HttpRouteShape, Parents, Version};
use super::object::ObjectRouter;
use crate::crd::Provider;

/// The HTTPRoute shape Linkerd routes with.
pub fn shape() -> HttpRouteShape {
    HttpRouteShape { provider: Provider::Linkerd, version: Version::V1, parents: Parents::ApexService }
}

/// The Linkerd router.
pub fn router(client: Client) -> ObjectRouter<HttpRouteShape> {
    ObjectRouter::new(client, shape())
}
