//! The `contour` router: an HTTPProxy `<svc>` (`projectcontour.io/v1`).
//! - `virtualhost.fqdn` from `service.hosts` when exactly one host is given (a root proxy);
//!   without hosts the proxy is meant to be included by the user's root HTTPProxy;
//! - a route with the conditions of `service.match` (`prefix` and header conditions; default
//!   prefix `/`), weighted `services` `<svc>-primary` / `<svc>-canary` on `service.port`,
//!   `timeoutPolicy.response` from `service.timeout`, `retryPolicy` from `service.retries`
//!   (`count`, `perTryTimeout`, `retryOn` split on commas), and `requestHeadersPolicy` /
//!   `responseHeadersPolicy` from `service.headers` (set and remove);
//! - for A/B testing, a route in front with the header conditions of `analysis.match` carries
//!   the split; the default route stays on the primary.
//!
//! Unsupported: mirroring; more than one host; matches on anything but uri prefix/exact and
//! headers (exact, regex, prefix and suffix become `regex`).
//!
//! Builtin metrics: `analysis/contour` (Envoy cluster metrics).

use kube::Client;
use serde_json::{Value, json};

use super::gateway_api::exact_or_regex;
use super::object::{
    Desired, ObjectRouter, RoutingKind, Shape, owned_metadata, percentages, pick_split, unsupported,
};
use super::{RouteContext, RouterError, Routes};
use crate::crd::Provider;
use crate::crd::canary::HeaderOperation;
use crate::crd::common::HttpMatchRequest;

/// HTTPProxy.
pub const HTTP_PROXY: RoutingKind =
    RoutingKind { group: "projectcontour.io", version: "v1", kind: "HTTPProxy", plural: "httpproxies" };

/// The HTTPProxy shape.
#[derive(Clone, Copy, Debug)]
pub struct ContourShape;

/// The Contour router.
pub fn router(client: Client) -> ObjectRouter<ContourShape> {
    ObjectRouter::new(client, ContourShape)
}

fn invalid(reason: &str) -> RouterError {
    RouterError::Invalid { object: "match".into(), reason: reason.into() }
}

/// An Istio-style match as Contour route conditions.
pub fn conditions(m: &HttpMatchRequest) -> Result<Vec<Value>, RouterError> {
    if m.scheme.is_some()
        || m.authority.is_some()
        || m.method.is_some()
        || m.query_params.is_some()
        || m.without_headers.is_some()
        || m.port.is_some()
        || m.source_labels.is_some()
        || m.source_namespace.is_some()
        || m.gateways.is_some()
    {
        return Err(invalid("HTTPProxy conditions match only a uri prefix or exact path and headers"));
    }
    let mut out = Vec::new();
    if let Some(uri) = &m.uri {
        if let Some(p) = &uri.prefix {
            out.push(json!({"prefix": p}));
        } else if let Some(p) = &uri.exact {
            out.push(json!({"exact": p}));
        } else {
            return Err(invalid("HTTPProxy path conditions are prefix or exact"));
        }
    }
    for (name, h) in m.headers.iter().flatten() {
        let cond = match exact_or_regex(h) {
            Some(("Exact", v)) => json!({"name": name, "exact": v}),
            Some((_, v)) => json!({"name": name, "regex": v}),
            None => json!({"name": name, "present": true}),
        };
        out.push(json!({"header": cond}));
    }
    Ok(out)
}

fn headers_policy(op: &HeaderOperation) -> Value {
    let mut out = json!({});
    let mut set: Vec<Value> = Vec::new();
    for (k, v) in op.set.iter().flatten().chain(op.add.iter().flatten()) {
        set.push(json!({"name": k, "value": v}));
    }
    if !set.is_empty() {
        out["set"] = json!(set);
    }
    if let Some(remove) = &op.remove {
        out["remove"] = json!(remove);
    }
    out
}

impl ContourShape {
    fn route(&self, ctx: &RouteContext<'_>, conds: Vec<Value>, routes: Routes) -> Value {
        let svc = ctx.spec.service_name();
        let port = ctx.spec.service.port;
        let conds = if conds.is_empty() { vec![json!({"prefix": "/"})] } else { conds };
        let mut route = json!({
            "conditions": conds,
            "services": [
                {"name": format!("{svc}-primary"), "port": port, "weight": routes.primary},
                {"name": format!("{svc}-canary"), "port": port, "weight": routes.canary},
            ],
        });
        let service = &ctx.spec.service;
        if let Some(t) = &service.timeout {
            route["timeoutPolicy"] = json!({"response": t});
        }
        if let Some(r) = &service.retries {
            let mut policy = json!({});
            if let Some(n) = r.attempts {
                policy["count"] = json!(n);
            }
            if let Some(t) = &r.per_try_timeout {
                policy["perTryTimeout"] = json!(t);
            }
            if let Some(on) = &r.retry_on {
                policy["retryOn"] =
                    json!(on.split(',').map(str::trim).filter(|s| !s.is_empty()).collect::<Vec<_>>());
            }
            route["retryPolicy"] = policy;
        }
        if let Some(h) = &service.headers {
            if let Some(req) = &h.request {
                route["requestHeadersPolicy"] = headers_policy(req);
            }
            if let Some(resp) = &h.response {
                route["responseHeadersPolicy"] = headers_policy(resp);
            }
        }
        route
    }

    /// The HTTPProxy body for `routes`.
    pub fn http_proxy(&self, ctx: &RouteContext<'_>, routes: Routes) -> Result<Value, RouterError> {
        if routes.mirrored {
            return Err(unsupported(Provider::Contour, routes, "Serin does not mirror through HTTPProxy"));
        }
        let spec = ctx.spec;
        let hosts = spec.service.hosts.clone().unwrap_or_default();
        if hosts.len() > 1 {
            return Err(unsupported(Provider::Contour, routes, "an HTTPProxy has one virtualhost fqdn"));
        }
        let service_matches = spec.service.match_.clone().unwrap_or_default();
        // One route per service match (Contour conditions are ANDed).
        let base: Vec<Vec<Value>> = if service_matches.is_empty() {
            vec![vec![]]
        } else {
            service_matches.iter().map(conditions).collect::<Result<_, _>>()?
        };
        let mut out = Vec::new();
        let ab = spec.analysis.match_.clone().unwrap_or_default();
        for ab_match in &ab {
            let ab_conds = conditions(ab_match)?;
            for b in &base {
                let mut conds = b.clone();
                conds.extend(ab_conds.iter().cloned());
                out.push(self.route(ctx, conds, routes));
            }
        }
        let default_routes = if ab.is_empty() { routes } else { Routes::STABLE };
        for b in &base {
            out.push(self.route(ctx, b.clone(), default_routes));
        }
        let svc = spec.service_name();
        let mut body = json!({
            "apiVersion": HTTP_PROXY.api_version(),
            "kind": HTTP_PROXY.kind,
            "metadata": owned_metadata(ctx, svc),
            "spec": {"routes": out},
        });
        if let Some(host) = hosts.first() {
            body["spec"]["virtualhost"] = json!({"fqdn": host});
        }
        Ok(body)
    }
}

impl Shape for ContourShape {
    fn provider(&self) -> Provider {
        Provider::Contour
    }

    fn kind(&self) -> RoutingKind {
        HTTP_PROXY
    }

    fn build(&self, ctx: &RouteContext<'_>, routes: Routes) -> Result<Vec<Desired>, RouterError> {
        Ok(vec![Desired { kind: HTTP_PROXY, body: self.http_proxy(ctx, routes)? }])
    }

    fn read(&self, ctx: &RouteContext<'_>, object: &Value) -> Result<Routes, RouterError> {
        let svc = ctx.spec.service_name();
        let (p, c) = (format!("{svc}-primary"), format!("{svc}-canary"));
        let what = format!("HTTPProxy {}/{svc}", ctx.namespace);
        let mut splits = Vec::new();
        for route in object["spec"]["routes"].as_array().into_iter().flatten() {
            let services = route["services"].as_array().map(Vec::as_slice).unwrap_or_default();
            let weight = |name: &str| {
                services
                    .iter()
                    .filter(|s| s["name"] == name)
                    .map(|s| s["weight"].as_i64().unwrap_or(0))
                    .reduce(|a, b| a + b)
            };
            let (wp, wc) = (weight(&p), weight(&c));
            if wp.is_none() && wc.is_none() {
                continue;
            }
            splits.push(percentages(wp.unwrap_or(0), wc.unwrap_or(0), false).ok_or_else(|| {
                RouterError::Invalid { object: what.clone(), reason: "both services have weight 0".into() }
            })?);
        }
        if let Some(split) = pick_split(ctx.spec, splits) {
            return Ok(split);
        }
        Err(RouterError::NotFound(format!("{what} route to {p} or {c}")))
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
            "timeout": "15s",
            "retries": {"attempts": 3, "perTryTimeout": "5s", "retryOn": "5xx, gateway-error"},
        })
    }

    #[test]
    fn golden_http_proxy_and_round_trip() {
        let spec = spec("contour", service(), json!({}));
        let label = label();
        let ctx = ctx(&spec, &label);
        let routes = Routes { primary: 90, canary: 10, mirrored: false };
        assert_eq!(
            ContourShape.http_proxy(&ctx, routes).expect("body"),
            json!({
                "apiVersion": "projectcontour.io/v1",
                "kind": "HTTPProxy",
                "metadata": owned_meta("podinfo"),
                "spec": {
                    "virtualhost": {"fqdn": "app.example.com"},
                    "routes": [{
                        "conditions": [{"prefix": "/"}],
                        "services": [
                            {"name": "podinfo-primary", "port": 9898, "weight": 90},
                            {"name": "podinfo-canary", "port": 9898, "weight": 10},
                        ],
                        "timeoutPolicy": {"response": "15s"},
                        "retryPolicy": {"count": 3, "perTryTimeout": "5s", "retryOn": ["5xx", "gateway-error"]},
                    }],
                },
            })
        );
        for canary in WEIGHTS {
            let routes = Routes { primary: 100 - canary, canary, mirrored: false };
            let body = ContourShape.http_proxy(&ctx, routes).expect("body");
            assert_eq!(ContourShape.read(&ctx, &body).expect("read"), routes);
        }
    }

    #[test]
    fn golden_ab_route_in_front() {
        let spec = spec("contour", json!({}), ab_analysis());
        let label = label();
        let ctx = ctx(&spec, &label);
        let routes = Routes { primary: 0, canary: 100, mirrored: false };
        let body = ContourShape.http_proxy(&ctx, routes).expect("body");
        assert_eq!(
            body["spec"]["routes"],
            json!([
                {"conditions": [{"header": {"name": "x-canary", "exact": "insider"}}], "services": [
                    {"name": "podinfo-primary", "port": 9898, "weight": 0},
                    {"name": "podinfo-canary", "port": 9898, "weight": 100},
                ]},
                {"conditions": [{"prefix": "/"}], "services": [
                    {"name": "podinfo-primary", "port": 9898, "weight": 100},
                    {"name": "podinfo-canary", "port": 9898, "weight": 0},
                ]},
            ])
        );
        assert_eq!(ContourShape.read(&ctx, &body).expect("read"), routes);
        let err =
            ContourShape.http_proxy(&ctx, Routes { mirrored: true, ..Routes::STABLE }).expect_err("mirror");
        assert!(matches!(err, RouterError::Unsupported { .. }));
    }
}
