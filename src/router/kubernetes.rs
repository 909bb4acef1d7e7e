//! The `kubernetes` router: blue/green without a mesh. The apex Service's selector is the
//! route — `<value>-primary` sends everything to the primary, `<value>` to the canary — so
//! weights are all-or-nothing and there is no mirroring.

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Service;
use kube::Client;
use serde::Deserialize;
use serde_json::json;

use super::object::{Objects, RoutingKind};
use super::{RouteContext, RouterError, Routes, TrafficRouter};
use crate::crd::Provider;
use crate::workload::services::{Selects, selector_for};

/// The blue/green switch: every request to the canary.
const ALL_TO_CANARY: Routes = Routes { primary: 0, canary: 100, mirrored: false };

/// The apex Service, read and applied like the other routers' objects (and so cached the same
/// way).
const SERVICE: RoutingKind = RoutingKind { group: "", version: "v1", kind: "Service", plural: "services" };

/// Routes by switching the apex Service selector.
pub struct KubernetesRouter {
    objects: Objects,
}

impl KubernetesRouter {
    /// A router using `client`.
    pub fn new(client: Client) -> Self {
        Self::with_objects(Objects::new(client))
    }

    /// A router reading and writing through `objects` (which may carry a cache).
    pub fn with_objects(objects: Objects) -> Self {
        Self { objects }
    }

    async fn point_apex_at(&self, ctx: &RouteContext<'_>, selects: Selects) -> Result<(), RouterError> {
        let name = ctx.spec.service_name();
        let patch = json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": ctx.namespace},
            "spec": {"selector": selector_for(ctx.selector, selects)},
        });
        self.objects.apply(SERVICE, ctx.namespace, &patch).await.map_err(|e| match e {
            RouterError::Api { source, .. } => RouterError::Api {
                action: format!("pointing Service {}/{name} at the {selects:?} pods", ctx.namespace),
                source,
            },
            other => other,
        })
    }
}

/// Which pods a split means for a selector switch; anything between 0 and 100 is unroutable.
fn selects_for(routes: Routes) -> Result<Selects, RouterError> {
    let unsupported =
        |reason| Err(RouterError::Unsupported { provider: Provider::Kubernetes, routes, reason });
    if routes.mirrored {
        return unsupported("Services cannot mirror traffic");
    }
    match (routes.primary, routes.canary) {
        (100, 0) => Ok(Selects::Primary),
        (0, 100) => Ok(Selects::Canary),
        _ => unsupported("a Service selector sends all traffic to one side (use blue/green iterations)"),
    }
}

#[async_trait]
impl TrafficRouter for KubernetesRouter {
    async fn reconcile(&self, ctx: &RouteContext<'_>) -> Result<(), RouterError> {
        // A fresh apex has no selector (see `workload::services`); give it the primary. An apex
        // that already routes somewhere keeps its split.
        match self.get_routes(ctx).await {
            Ok(_) => Ok(()),
            Err(RouterError::NotFound(_)) => self.point_apex_at(ctx, Selects::Primary).await,
            Err(e) => Err(e),
        }
    }

    async fn set_routes(&self, ctx: &RouteContext<'_>, routes: Routes) -> Result<(), RouterError> {
        self.point_apex_at(ctx, selects_for(routes)?).await
    }

    async fn get_routes(&self, ctx: &RouteContext<'_>) -> Result<Routes, RouterError> {
        let name = ctx.spec.service_name();
        let what = |detail: &str| format!("Service {}/{name}{detail}", ctx.namespace);
        let live = self.objects.get(SERVICE, ctx.namespace, name).await?;
        let live = live.ok_or_else(|| RouterError::NotFound(what("")))?;
        let service = Service::deserialize(&*live)
            .map_err(|e| RouterError::Invalid { object: what(""), reason: e.to_string() })?;
        let value = service
            .spec
            .as_ref()
            .and_then(|s| s.selector.as_ref())
            .and_then(|s| s.get(&ctx.selector.key))
            .cloned()
            .ok_or_else(|| RouterError::NotFound(what(&format!(" selector label {}", ctx.selector.key))))?;
        if value == ctx.selector.primary_value() {
            Ok(Routes::STABLE)
        } else if value == ctx.selector.value {
            Ok(ALL_TO_CANARY)
        } else {
            Err(RouterError::NotFound(format!(
                "{} selector {}={value} (neither primary nor canary)",
                what(""),
                ctx.selector.key
            )))
        }
    }

    async fn finalize(&self, ctx: &RouteContext<'_>) -> Result<(), RouterError> {
        self.point_apex_at(ctx, Selects::Canary).await
    }
}

#[cfg(test)]
mod tests {
    use http::{Method, Request, Response};
    use kube::client::Body;
    use serde_json::{Value, json};
    use tower_test::mock;

    use super::*;
    use crate::crd::CanarySpec;
    use crate::workload::primary::SelectorLabel;

    type Handle = mock::Handle<Request<Body>, Response<Body>>;

    fn spec() -> CanarySpec {
        serde_json::from_value(json!({
            "provider": "kubernetes",
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 80},
            "analysis": {"iterations": 3}
        }))
        .expect("spec")
    }

    fn label() -> SelectorLabel {
        SelectorLabel { key: "app".into(), value: "podinfo".into() }
    }

    fn route_ctx<'a>(spec: &'a CanarySpec, label: &'a SelectorLabel) -> RouteContext<'a> {
        RouteContext {
            namespace: "test",
            name: "podinfo",
            uid: None,
            spec,
            affinity_cookie: None,
            selector: label,
        }
    }

    fn mock_router() -> (KubernetesRouter, Handle) {
        let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
        (KubernetesRouter::new(Client::new(service, "default")), handle)
    }

    fn service_with_selector(selector: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "podinfo", "namespace": "test"},
            "spec": {"selector": selector}})
    }

    async fn respond(
        handle: &mut Handle,
        method: Method,
        path_and_query: &str,
        status: u16,
        body: Value,
    ) -> Value {
        let (request, send) = handle.next_request().await.expect("a request");
        assert_eq!(request.method(), method);
        assert_eq!(request.uri().to_string(), path_and_query);
        let bytes = request.into_body().collect_bytes().await.expect("body");
        let sent =
            if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("json body") };
        let response = Response::builder()
            .status(status)
            .body(Body::from(serde_json::to_vec(&body).expect("json")))
            .expect("response");
        send.send_response(response);
        sent
    }

    const APPLY: &str = "/api/v1/namespaces/test/services/podinfo?&force=true&fieldManager=serin-router";

    #[tokio::test]
    async fn switching_to_the_canary_patches_only_the_apex_selector() {
        let (router, mut handle) = mock_router();
        let spec = spec();
        let label = label();
        let ctx = route_ctx(&spec, &label);
        let server = tokio::spawn(async move {
            let sent = respond(
                &mut handle,
                Method::PATCH,
                APPLY,
                200,
                service_with_selector(json!({"app": "podinfo"})),
            )
            .await;
            assert_eq!(
                sent,
                json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "podinfo", "namespace": "test"}, "spec": {"selector": {"app": "podinfo"}}})
            );
        });
        router.set_routes(&ctx, ALL_TO_CANARY).await.expect("routes set");
        server.await.expect("server saw the patch");
    }

    #[tokio::test]
    async fn partial_weights_and_mirroring_are_refused_without_calling_the_api() {
        let (router, _handle) = mock_router();
        let spec = spec();
        let label = label();
        let ctx = route_ctx(&spec, &label);
        for routes in
            [Routes { primary: 90, canary: 10, mirrored: false }, Routes { mirrored: true, ..Routes::STABLE }]
        {
            let err = router.set_routes(&ctx, routes).await.expect_err("refused");
            assert!(matches!(err, RouterError::Unsupported { .. }), "{err}");
        }
    }

    #[tokio::test]
    async fn reads_the_split_from_the_selector() {
        let cases = [
            (json!({"app": "podinfo-primary"}), Some(Routes::STABLE)),
            (json!({"app": "podinfo"}), Some(ALL_TO_CANARY)),
            (json!({"app": "something-else"}), None),
            (json!({}), None),
        ];
        for (selector, want) in cases {
            let (router, mut handle) = mock_router();
            let spec = spec();
            let label = label();
            let ctx = route_ctx(&spec, &label);
            let reply = service_with_selector(selector.clone());
            let server = tokio::spawn(async move {
                respond(&mut handle, Method::GET, "/api/v1/namespaces/test/services/podinfo", 200, reply)
                    .await;
            });
            let got = router.get_routes(&ctx).await;
            server.await.expect("server");
            match want {
                Some(routes) => assert_eq!(got.expect("routes"), routes, "{selector}"),
                None => assert!(matches!(got, Err(RouterError::NotFound(_))), "{selector}: {got:?}"),
            }
        }
    }

    #[tokio::test]
    async fn reconcile_routes_a_fresh_apex_to_the_primary_and_keeps_an_existing_split() {
        // Fresh apex (no selector): reconcile points it at the primary.
        let (router, mut handle) = mock_router();
        let spec = spec();
        let label = label();
        let ctx = route_ctx(&spec, &label);
        let server = tokio::spawn(async move {
            respond(
                &mut handle,
                Method::GET,
                "/api/v1/namespaces/test/services/podinfo",
                200,
                service_with_selector(json!({})),
            )
            .await;
            let sent = respond(
                &mut handle,
                Method::PATCH,
                APPLY,
                200,
                service_with_selector(json!({"app": "podinfo-primary"})),
            )
            .await;
            assert_eq!(sent["spec"]["selector"], json!({"app": "podinfo-primary"}));
        });
        router.reconcile(&ctx).await.expect("reconciled");
        server.await.expect("server");

        // Apex already on the canary (mid blue/green switch): reconcile only reads.
        let (router, mut handle) = mock_router();
        let server = tokio::spawn(async move {
            respond(
                &mut handle,
                Method::GET,
                "/api/v1/namespaces/test/services/podinfo",
                200,
                service_with_selector(json!({"app": "podinfo"})),
            )
            .await;
            assert!(handle.next_request().await.is_none(), "no write");
        });
        router.reconcile(&ctx).await.expect("reconciled");
        drop(router);
        server.await.expect("server");
    }

    #[tokio::test]
    async fn api_errors_name_the_object() {
        let (router, mut handle) = mock_router();
        let spec = spec();
        let label = label();
        let ctx = route_ctx(&spec, &label);
        let server = tokio::spawn(async move {
            let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "forbidden", "reason": "Forbidden", "code": 403});
            respond(&mut handle, Method::PATCH, APPLY, 403, status).await;
        });
        let err = router.finalize(&ctx).await.expect_err("forbidden");
        server.await.expect("server");
        assert!(err.to_string().starts_with("pointing Service test/podinfo at the Canary pods: "), "{err}");
    }
}
