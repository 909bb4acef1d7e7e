//! The `traefik` router: a TraefikService `<svc>` (`traefik.io/v1alpha1`) that the user's
//! IngressRoute points at.
//! - a split is `spec.weighted.services`: `<svc>-primary` and `<svc>-canary` on
//!   `service.port` with their weights (weighted round robin);
//! - mirroring is `spec.mirroring`: every request served by `<svc>-primary`, copies (percent from
//!   `analysis.mirrorWeight`, default 100) to `<svc>-canary`.
//!
//! Unsupported: A/B testing (request matching lives on the IngressRoute, not the
//! TraefikService) and mirroring while the canary also takes weight.
//!
//! Builtin metrics: `analysis/traefik`.

use kube::Client;
use serde_json::{Value, json};

use super::object::{Desired, ObjectRouter, RoutingKind, Shape, owned_metadata, percentages, unsupported};
use super::{RouteContext, RouterError, Routes};
use crate::crd::Provider;

/// TraefikService.
pub const TRAEFIK_SERVICE: RoutingKind = RoutingKind {
    group: "traefik.io",
    version: "v1alpha1",
    kind: "TraefikService",
    plural: "traefikservices",
};

/// The TraefikService shape.
#[derive(Clone, Copy, Debug)]
pub struct TraefikShape;

/// The Traefik router.
pub fn router(client: Client) -> ObjectRouter<TraefikShape> {
    ObjectRouter::new(client, TraefikShape)
}

impl TraefikShape {
    /// The TraefikService body for `routes`.
    pub fn traefik_service(&self, ctx: &RouteContext<'_>, routes: Routes) -> Result<Value, RouterError> {
        if ctx.spec.analysis.match_.as_ref().is_some_and(|m| !m.is_empty()) {
            return Err(unsupported(
                Provider::Traefik,
                routes,
                "A/B matches belong on the IngressRoute; a TraefikService only weighs or mirrors",
            ));
        }
        let svc = ctx.spec.service_name();
        let port = ctx.spec.service.port;
        let (primary, canary) = (format!("{svc}-primary"), format!("{svc}-canary"));
        let spec = if routes.mirrored {
            if routes.canary != 0 {
                return Err(unsupported(
                    Provider::Traefik,
                    routes,
                    "a mirroring TraefikService serves every request from the primary",
                ));
            }
            let percent = ctx.spec.analysis.mirror_weight.unwrap_or(100);
            json!({"mirroring": {"name": primary, "port": port,
                "mirrors": [{"name": canary, "port": port, "percent": percent}]}})
        } else {
            json!({"weighted": {"services": [
                {"name": primary, "port": port, "weight": routes.primary},
                {"name": canary, "port": port, "weight": routes.canary},
            ]}})
        };
        Ok(json!({
            "apiVersion": TRAEFIK_SERVICE.api_version(),
            "kind": TRAEFIK_SERVICE.kind,
            "metadata": owned_metadata(ctx, svc),
            "spec": spec,
        }))
    }
}

impl Shape for TraefikShape {
    fn provider(&self) -> Provider {
        Provider::Traefik
    }

    fn kind(&self) -> RoutingKind {
        TRAEFIK_SERVICE
    }

    fn build(&self, ctx: &RouteContext<'_>, routes: Routes) -> Result<Vec<Desired>, RouterError> {
        Ok(vec![Desired { kind: TRAEFIK_SERVICE, body: self.traefik_service(ctx, routes)? }])
    }

    fn read(&self, ctx: &RouteContext<'_>, object: &Value) -> Result<Routes, RouterError> {
        let svc = ctx.spec.service_name();
        let (p, c) = (format!("{svc}-primary"), format!("{svc}-canary"));
        let what = format!("TraefikService {}/{svc}", ctx.namespace);
        let spec = &object["spec"];
        if spec["mirroring"]["name"] == p.as_str() {
            let mirrored = spec["mirroring"]["mirrors"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|m| m["name"] == c.as_str());
            return Ok(Routes { mirrored, ..Routes::STABLE });
        }
        let services = spec["weighted"]["services"].as_array().map(Vec::as_slice).unwrap_or_default();
        let weight = |name: &str| {
            services
                .iter()
                .filter(|s| s["name"] == name)
                .map(|s| s["weight"].as_i64().unwrap_or(1))
                .reduce(|a, b| a + b)
        };
        let (wp, wc) = (weight(&p), weight(&c));
        if wp.is_none() && wc.is_none() {
            return Err(RouterError::NotFound(format!("{what} service {p} or {c}")));
        }
        percentages(wp.unwrap_or(0), wc.unwrap_or(0), false).ok_or_else(|| RouterError::Invalid {
            object: what,
            reason: "both services have weight 0".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;
    use serde_json::json;

    use super::*;
    use crate::router::testkit::{WEIGHTS, ab_analysis, ctx, label, owned_meta, spec};

    #[test]
    fn golden_weighted_and_round_trip() {
        let spec = spec("traefik", json!({}), json!({}));
        let label = label();
        let ctx = ctx(&spec, &label);
        let body = TraefikShape.traffic_service_for_test(&ctx, 90, 10);
        assert_eq!(
            body,
            json!({
                "apiVersion": "traefik.io/v1alpha1",
                "kind": "TraefikService",
                "metadata": owned_meta("podinfo"),
                "spec": {"weighted": {"services": [
                    {"name": "podinfo-primary", "port": 9898, "weight": 90},
                    {"name": "podinfo-canary", "port": 9898, "weight": 10},
                ]}},
            })
        );
        for canary in WEIGHTS {
            let routes = Routes { primary: 100 - canary, canary, mirrored: false };
            let body = TraefikShape.traefik_service(&ctx, routes).expect("body");
            assert_eq!(TraefikShape.read(&ctx, &body).expect("read"), routes);
        }
    }

    #[test]
    fn golden_mirroring() {
        let analysis = json!({"mirror": true, "mirrorWeight": 30, "stepWeight": null, "maxWeight": null, "iterations": 5});
        let spec = spec("traefik", json!({}), analysis);
        let label = label();
        let ctx = ctx(&spec, &label);
        let routes = Routes { primary: 100, canary: 0, mirrored: true };
        let body = TraefikShape.traefik_service(&ctx, routes).expect("body");
        assert_eq!(
            body["spec"],
            json!({"mirroring": {"name": "podinfo-primary", "port": 9898,
                "mirrors": [{"name": "podinfo-canary", "port": 9898, "percent": 30}]}})
        );
        assert_eq!(TraefikShape.read(&ctx, &body).expect("read"), routes);
        let err = TraefikShape
            .traefik_service(&ctx, Routes { primary: 90, canary: 10, mirrored: true })
            .expect_err("weighted mirror");
        assert!(matches!(err, RouterError::Unsupported { .. }));
    }

    #[test]
    fn ab_is_unsupported() {
        let spec = spec("traefik", json!({}), ab_analysis());
        let label = label();
        let err = TraefikShape.traefik_service(&ctx(&spec, &label), Routes::STABLE).expect_err("a/b");
        assert!(err.to_string().contains("IngressRoute"), "{err}");
    }

    impl TraefikShape {
        fn traffic_service_for_test(&self, ctx: &RouteContext<'_>, primary: i32, canary: i32) -> Value {
            self.traefik_service(ctx, Routes { primary, canary, mirrored: false }).expect("body")
        }
    }
}
