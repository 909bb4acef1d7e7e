//! The `istio` router: a VirtualService `<svc>` and DestinationRules `<svc>-primary` /
//! `<svc>-canary` (`networking.istio.io/v1beta1`, the version Flagger writes).
//!
//! VirtualService:
//! - `hosts`: `<svc>` then `service.hosts`; `gateways`: `service.gateways`; both left out with
//!   `service.delegation` (a delegate VirtualService);
//! - one http route with `service.match`, `rewrite` (uri, authority), `retries`, `timeout`,
//!   `headers`, `corsPolicy`, and weighted destinations `<svc>-primary` / `<svc>-canary` on
//!   `service.port`; while mirroring, `mirror: <svc>-canary` and `mirrorPercentage` from
//!   `analysis.mirrorWeight`;
//! - for A/B testing a route in front whose `match` is each `analysis.match` combined with each
//!   `service.match` carries the split; the default route stays on the primary.
//!
//! DestinationRules: `host: <svc>-primary|canary` with `service.trafficPolicy` as given.
//!
//! A VirtualService `<svc>` Serin did not create is adopted (Flagger #1715): in the http routes
//! whose destinations are `<svc>`, `<svc>-primary` or `<svc>-canary`, those destinations become
//! the weighted pair; the user's other routes, matches and policies stay.
//!
//! Session affinity (weighted canaries): while the canary takes weight and the run has a cookie
//! (`RouteContext::affinity_cookie`), an http route in front sends requests whose `Cookie`
//! header holds it to `<svc>-canary`, and the canary destination of the weighted route adds a
//! `Set-Cookie` response header.
//!
//! Not done: the primary cookie and expiring the previous run's cookie; A/B testing and
//! mirroring on an adopted VirtualService are refused.
//!
//! Builtin metrics: `analysis/istio`.

use kube::Client;
use serde_json::{Value, json};
use tracing::warn;

use super::object::{
    ALL_TO_CANARY, Desired, ObjectRouter, RoutingKind, Shape, adopted_metadata, affinity, cookie_regex,
    owned_metadata, percentages, pick_split, unsupported,
};
use super::{RouteContext, RouterError, Routes};
use crate::crd::Provider;

/// VirtualService.
pub const VIRTUAL_SERVICE: RoutingKind = RoutingKind {
    group: "networking.istio.io",
    version: "v1beta1",
    kind: "VirtualService",
    plural: "virtualservices",
};

/// DestinationRule.
pub const DESTINATION_RULE: RoutingKind = RoutingKind {
    group: "networking.istio.io",
    version: "v1beta1",
    kind: "DestinationRule",
    plural: "destinationrules",
};

/// The Istio shape.
#[derive(Clone, Copy, Debug)]
pub struct IstioShape;

/// The Istio router.
pub fn router(client: Client) -> ObjectRouter<IstioShape> {
    ObjectRouter::new(client, IstioShape)
}

fn to_json<T: serde::Serialize>(what: &str, value: &T) -> Result<Value, RouterError> {
    serde_json::to_value(value)
        .map_err(|e| RouterError::Invalid { object: what.into(), reason: e.to_string() })
}

fn destination(host: &str, port: &Value, weight: i32) -> Value {
    json!({"destination": {"host": host, "port": {"number": port}}, "weight": weight})
}

impl IstioShape {
    fn http_route(
        &self,
        ctx: &RouteContext<'_>,
        matches: &[Value],
        routes: Routes,
        mirrored: bool,
    ) -> Result<Value, RouterError> {
        let svc = ctx.spec.service_name();
        let service = &ctx.spec.service;
        let port = json!(service.port);
        let mut route = json!({});
        if !matches.is_empty() {
            route["match"] = json!(matches);
        }
        if let Some(rewrite) = &service.rewrite {
            let mut r = json!({});
            if let Some(uri) = &rewrite.uri {
                r["uri"] = json!(uri);
            }
            if let Some(authority) = &rewrite.authority {
                r["authority"] = json!(authority);
            }
            route["rewrite"] = r;
        }
        if let Some(retries) = &service.retries {
            route["retries"] = to_json("service.retries", retries)?;
        }
        if let Some(timeout) = &service.timeout {
            route["timeout"] = json!(timeout);
        }
        if let Some(headers) = &service.headers {
            route["headers"] = to_json("service.headers", headers)?;
        }
        if let Some(cors) = &service.cors_policy {
            route["corsPolicy"] = to_json("service.corsPolicy", cors)?;
        }
        route["route"] = json!([
            destination(&format!("{svc}-primary"), &port, routes.primary),
            destination(&format!("{svc}-canary"), &port, routes.canary),
        ]);
        if mirrored {
            route["mirror"] = json!({"host": format!("{svc}-canary"), "port": {"number": port}});
            if let Some(w) = ctx.spec.analysis.mirror_weight {
                route["mirrorPercentage"] = json!({"value": f64::from(w)});
            }
        }
        Ok(route)
    }

    /// The VirtualService body for `routes`.
    pub fn virtual_service(&self, ctx: &RouteContext<'_>, routes: Routes) -> Result<Value, RouterError> {
        let spec = ctx.spec;
        let svc = spec.service_name();
        if spec.analysis.session_affinity.is_some() && ctx.affinity_cookie.is_none() {
            warn!(canary = ctx.name, "session affinity is configured but the run has no cookie yet");
        }
        let service_matches: Vec<Value> = spec
            .service
            .match_
            .iter()
            .flatten()
            .map(|m| to_json("service.match", m))
            .collect::<Result<_, _>>()?;
        let ab: Vec<Value> = spec
            .analysis
            .match_
            .iter()
            .flatten()
            .map(|m| to_json("analysis.match", m))
            .collect::<Result<_, _>>()?;
        let mut http = Vec::new();
        if ab.is_empty() {
            let mut weighted = self.http_route(ctx, &service_matches, routes, routes.mirrored)?;
            if let Some((cookie, set_cookie)) = affinity(ctx).filter(|_| routes.canary > 0) {
                let header = json!({"Cookie": {"regex": cookie_regex(&cookie)}});
                let base = if service_matches.is_empty() { vec![json!({})] } else { service_matches.clone() };
                let matches: Vec<Value> = base
                    .into_iter()
                    .map(|mut m| {
                        match m["headers"].as_object_mut() {
                            Some(h) => {
                                h.insert("Cookie".into(), header["Cookie"].clone());
                            }
                            None => m["headers"] = header.clone(),
                        }
                        m
                    })
                    .collect();
                let mut pinned = self.http_route(ctx, &matches, ALL_TO_CANARY, false)?;
                let port = json!(ctx.spec.service.port);
                pinned["route"] = json!([destination(&format!("{svc}-canary"), &port, 100)]);
                http.push(pinned);
                if let Some(canary) = weighted["route"].get_mut(1) {
                    canary["headers"] = json!({"response": {"add": {"Set-Cookie": set_cookie}}});
                }
            }
            http.push(weighted);
        } else {
            let mut merged = Vec::new();
            for a in &ab {
                if service_matches.is_empty() {
                    merged.push(a.clone());
                }
                for s in &service_matches {
                    let mut m = s.clone();
                    if let (Some(m), Some(a)) = (m.as_object_mut(), a.as_object()) {
                        m.extend(a.clone());
                    }
                    merged.push(m);
                }
            }
            http.push(self.http_route(ctx, &merged, routes, routes.mirrored)?);
            http.push(self.http_route(ctx, &service_matches, Routes::STABLE, false)?);
        }
        let mut vs = json!({"http": http});
        if spec.service.delegation != Some(true) {
            let mut hosts = vec![svc.to_string()];
            for h in spec.service.hosts.iter().flatten() {
                if !hosts.contains(h) {
                    hosts.push(h.clone());
                }
            }
            vs["hosts"] = json!(hosts);
            if let Some(gateways) = spec.service.gateways.as_ref().filter(|g| !g.is_empty()) {
                vs["gateways"] = json!(gateways);
            }
        }
        Ok(json!({
            "apiVersion": VIRTUAL_SERVICE.api_version(),
            "kind": VIRTUAL_SERVICE.kind,
            "metadata": owned_metadata(ctx, svc),
            "spec": vs,
        }))
    }

    /// The DestinationRule `<host>` carrying `service.trafficPolicy`.
    pub fn destination_rule(&self, ctx: &RouteContext<'_>, host: &str) -> Value {
        let mut spec = json!({"host": host});
        if let Some(policy) = &ctx.spec.service.traffic_policy {
            spec["trafficPolicy"] = policy.clone();
        }
        json!({
            "apiVersion": DESTINATION_RULE.api_version(),
            "kind": DESTINATION_RULE.kind,
            "metadata": owned_metadata(ctx, host),
            "spec": spec,
        })
    }
}

/// Whether an Istio destination host names `name` (short name or `<name>.<ns>...`).
fn host_is(host: &Value, name: &str, namespace: &str) -> bool {
    host.as_str().is_some_and(|h| h == name || h.starts_with(&format!("{name}.{namespace}")))
}

impl Shape for IstioShape {
    fn provider(&self) -> Provider {
        Provider::Istio
    }

    fn kind(&self) -> RoutingKind {
        VIRTUAL_SERVICE
    }

    fn build(&self, ctx: &RouteContext<'_>, routes: Routes) -> Result<Vec<Desired>, RouterError> {
        let svc = ctx.spec.service_name();
        Ok(vec![
            Desired { kind: VIRTUAL_SERVICE, body: self.virtual_service(ctx, routes)? },
            Desired { kind: DESTINATION_RULE, body: self.destination_rule(ctx, &format!("{svc}-primary")) },
            Desired { kind: DESTINATION_RULE, body: self.destination_rule(ctx, &format!("{svc}-canary")) },
        ])
    }

    fn read(&self, ctx: &RouteContext<'_>, object: &Value) -> Result<Routes, RouterError> {
        let svc = ctx.spec.service_name();
        let (p, c) = (format!("{svc}-primary"), format!("{svc}-canary"));
        let what = format!("VirtualService {}/{svc}", ctx.namespace);
        let mut splits = Vec::new();
        for http in object["spec"]["http"].as_array().into_iter().flatten() {
            let dests = http["route"].as_array().map(Vec::as_slice).unwrap_or_default();
            let matches = http["match"].as_array().map(Vec::as_slice).unwrap_or_default();
            let pinned = !matches.is_empty()
                && matches.iter().all(|m| m["headers"].get("Cookie").is_some())
                && !dests.iter().any(|d| host_is(&d["destination"]["host"], &p, ctx.namespace));
            if pinned {
                continue;
            }
            let single = dests.len() == 1;
            let weight = |name: &str| {
                dests
                    .iter()
                    .filter(|d| host_is(&d["destination"]["host"], name, ctx.namespace))
                    .map(|d| d["weight"].as_i64().unwrap_or(if single { 100 } else { 0 }))
                    .reduce(|a, b| a + b)
            };
            let (wp, wc) = (weight(&p), weight(&c));
            if wp.is_none() && wc.is_none() {
                continue;
            }
            let mirrored = host_is(&http["mirror"]["host"], &c, ctx.namespace);
            splits.push(percentages(wp.unwrap_or(0), wc.unwrap_or(0), mirrored).ok_or_else(|| {
                RouterError::Invalid {
                    object: what.clone(),
                    reason: "both destinations have weight 0".into(),
                }
            })?);
        }
        if let Some(split) = pick_split(ctx.spec, splits) {
            return Ok(split);
        }
        Err(RouterError::NotFound(format!("{what} http route to {p} or {c}")))
    }

    fn adopt(
        &self,
        ctx: &RouteContext<'_>,
        existing: &Value,
        routes: Routes,
    ) -> Option<Result<Value, RouterError>> {
        if ctx.spec.analysis.match_.as_ref().is_some_and(|m| !m.is_empty()) {
            return Some(Err(unsupported(
                Provider::Istio,
                routes,
                "A/B testing on a VirtualService Serin did not create",
            )));
        }
        if routes.mirrored {
            return Some(Err(unsupported(
                Provider::Istio,
                routes,
                "mirroring on a VirtualService Serin did not create",
            )));
        }
        let svc = ctx.spec.service_name();
        let (p, c) = (format!("{svc}-primary"), format!("{svc}-canary"));
        let ours = |d: &Value| {
            [svc, p.as_str(), c.as_str()].iter().any(|n| host_is(&d["destination"]["host"], n, ctx.namespace))
        };
        let mut managed = 0;
        let mut http = Vec::new();
        for route in existing["spec"]["http"].as_array().into_iter().flatten() {
            let dests = route["route"].as_array().cloned().unwrap_or_default();
            let Some(first) = dests.iter().find(|d| ours(d)) else {
                http.push(route.clone());
                continue;
            };
            managed += 1;
            let port = first["destination"]
                .get("port")
                .map(|p| p["number"].clone())
                .unwrap_or_else(|| json!(ctx.spec.service.port));
            let mut new: Vec<Value> = dests.iter().filter(|d| !ours(d)).cloned().collect();
            new.push(destination(&p, &port, routes.primary));
            new.push(destination(&c, &port, routes.canary));
            let mut route = route.clone();
            route["route"] = Value::Array(new);
            http.push(route);
        }
        if managed == 0 {
            return Some(Err(RouterError::Invalid {
                object: format!("VirtualService {}/{svc}", ctx.namespace),
                reason: format!("no http route goes to {svc}, {p} or {c}; nothing to split"),
            }));
        }
        Some(Ok(json!({
            "apiVersion": VIRTUAL_SERVICE.api_version(),
            "kind": VIRTUAL_SERVICE.kind,
            "metadata": adopted_metadata(ctx, svc),
            "spec": {"http": http},
        })))
    }
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;
    use serde_json::json;

    use super::*;
    use crate::router::testkit::{WEIGHTS, ab_analysis, ctx, label, owned_meta, spec};

    fn service() -> Value {
        json!({
            "hosts": ["app.example.com"],
            "gateways": ["public/gateway"],
            "retries": {"attempts": 3, "perTryTimeout": "1s", "retryOn": "gateway-error"},
            "timeout": "30s",
            "rewrite": {"uri": "/"},
            "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}},
        })
    }

    fn split(primary: i32, canary: i32) -> Routes {
        Routes { primary, canary, mirrored: false }
    }

    #[test]
    fn golden_virtual_service_and_destination_rules() {
        let spec = spec("istio", service(), json!({}));
        let label = label();
        let objects = IstioShape.build(&ctx(&spec, &label), split(90, 10)).expect("objects");
        assert_eq!(
            objects[0].body,
            json!({
                "apiVersion": "networking.istio.io/v1beta1",
                "kind": "VirtualService",
                "metadata": owned_meta("podinfo"),
                "spec": {
                    "hosts": ["podinfo", "app.example.com"],
                    "gateways": ["public/gateway"],
                    "http": [{
                        "rewrite": {"uri": "/"},
                        "retries": {"attempts": 3, "perTryTimeout": "1s", "retryOn": "gateway-error"},
                        "timeout": "30s",
                        "route": [
                            {"destination": {"host": "podinfo-primary", "port": {"number": 9898}}, "weight": 90},
                            {"destination": {"host": "podinfo-canary", "port": {"number": 9898}}, "weight": 10},
                        ],
                    }],
                },
            })
        );
        assert_eq!(
            objects[1].body,
            json!({
                "apiVersion": "networking.istio.io/v1beta1",
                "kind": "DestinationRule",
                "metadata": owned_meta("podinfo-primary"),
                "spec": {"host": "podinfo-primary", "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}}},
            })
        );
        assert_eq!(objects[2].name(), "podinfo-canary");
        assert_eq!(objects[2].body["spec"]["host"], "podinfo-canary");
    }

    #[test]
    fn weights_round_trip() {
        let spec = spec("istio", service(), json!({}));
        let label = label();
        let ctx = ctx(&spec, &label);
        for canary in WEIGHTS {
            let routes = split(100 - canary, canary);
            let vs = IstioShape.virtual_service(&ctx, routes).expect("vs");
            assert_eq!(vs["spec"]["http"][0]["route"][1]["weight"], json!(canary));
            assert_eq!(IstioShape.read(&ctx, &vs).expect("read"), routes);
        }
    }

    #[test]
    fn golden_ab_and_mirror() {
        let spec = spec("istio", json!({}), ab_analysis());
        let label = label();
        let ctx = ctx(&spec, &label);
        let vs = IstioShape.virtual_service(&ctx, split(0, 100)).expect("vs");
        assert_eq!(
            vs["spec"]["http"],
            json!([
                {"match": [{"headers": {"x-canary": {"exact": "insider"}}}], "route": [
                    {"destination": {"host": "podinfo-primary", "port": {"number": 9898}}, "weight": 0},
                    {"destination": {"host": "podinfo-canary", "port": {"number": 9898}}, "weight": 100},
                ]},
                {"route": [
                    {"destination": {"host": "podinfo-primary", "port": {"number": 9898}}, "weight": 100},
                    {"destination": {"host": "podinfo-canary", "port": {"number": 9898}}, "weight": 0},
                ]},
            ])
        );
        assert_eq!(IstioShape.read(&ctx, &vs).expect("read"), split(0, 100));

        let analysis = json!({"mirror": true, "mirrorWeight": 50, "stepWeight": null, "maxWeight": null, "iterations": 5});
        let spec = crate::router::testkit::spec("istio", json!({}), analysis);
        let ctx = crate::router::testkit::ctx(&spec, &label);
        let routes = Routes { primary: 100, canary: 0, mirrored: true };
        let vs = IstioShape.virtual_service(&ctx, routes).expect("vs");
        assert_eq!(
            vs["spec"]["http"][0]["mirror"],
            json!({"host": "podinfo-canary", "port": {"number": 9898}})
        );
        assert_eq!(vs["spec"]["http"][0]["mirrorPercentage"], json!({"value": 50.0}));
        assert_eq!(IstioShape.read(&ctx, &vs).expect("read"), routes);
    }

    #[test]
    fn golden_session_affinity_routes() {
        let spec = spec("istio", json!({}), json!({"sessionAffinity": {"cookieName": "c", "secure": true}}));
        let label = label();
        let ctx = RouteContext { affinity_cookie: Some("c=xyz"), ..ctx(&spec, &label) };
        let vs = IstioShape.virtual_service(&ctx, split(80, 20)).expect("vs");
        assert_eq!(
            vs["spec"]["http"],
            json!([
                {"match": [{"headers": {"Cookie": {"regex": ".*c=xyz.*"}}}],
                 "route": [{"destination": {"host": "podinfo-canary", "port": {"number": 9898}}, "weight": 100}]},
                {"route": [
                    {"destination": {"host": "podinfo-primary", "port": {"number": 9898}}, "weight": 80},
                    {"destination": {"host": "podinfo-canary", "port": {"number": 9898}}, "weight": 20,
                     "headers": {"response": {"add": {"Set-Cookie": "c=xyz; Max-Age=86400; Secure"}}}},
                ]},
            ])
        );
        assert_eq!(IstioShape.read(&ctx, &vs).expect("read"), split(80, 20));
    }

    #[test]
    fn delegation_drops_hosts_and_gateways() {
        let spec = spec("istio", json!({"delegation": true, "hosts": ["a"], "gateways": ["g"]}), json!({}));
        let label = label();
        let vs = IstioShape.virtual_service(&ctx(&spec, &label), Routes::STABLE).expect("vs");
        assert!(vs["spec"].get("hosts").is_none() && vs["spec"].get("gateways").is_none(), "{vs}");
    }

    #[test]
    fn adoption_keeps_user_routes() {
        let spec = spec("istio", json!({}), json!({}));
        let label = label();
        let ctx = ctx(&spec, &label);
        let existing = json!({"spec": {"hosts": ["podinfo"], "http": [
            {"match": [{"uri": {"prefix": "/legacy"}}], "route": [{"destination": {"host": "legacy"}}]},
            {"retries": {"attempts": 2}, "route": [{"destination": {"host": "podinfo.test.svc.cluster.local", "port": {"number": 80}}}]},
        ]}});
        let body = IstioShape.adopt(&ctx, &existing, split(80, 20)).expect("adoptable").expect("body");
        assert!(body["metadata"].get("ownerReferences").is_none());
        let http = &body["spec"]["http"];
        assert_eq!(http[0], existing["spec"]["http"][0]);
        assert_eq!(http[1]["retries"], json!({"attempts": 2}));
        assert_eq!(
            http[1]["route"],
            json!([
                {"destination": {"host": "podinfo-primary", "port": {"number": 80}}, "weight": 80},
                {"destination": {"host": "podinfo-canary", "port": {"number": 80}}, "weight": 20},
            ])
        );
        assert_eq!(IstioShape.read(&ctx, &body).expect("read"), split(80, 20));
    }
}
