//! The `gatewayapi:v1` / `gatewayapi:v1beta1` router: an HTTPRoute `<svc>` whose rules send
//! weighted `backendRefs` to `<svc>-primary` and `<svc>-canary`.
//!
//! What Serin writes on an HTTPRoute it creates:
//! - `parentRefs` from `service.gatewayRefs`, `hostnames` from `service.hosts`;
//! - one rule with `service.match` (translated to HTTPRoute matches), `timeouts` (`request` from
//!   `service.timeout`, `backendRequest` from `service.backendTimeout`), header modifier filters
//!   from `service.headers`, a `URLRewrite` filter from `service.rewrite`, `RequestMirror`
//!   filters from `service.mirror`, and the weighted
//!   backendRefs on `service.port`;
//! - for A/B testing (`analysis.match`) a rule in front matching those requests (combined with
//!   `service.match`) carries the split, and the default rule stays on the primary;
//! - while mirroring, a `RequestMirror` filter to `<svc>-canary` (with `percent` from
//!   `analysis.mirrorWeight`) on the rule carrying the split.
//!
//! An HTTPRoute `<svc>` that already exists and was not created by Serin is adopted (Flagger
//! #1857): Serin replaces, in the rules that route to `<svc>`, `<svc>-primary` or `<svc>-canary`,
//! those backendRefs with the weighted pair and keeps every other rule, match and filter.
//!
//! Builtin metrics: `analysis/gatewayapi-envoy` or `analysis/gatewayapi-istio`, depending on the
//! implementation serving the Gateway (`crate::analysis::builtin::provider_for`).
//!
//! Session affinity (`analysis.sessionAffinity`, weighted canaries): while the canary takes
//! weight and the run has a cookie (`RouteContext::affinity_cookie`), a rule in front sends
//! requests whose `Cookie` header holds it to `<svc>-canary`, and the canary backendRef of the
//! weighted rule hands it out with a `Set-Cookie` response header.
//!
//! Not done: the primary cookie (`primaryCookieName`) and expiring the previous run's cookie;
//! A/B testing and mirroring on an adopted HTTPRoute are refused (`Unsupported`).

use kube::Client;
use serde_json::{Value, json};
use tracing::warn;

use super::object::{
    ALL_TO_CANARY, Desired, ObjectRouter, RoutingKind, Shape, adopted_metadata, affinity, cookie_regex,
    owned_metadata, percentages, pick_split, unsupported,
};
use super::{RouteContext, RouterError, Routes};
use crate::crd::Provider;
use crate::crd::canary::HeaderOperation;
use crate::crd::common::{HttpMatchRequest, StringMatch};

/// Which served version of `gateway.networking.k8s.io` to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// `gateway.networking.k8s.io/v1`.
    V1,
    /// `gateway.networking.k8s.io/v1beta1`.
    V1Beta1,
}

/// HTTPRoute in `version`.
pub fn http_route_kind(version: Version) -> RoutingKind {
    RoutingKind {
        group: "gateway.networking.k8s.io",
        version: match version {
            Version::V1 => "v1",
            Version::V1Beta1 => "v1beta1",
        },
        kind: "HTTPRoute",
        plural: "httproutes",
    }
}

/// What the HTTPRoute attaches to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parents {
    /// Gateways from `service.gatewayRefs`; hostnames from `service.hosts`.
    Gateways,
    /// The apex Service (`group: core`, `kind: Service`): mesh routing, as Linkerd does it.
    ApexService,
}

/// The HTTPRoute shape, shared by the Gateway API and Linkerd routers.
#[derive(Clone, Copy, Debug)]
pub struct HttpRouteShape {
    /// The provider, for errors.
    pub provider: Provider,
    /// Version written.
    pub version: Version,
    /// Parent references.
    pub parents: Parents,
}

/// The Gateway API router.
pub fn router(client: Client, version: Version) -> ObjectRouter<HttpRouteShape> {
    let provider = match version {
        Version::V1 => Provider::GatewayApiV1,
        Version::V1Beta1 => Provider::GatewayApiV1Beta1,
    };
    ObjectRouter::new(client, HttpRouteShape { provider, version, parents: Parents::Gateways })
}

/// `<svc>-primary` and `<svc>-canary`.
pub fn backend_names(ctx: &RouteContext<'_>) -> (String, String) {
    let svc = ctx.spec.service_name();
    (format!("{svc}-primary"), format!("{svc}-canary"))
}

/// A string match as an exact value or an RE2 regular expression (prefix and suffix become
/// anchored expressions). `None` when no matcher is set.
pub fn exact_or_regex(m: &StringMatch) -> Option<(&'static str, String)> {
    if let Some(v) = &m.exact {
        Some(("Exact", v.clone()))
    } else if let Some(v) = &m.regex {
        Some(("RegularExpression", v.clone()))
    } else if let Some(v) = &m.prefix {
        Some(("RegularExpression", format!("^{}.*", regex::escape(v))))
    } else {
        m.suffix.as_ref().map(|v| ("RegularExpression", format!(".*{}$", regex::escape(v))))
    }
}

fn invalid(what: &str, reason: &str) -> RouterError {
    RouterError::Invalid { object: what.to_string(), reason: reason.to_string() }
}

/// An Istio-style match as an `HTTPRouteMatch`; fields HTTPRoute cannot express are refused.
pub fn route_match(m: &HttpMatchRequest) -> Result<Value, RouterError> {
    let what = "match";
    if m.scheme.is_some()
        || m.authority.is_some()
        || m.without_headers.is_some()
        || m.port.is_some()
        || m.source_labels.is_some()
        || m.source_namespace.is_some()
        || m.gateways.is_some()
        || m.ignore_uri_case == Some(true)
    {
        return Err(invalid(
            what,
            "HTTPRoute matches only uri, method, headers and queryParams \
             (not scheme, authority, withoutHeaders, port, sourceLabels, sourceNamespace, gateways, ignoreUriCase)",
        ));
    }
    let mut out = json!({});
    if let Some(uri) = &m.uri {
        out["path"] = if let Some(v) = &uri.exact {
            json!({"type": "Exact", "value": v})
        } else if let Some(v) = &uri.prefix {
            json!({"type": "PathPrefix", "value": v})
        } else if let Some((t, v)) = exact_or_regex(uri) {
            json!({"type": t, "value": v})
        } else {
            return Err(invalid(what, "empty uri match"));
        };
    }
    if let Some(method) = &m.method {
        out["method"] =
            json!(method.exact.as_ref().ok_or_else(|| invalid(what, "method matches must be exact"))?);
    }
    let pairs = |list: &Option<std::collections::BTreeMap<String, StringMatch>>| -> Result<Option<Value>, RouterError> {
        let Some(list) = list else { return Ok(None) };
        list.iter()
            .map(|(name, m)| {
                let (t, v) = exact_or_regex(m).ok_or_else(|| invalid(what, "empty header or query match"))?;
                Ok(json!({"name": name, "type": t, "value": v}))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|v| Some(Value::Array(v)))
    };
    if let Some(h) = pairs(&m.headers)? {
        out["headers"] = h;
    }
    if let Some(q) = pairs(&m.query_params)? {
        out["queryParams"] = q;
    }
    Ok(out)
}

/// Every combination of a service match with an A/B match (the A/B match's fields win).
fn combined_matches(service: &[Value], ab: &[Value]) -> Vec<Value> {
    if service.is_empty() {
        return ab.to_vec();
    }
    let mut out = Vec::new();
    for s in service {
        for a in ab {
            let mut merged = s.clone();
            if let (Some(m), Some(a)) = (merged.as_object_mut(), a.as_object()) {
                for (k, v) in a {
                    m.insert(k.clone(), v.clone());
                }
            }
            out.push(merged);
        }
    }
    out
}

fn header_modifier(op: &HeaderOperation) -> Value {
    let pairs = |m: &Option<std::collections::BTreeMap<String, String>>| {
        m.as_ref().map(|m| m.iter().map(|(k, v)| json!({"name": k, "value": v})).collect::<Vec<_>>())
    };
    let mut out = json!({});
    if let Some(set) = pairs(&op.set) {
        out["set"] = json!(set);
    }
    if let Some(add) = pairs(&op.add) {
        out["add"] = json!(add);
    }
    if let Some(remove) = &op.remove {
        out["remove"] = json!(remove);
    }
    out
}

/// Filters every generated rule carries: header modifiers, the URL rewrite (`service.rewrite`;
/// `uri` replaces the matched prefix unless `type: ReplaceFullPath`) and the user's mirrors.
fn common_filters(ctx: &RouteContext<'_>) -> Result<Vec<Value>, RouterError> {
    let mut filters = Vec::new();
    if let Some(headers) = &ctx.spec.service.headers {
        if let Some(request) = &headers.request {
            filters.push(
                json!({"type": "RequestHeaderModifier", "requestHeaderModifier": header_modifier(request)}),
            );
        }
        if let Some(response) = &headers.response {
            filters
                .push(json!({"type": "ResponseHeaderModifier", "responseHeaderModifier": header_modifier(response)}));
        }
    }
    if let Some(rewrite) = &ctx.spec.service.rewrite {
        let mut url = json!({});
        if let Some(host) = &rewrite.authority {
            url["hostname"] = json!(host);
        }
        if let Some(uri) = &rewrite.uri {
            url["path"] = match rewrite.type_.as_deref() {
                Some("ReplaceFullPath") => json!({"type": "ReplaceFullPath", "replaceFullPath": uri}),
                _ => json!({"type": "ReplacePrefixMatch", "replacePrefixMatch": uri}),
            };
        }
        filters.push(json!({"type": "URLRewrite", "urlRewrite": url}));
    }
    for mirror in ctx.spec.service.mirror.iter().flatten() {
        let mirror = serde_json::to_value(mirror).map_err(|e| invalid("service.mirror", &e.to_string()))?;
        filters.push(json!({"type": "RequestMirror", "requestMirror": mirror}));
    }
    Ok(filters)
}

/// The filter that mirrors to the canary.
fn canary_mirror(ctx: &RouteContext<'_>) -> Value {
    let (_, canary) = backend_names(ctx);
    let mut mirror = json!({"backendRef": {"name": canary, "port": ctx.spec.service.port}});
    if let Some(percent) = ctx.spec.analysis.mirror_weight {
        mirror["percent"] = json!(percent);
    }
    json!({"type": "RequestMirror", "requestMirror": mirror})
}

/// The weighted pair of backendRefs.
pub fn weighted_backends(ctx: &RouteContext<'_>, port: &Value, primary: i32, canary: i32) -> Value {
    let (p, c) = backend_names(ctx);
    json!([
        {"name": p, "port": port, "weight": primary},
        {"name": c, "port": port, "weight": canary},
    ])
}

impl HttpRouteShape {
    fn rule(
        &self,
        ctx: &RouteContext<'_>,
        matches: &[Value],
        routes: Routes,
        mirrored: bool,
    ) -> Result<Value, RouterError> {
        let mut rule = json!({});
        if !matches.is_empty() {
            rule["matches"] = json!(matches);
        }
        let mut filters = common_filters(ctx)?;
        if mirrored {
            filters.push(canary_mirror(ctx));
        }
        if !filters.is_empty() {
            rule["filters"] = json!(filters);
        }
        rule["backendRefs"] =
            weighted_backends(ctx, &json!(ctx.spec.service.port), routes.primary, routes.canary);
        let mut timeouts = json!({});
        if let Some(t) = &ctx.spec.service.timeout {
            timeouts["request"] = json!(t);
        }
        if let Some(t) = &ctx.spec.service.backend_timeout {
            timeouts["backendRequest"] = json!(t);
        }
        if timeouts.as_object().is_some_and(|t| !t.is_empty()) {
            rule["timeouts"] = timeouts;
        }
        Ok(rule)
    }

    /// The rule in front that keeps users holding the run's cookie on the canary.
    fn affinity_rule(
        &self,
        ctx: &RouteContext<'_>,
        service: &[Value],
        cookie: &str,
    ) -> Result<Value, RouterError> {
        let header = json!({"name": "Cookie", "type": "RegularExpression", "value": cookie_regex(cookie)});
        let base = if service.is_empty() { vec![json!({})] } else { service.to_vec() };
        let matches: Vec<Value> = base
            .into_iter()
            .map(|mut m| {
                match m["headers"].as_array_mut() {
                    Some(h) => h.push(header.clone()),
                    None => m["headers"] = json!([header.clone()]),
                }
                m
            })
            .collect();
        let mut rule = self.rule(ctx, &matches, ALL_TO_CANARY, false)?;
        let (_, canary) = backend_names(ctx);
        rule["backendRefs"] = json!([{"name": canary, "port": ctx.spec.service.port}]);
        Ok(rule)
    }

    /// The HTTPRoute body for `routes`.
    pub fn http_route(&self, ctx: &RouteContext<'_>, routes: Routes) -> Result<Value, RouterError> {
        let kind = http_route_kind(self.version);
        let spec = ctx.spec;
        if spec.analysis.session_affinity.is_some() && ctx.affinity_cookie.is_none() {
            warn!(canary = ctx.name, "session affinity is configured but the run has no cookie yet");
        }
        let service_matches =
            spec.service.match_.iter().flatten().map(route_match).collect::<Result<Vec<_>, _>>()?;
        let ab_matches =
            spec.analysis.match_.iter().flatten().map(route_match).collect::<Result<Vec<_>, _>>()?;
        let mut rules = Vec::new();
        if ab_matches.is_empty() {
            let mut weighted = self.rule(ctx, &service_matches, routes, routes.mirrored)?;
            if let Some((cookie, set_cookie)) = affinity(ctx).filter(|_| routes.canary > 0) {
                rules.push(self.affinity_rule(ctx, &service_matches, &cookie)?);
                if let Some(canary) = weighted["backendRefs"].get_mut(1) {
                    canary["filters"] = json!([{"type": "ResponseHeaderModifier",
                        "responseHeaderModifier": {"add": [{"name": "Set-Cookie", "value": set_cookie}]}}]);
                }
            }
            rules.push(weighted);
        } else {
            rules.push(self.rule(
                ctx,
                &combined_matches(&service_matches, &ab_matches),
                routes,
                routes.mirrored,
            )?);
            rules.push(self.rule(ctx, &service_matches, Routes::STABLE, false)?);
        }
        let mut body = json!({
            "apiVersion": kind.api_version(),
            "kind": kind.kind,
            "metadata": owned_metadata(ctx, ctx.spec.service_name()),
            "spec": {},
        });
        match self.parents {
            Parents::Gateways => {
                let parents = spec.service.gateway_refs.clone().unwrap_or_default();
                body["spec"]["parentRefs"] = serde_json::to_value(parents)
                    .map_err(|e| invalid("service.gatewayRefs", &e.to_string()))?;
                if let Some(hosts) = spec.service.hosts.as_ref().filter(|h| !h.is_empty()) {
                    body["spec"]["hostnames"] = json!(hosts);
                }
            }
            Parents::ApexService => {
                body["spec"]["parentRefs"] = json!([{
                    "group": "core",
                    "kind": "Service",
                    "name": spec.service_name(),
                    "port": spec.service.port,
                }]);
            }
        }
        body["spec"]["rules"] = json!(rules);
        Ok(body)
    }
}

/// Whether a backendRef names one of Serin's Services (`names`), as a core Service.
fn names_one_of(backend: &Value, names: &[&str]) -> bool {
    let core = backend["group"].as_str().unwrap_or("").is_empty() || backend["group"] == "core";
    let service = backend["kind"].as_str().unwrap_or("Service") == "Service";
    core && service && backend["name"].as_str().is_some_and(|n| names.contains(&n))
}

/// Whether `rule` is a session-affinity rule: every match needs a `Cookie` header and no
/// backendRef is the primary.
fn is_affinity_rule(rule: &Value, primary: &str) -> bool {
    let matches = rule["matches"].as_array().map(Vec::as_slice).unwrap_or_default();
    let cookie = |m: &Value| {
        m["headers"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|h| h["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case("cookie")))
    };
    let refs = rule["backendRefs"].as_array().map(Vec::as_slice).unwrap_or_default();
    !matches.is_empty() && matches.iter().all(cookie) && !refs.iter().any(|b| names_one_of(b, &[primary]))
}

/// Reads the split from a list of rules: of the rules with a primary or canary backendRef (not
/// counting session-affinity rules), the first for A/B testing, else the last (see
/// [`pick_split`]); weights default to 1, as in Gateway API; mirroring is a `RequestMirror`
/// filter to the canary on that rule.
pub fn read_rules(ctx: &RouteContext<'_>, rules: &Value, object: &str) -> Result<Routes, RouterError> {
    let (p, c) = backend_names(ctx);
    let mut splits = Vec::new();
    for rule in rules.as_array().into_iter().flatten() {
        if is_affinity_rule(rule, &p) {
            continue;
        }
        let refs = rule["backendRefs"].as_array().map(Vec::as_slice).unwrap_or_default();
        let weight = |name: &str| {
            refs.iter()
                .filter(|b| names_one_of(b, &[name]))
                .map(|b| b["weight"].as_i64().unwrap_or(1))
                .reduce(|a, b| a + b)
        };
        let (wp, wc) = (weight(&p), weight(&c));
        if wp.is_none() && wc.is_none() {
            continue;
        }
        let mirrored = rule["filters"].as_array().into_iter().flatten().any(|f| {
            f["type"] == "RequestMirror" && names_one_of(&f["requestMirror"]["backendRef"], &[c.as_str()])
        });
        splits.push(
            percentages(wp.unwrap_or(0), wc.unwrap_or(0), mirrored)
                .ok_or_else(|| invalid(object, "the primary and canary backendRefs both have weight 0"))?,
        );
    }
    pick_split(ctx.spec, splits)
        .ok_or_else(|| RouterError::NotFound(format!("{object} rule routing to {p} or {c}")))
}

/// Rules of an adopted HTTPRoute with Serin's backendRefs set to `routes`: in every rule that
/// routes to `<svc>`, `<svc>-primary` or `<svc>-canary`, those refs become the weighted pair (on
/// the port they had); everything else is kept as it is.
pub fn adopt_rules(
    ctx: &RouteContext<'_>,
    rules: &Value,
    routes: Routes,
    object: &str,
) -> Result<Value, RouterError> {
    let svc = ctx.spec.service_name();
    let (p, c) = backend_names(ctx);
    let ours = [svc, p.as_str(), c.as_str()];
    let mut managed = 0;
    let mut out = Vec::new();
    for rule in rules.as_array().into_iter().flatten() {
        let refs = rule["backendRefs"].as_array().cloned().unwrap_or_default();
        let Some(first) = refs.iter().find(|b| names_one_of(b, &ours)) else {
            out.push(rule.clone());
            continue;
        };
        managed += 1;
        let port = first.get("port").cloned().unwrap_or_else(|| json!(ctx.spec.service.port));
        let mut new_refs: Vec<Value> = refs.iter().filter(|b| !names_one_of(b, &ours)).cloned().collect();
        if let Some(pair) = weighted_backends(ctx, &port, routes.primary, routes.canary).as_array() {
            new_refs.extend(pair.iter().cloned());
        }
        let mut rule = rule.clone();
        rule["backendRefs"] = Value::Array(new_refs);
        out.push(rule);
    }
    if managed == 0 {
        return Err(invalid(object, &format!("no rule routes to {svc}, {p} or {c}; nothing to split")));
    }
    Ok(Value::Array(out))
}

impl Shape for HttpRouteShape {
    fn provider(&self) -> Provider {
        self.provider
    }

    fn kind(&self) -> RoutingKind {
        http_route_kind(self.version)
    }

    fn build(&self, ctx: &RouteContext<'_>, routes: Routes) -> Result<Vec<Desired>, RouterError> {
        Ok(vec![Desired { kind: self.kind(), body: self.http_route(ctx, routes)? }])
    }

    fn read(&self, ctx: &RouteContext<'_>, object: &Value) -> Result<Routes, RouterError> {
        let name = format!("HTTPRoute {}/{}", ctx.namespace, ctx.spec.service_name());
        read_rules(ctx, &object["spec"]["rules"], &name)
    }

    fn adopt(
        &self,
        ctx: &RouteContext<'_>,
        existing: &Value,
        routes: Routes,
    ) -> Option<Result<Value, RouterError>> {
        let name = format!("HTTPRoute {}/{}", ctx.namespace, ctx.spec.service_name());
        if ctx.spec.analysis.match_.as_ref().is_some_and(|m| !m.is_empty()) {
            return Some(Err(unsupported(
                self.provider,
                routes,
                "A/B testing on an HTTPRoute Serin did not create",
            )));
        }
        if routes.mirrored {
            return Some(Err(unsupported(
                self.provider,
                routes,
                "mirroring on an HTTPRoute Serin did not create",
            )));
        }
        let kind = self.kind();
        Some(adopt_rules(ctx, &existing["spec"]["rules"], routes, &name).map(|rules| {
            json!({
                "apiVersion": kind.api_version(),
                "kind": kind.kind,
                "metadata": adopted_metadata(ctx, ctx.spec.service_name()),
                "spec": {"rules": rules},
            })
        }))
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
            "gatewayRefs": [{"name": "public", "namespace": "gateways"}],
            "hosts": ["app.example.com"],
            "timeout": "30s",
            "backendTimeout": "10s",
        })
    }

    fn shape() -> HttpRouteShape {
        HttpRouteShape { provider: Provider::GatewayApiV1, version: Version::V1, parents: Parents::Gateways }
    }

    fn split(primary: i32, canary: i32) -> Routes {
        Routes { primary, canary, mirrored: false }
    }

    #[test]
    fn golden_weighted_route() {
        let spec = spec("gatewayapi:v1", service(), json!({}));
        let label = label();
        let body = shape().http_route(&ctx(&spec, &label), split(90, 10)).expect("body");
        assert_eq!(
            body,
            json!({
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "HTTPRoute",
                "metadata": owned_meta("podinfo"),
                "spec": {
                    "parentRefs": [{"name": "public", "namespace": "gateways"}],
                    "hostnames": ["app.example.com"],
                    "rules": [{
                        "backendRefs": [
                            {"name": "podinfo-primary", "port": 9898, "weight": 90},
                            {"name": "podinfo-canary", "port": 9898, "weight": 10},
                        ],
                        "timeouts": {"request": "30s", "backendRequest": "10s"},
                    }],
                },
            })
        );
    }

    #[test]
    fn weights_round_trip_for_both_versions() {
        let spec = spec("gatewayapi:v1", service(), json!({}));
        let label = label();
        let ctx = ctx(&spec, &label);
        for version in [Version::V1, Version::V1Beta1] {
            let shape = HttpRouteShape { version, ..shape() };
            for canary in WEIGHTS {
                let routes = split(100 - canary, canary);
                let body = shape.http_route(&ctx, routes).expect("body");
                let refs = &body["spec"]["rules"][0]["backendRefs"];
                assert_eq!(refs[0]["weight"], json!(100 - canary));
                assert_eq!(refs[1]["weight"], json!(canary));
                assert_eq!(shape.read(&ctx, &body).expect("read"), routes);
            }
            assert_eq!(
                shape.http_route(&ctx, Routes::STABLE).expect("body")["apiVersion"],
                json!(http_route_kind(version).api_version())
            );
        }
    }

    #[test]
    fn golden_ab_rule_in_front() {
        let service = json!({"gatewayRefs": [{"name": "public"}], "match": [{"uri": {"prefix": "/api"}}]});
        let spec = spec("gatewayapi:v1", service, ab_analysis());
        let label = label();
        let ctx = ctx(&spec, &label);
        let routes = split(0, 100);
        let body = shape().http_route(&ctx, routes).expect("body");
        assert_eq!(
            body["spec"]["rules"],
            json!([
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/api"},
                        "headers": [{"name": "x-canary", "type": "Exact", "value": "insider"}]}],
                    "backendRefs": [
                        {"name": "podinfo-primary", "port": 9898, "weight": 0},
                        {"name": "podinfo-canary", "port": 9898, "weight": 100},
                    ],
                },
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
                    "backendRefs": [
                        {"name": "podinfo-primary", "port": 9898, "weight": 100},
                        {"name": "podinfo-canary", "port": 9898, "weight": 0},
                    ],
                },
            ])
        );
        assert_eq!(shape().read(&ctx, &body).expect("read"), routes);
        // The spec drops `analysis.match` mid-run: the default rule's split is the one in force.
        let plain = crate::router::testkit::spec(
            "gatewayapi:v1",
            json!({"gatewayRefs": [{"name": "public"}]}),
            json!({}),
        );
        assert_eq!(
            shape().read(&crate::router::testkit::ctx(&plain, &label), &body).expect("read"),
            Routes::STABLE
        );
    }

    #[test]
    fn golden_mirror_and_filters() {
        let service = json!({
            "gatewayRefs": [{"name": "public"}],
            "headers": {"request": {"set": {"x-env": "prod"}, "remove": ["x-debug"]}},
            "rewrite": {"uri": "/v2", "authority": "backend.internal"},
        });
        let analysis = json!({"mirror": true, "mirrorWeight": 20, "stepWeight": null, "maxWeight": null, "iterations": 5});
        let spec = spec("gatewayapi:v1", service, analysis);
        let label = label();
        let ctx = ctx(&spec, &label);
        let routes = Routes { primary: 100, canary: 0, mirrored: true };
        let body = shape().http_route(&ctx, routes).expect("body");
        assert_eq!(
            body["spec"]["rules"][0]["filters"],
            json!([
                {"type": "RequestHeaderModifier", "requestHeaderModifier":
                    {"set": [{"name": "x-env", "value": "prod"}], "remove": ["x-debug"]}},
                {"type": "URLRewrite", "urlRewrite": {"hostname": "backend.internal",
                    "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/v2"}}},
                {"type": "RequestMirror", "requestMirror":
                    {"backendRef": {"name": "podinfo-canary", "port": 9898}, "percent": 20}},
            ])
        );
        assert_eq!(shape().read(&ctx, &body).expect("read"), routes);
        let plain = shape().http_route(&ctx, Routes::STABLE).expect("body");
        assert_eq!(shape().read(&ctx, &plain).expect("read"), Routes::STABLE);
    }

    #[test]
    fn matches_translate_or_are_refused() {
        let m: HttpMatchRequest = serde_json::from_value(json!({
            "uri": {"regex": "/v[0-9]+/.*"}, "method": {"exact": "GET"},
            "headers": {"user-agent": {"suffix": "Firefox"}},
            "queryParams": {"beta": {"prefix": "y"}},
        }))
        .expect("match");
        assert_eq!(
            route_match(&m).expect("translated"),
            json!({
                "path": {"type": "RegularExpression", "value": "/v[0-9]+/.*"},
                "method": "GET",
                "headers": [{"name": "user-agent", "type": "RegularExpression", "value": ".*Firefox$"}],
                "queryParams": [{"name": "beta", "type": "RegularExpression", "value": "^y.*"}],
            })
        );
        let m: HttpMatchRequest =
            serde_json::from_value(json!({"authority": {"exact": "a"}})).expect("match");
        assert!(matches!(route_match(&m), Err(RouterError::Invalid { .. })));
    }

    #[test]
    fn adoption_changes_only_serins_backend_refs() {
        let spec = spec("gatewayapi:v1", service(), json!({}));
        let label = label();
        let ctx = ctx(&spec, &label);
        let user_rules = json!([
            {"matches": [{"path": {"type": "PathPrefix", "value": "/static"}}],
             "backendRefs": [{"name": "cdn", "port": 80}]},
            {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
             "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "x-a", "value": "1"}]}}],
             "backendRefs": [{"name": "podinfo", "port": 8080}]},
        ]);
        let rules = adopt_rules(&ctx, &user_rules, split(90, 10), "r").expect("adopted");
        assert_eq!(rules[0], user_rules[0]);
        assert_eq!(rules[1]["matches"], user_rules[1]["matches"]);
        assert_eq!(rules[1]["filters"], user_rules[1]["filters"]);
        assert_eq!(
            rules[1]["backendRefs"],
            json!([
                {"name": "podinfo-primary", "port": 8080, "weight": 90},
                {"name": "podinfo-canary", "port": 8080, "weight": 10},
            ])
        );
        assert_eq!(read_rules(&ctx, &rules, "r").expect("read"), split(90, 10));
        let err = adopt_rules(&ctx, &json!([user_rules[0].clone()]), split(90, 10), "r")
            .expect_err("nothing to split");
        assert!(err.to_string().contains("no rule routes to podinfo"), "{err}");
    }

    #[test]
    fn golden_session_affinity_rules() {
        let analysis = json!({"sessionAffinity": {"cookieName": "canary-cookie", "maxAge": 60, "path": "/"}});
        let spec = spec("gatewayapi:v1", json!({"gatewayRefs": [{"name": "public"}]}), analysis);
        let label = label();
        let ctx = RouteContext { affinity_cookie: Some("abc"), ..ctx(&spec, &label) };
        let body = shape().http_route(&ctx, split(90, 10)).expect("body");
        assert_eq!(
            body["spec"]["rules"],
            json!([
                {"matches": [{"headers": [{"name": "Cookie", "type": "RegularExpression", "value": ".*canary\\-cookie=abc.*"}]}],
                 "backendRefs": [{"name": "podinfo-canary", "port": 9898}]},
                {"backendRefs": [
                    {"name": "podinfo-primary", "port": 9898, "weight": 90},
                    {"name": "podinfo-canary", "port": 9898, "weight": 10, "filters": [{"type": "ResponseHeaderModifier",
                        "responseHeaderModifier": {"add": [{"name": "Set-Cookie", "value": "canary-cookie=abc; Max-Age=60; Path=/"}]}}]},
                ]},
            ])
        );
        assert_eq!(shape().read(&ctx, &body).expect("read"), split(90, 10));
        // No weight on the canary: no cookie rules.
        let stable = shape().http_route(&ctx, Routes::STABLE).expect("body");
        assert_eq!(stable["spec"]["rules"].as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn linkerd_attaches_to_the_apex_service_without_hostnames() {
        let spec = spec("linkerd", service(), json!({}));
        let label = label();
        let body =
            crate::router::linkerd::shape().http_route(&ctx(&spec, &label), split(50, 50)).expect("body");
        assert_eq!(
            body["spec"]["parentRefs"],
            json!([{"group": "core", "kind": "Service", "name": "podinfo", "port": 9898}])
        );
        assert!(body["spec"].get("hostnames").is_none());
        assert_eq!(body["apiVersion"], "gateway.networking.k8s.io/v1");
    }
}
