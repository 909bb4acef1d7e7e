//! The `nginx` router: NGINX Ingress canary annotations on a second Ingress.
//!
//! Serin reads the Ingress named by `ingressRef` (never writes it) and applies
//! `<ingress>-canary`: the same rules, TLS and class, with every backend that pointed at `<svc>`
//! or `<svc>-primary` pointing at `<svc>-canary`, the source Ingress's labels and annotations
//! (except other canary annotations and `kubectl.kubernetes.io/last-applied-configuration`),
//! and:
//! - `nginx.ingress.kubernetes.io/canary: "true"`;
//! - a weighted canary: `canary-weight: "<canary>"`;
//! - A/B testing (`analysis.match`, one header or cookie condition): while the canary takes the
//!   matching requests, `canary-by-header` with `canary-by-header-value` (exact) or
//!   `canary-by-header-pattern` (regex, prefix, suffix), or `canary-by-cookie` for a `cookie`
//!   header regex of the form `(<name>=always)` (what Flagger documents), and `canary-weight: "0"`.
//!
//! Unsupported: mirroring; A/B testing with more than one condition or on anything but a header
//! or that cookie; a split of the matching requests other than all or nothing.
//!
//! Builtin metrics: `analysis/nginx`.

use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use kube::Client;
use regex::Regex;
use serde_json::{Map, Value, json};
use tracing::debug;

use super::gateway_api::exact_or_regex;
use super::object::{
    ALL_TO_CANARY, Objects, RoutingKind, contains, is_ab, owned_metadata, unsupported, without_run_routing,
};
use super::{RouteContext, RouterError, Routes, TrafficRouter};
use crate::crd::Provider;

/// networking.k8s.io/v1 Ingress.
pub const INGRESS: RoutingKind =
    RoutingKind { group: "networking.k8s.io", version: "v1", kind: "Ingress", plural: "ingresses" };

/// Prefix of the NGINX Ingress annotations.
pub const PREFIX: &str = "nginx.ingress.kubernetes.io";

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

static COOKIE_ALWAYS: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"\(([A-Za-z0-9_.\-]+)=always\)").ok());

fn ann(suffix: &str) -> String {
    format!("{PREFIX}/{suffix}")
}

/// The A/B condition NGINX can express.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AbCondition {
    /// `canary-by-header` (+ `canary-by-header-value` or `-pattern`).
    Header {
        /// Header name.
        name: String,
        /// Exact value.
        value: Option<String>,
        /// Regular expression.
        pattern: Option<String>,
    },
    /// `canary-by-cookie`.
    Cookie(String),
}

/// The A/B condition of `analysis.match`, `None` without A/B testing.
pub fn ab_condition(ctx: &RouteContext<'_>, routes: Routes) -> Result<Option<AbCondition>, RouterError> {
    let Some(matches) = ctx.spec.analysis.match_.as_ref().filter(|m| !m.is_empty()) else { return Ok(None) };
    let refuse = |reason| Err(unsupported(Provider::Nginx, routes, reason));
    let [m] = matches.as_slice() else {
        return refuse("NGINX canaries match one header or cookie, not several matches");
    };
    let headers = m.headers.clone().unwrap_or_default();
    if m.uri.is_some() || m.method.is_some() || m.query_params.is_some() || headers.len() != 1 {
        return refuse("NGINX canaries match exactly one header or cookie");
    }
    let Some((name, h)) = headers.into_iter().next() else { return refuse("empty match") };
    let found = exact_or_regex(&h);
    if name.eq_ignore_ascii_case("cookie") {
        let cookie = found.and_then(|(_, v)| {
            COOKIE_ALWAYS.as_ref().and_then(|re| re.captures(&v)).map(|c| c[1].to_string())
        });
        return match cookie {
            Some(c) => Ok(Some(AbCondition::Cookie(c))),
            None => refuse("a cookie match must be a regex containing (<name>=always)"),
        };
    }
    Ok(Some(match found {
        Some(("Exact", v)) => AbCondition::Header { name, value: Some(v), pattern: None },
        Some((_, v)) => AbCondition::Header { name, value: None, pattern: Some(v) },
        None => AbCondition::Header { name, value: None, pattern: None },
    }))
}

/// The canary Ingress name for `ingressRef`.
fn names(ctx: &RouteContext<'_>) -> Result<(String, String), RouterError> {
    let source =
        ctx.spec.ingress_ref.as_ref().map(|r| r.name.clone()).ok_or_else(|| RouterError::Invalid {
            object: format!("Canary {}/{}", ctx.namespace, ctx.name),
            reason: "provider nginx needs spec.ingressRef".into(),
        })?;
    let canary = format!("{source}-canary");
    Ok((source, canary))
}

/// Points every backend at `<svc>` or `<svc>-primary` to `<svc>-canary`; how many it changed.
fn repoint(value: &mut Value, from: &[String], to: &str) -> usize {
    match value {
        Value::Object(map) => {
            let mut n = 0;
            if let Some(service) = map.get_mut("service").and_then(Value::as_object_mut)
                && service.get("name").and_then(Value::as_str).is_some_and(|s| from.iter().any(|f| f == s))
            {
                service.insert("name".into(), json!(to));
                n += 1;
            }
            for (k, v) in map.iter_mut() {
                if k != "service" {
                    n += repoint(v, from, to);
                }
            }
            n
        }
        Value::Array(items) => items.iter_mut().map(|v| repoint(v, from, to)).sum(),
        _ => 0,
    }
}

/// The canary Ingress body, cloned from `source`, for `routes`.
pub fn canary_ingress(ctx: &RouteContext<'_>, source: &Value, routes: Routes) -> Result<Value, RouterError> {
    if routes.mirrored {
        return Err(unsupported(Provider::Nginx, routes, "NGINX Ingress canaries cannot mirror traffic"));
    }
    let ab = ab_condition(ctx, routes)?;
    if ab.is_some() && routes.canary != 0 && routes.canary != 100 {
        return Err(unsupported(Provider::Nginx, routes, "NGINX sends all or none of the matching requests"));
    }
    let (source_name, canary_name) = names(ctx)?;
    let svc = ctx.spec.service_name();
    let mut spec = source["spec"].clone();
    let changed = repoint(&mut spec, &[svc.to_string(), format!("{svc}-primary")], &format!("{svc}-canary"));
    if changed == 0 {
        return Err(RouterError::Invalid {
            object: format!("Ingress {}/{source_name}", ctx.namespace),
            reason: format!("no backend points at Service {svc}"),
        });
    }
    let mut meta = owned_metadata(ctx, &canary_name);
    let mut annotations: Map<String, Value> = Map::new();
    for (k, v) in source["metadata"]["annotations"].as_object().into_iter().flatten() {
        if k != LAST_APPLIED && !k.starts_with(&ann("canary")) {
            annotations.insert(k.clone(), v.clone());
        }
    }
    if let Some(own) = meta["annotations"].as_object() {
        annotations.extend(own.clone());
    }
    annotations.insert(ann("canary"), json!("true"));
    match ab {
        Some(condition) if routes.canary == 100 => {
            annotations.insert(ann("canary-weight"), json!("0"));
            match condition {
                AbCondition::Header { name, value, pattern } => {
                    annotations.insert(ann("canary-by-header"), json!(name));
                    if let Some(v) = value {
                        annotations.insert(ann("canary-by-header-value"), json!(v));
                    }
                    if let Some(p) = pattern {
                        annotations.insert(ann("canary-by-header-pattern"), json!(p));
                    }
                }
                AbCondition::Cookie(c) => {
                    annotations.insert(ann("canary-by-cookie"), json!(c));
                }
            }
        }
        _ => {
            annotations.insert(ann("canary-weight"), json!(routes.canary.to_string()));
        }
    }
    meta["annotations"] = Value::Object(annotations);
    let mut labels: Map<String, Value> =
        source["metadata"]["labels"].as_object().cloned().unwrap_or_default();
    if let Some(own) = meta["labels"].as_object() {
        labels.extend(own.clone());
    }
    if !labels.is_empty() {
        meta["labels"] = Value::Object(labels);
    }
    Ok(json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta, "spec": spec}))
}

/// The split a canary Ingress holds. With A/B testing (`ab`) header or cookie annotations mean
/// every matching request goes to the canary; without, they are left from an earlier spec and
/// only `canary-weight` counts.
pub fn read_canary_ingress(object: &Value, ab: bool) -> Result<Routes, RouterError> {
    let a = &object["metadata"]["annotations"];
    if a[ann("canary")] != "true" {
        return Ok(Routes::STABLE);
    }
    if ab && (a.get(ann("canary-by-header")).is_some() || a.get(ann("canary-by-cookie")).is_some()) {
        return Ok(ALL_TO_CANARY);
    }
    let weight = a[ann("canary-weight")].as_str().and_then(|w| w.trim().parse::<i32>().ok()).unwrap_or(0);
    let canary = weight.clamp(0, 100);
    Ok(Routes { primary: 100 - canary, canary, mirrored: false })
}

/// Routes through an NGINX canary Ingress.
pub struct NginxRouter {
    objects: Objects,
}

impl NginxRouter {
    /// A router using `client`.
    pub fn new(client: Client) -> Self {
        Self::with_objects(Objects::new(client))
    }

    /// A router reading and writing through `objects` (which may carry a cache).
    pub fn with_objects(objects: Objects) -> Self {
        Self { objects }
    }

    async fn source(&self, ctx: &RouteContext<'_>) -> Result<Arc<Value>, RouterError> {
        let (source, _) = names(ctx)?;
        self.objects
            .get(INGRESS, ctx.namespace, &source)
            .await?
            .ok_or_else(|| RouterError::NotFound(format!("Ingress {}/{source}", ctx.namespace)))
    }

    async fn canary(&self, ctx: &RouteContext<'_>) -> Result<Option<Arc<Value>>, RouterError> {
        let (_, canary) = names(ctx)?;
        self.objects.get(INGRESS, ctx.namespace, &canary).await
    }

    async fn write(&self, ctx: &RouteContext<'_>, routes: Routes) -> Result<(), RouterError> {
        let source = self.source(ctx).await?;
        let body = canary_ingress(ctx, &source, routes)?;
        self.objects.apply(INGRESS, ctx.namespace, &body).await
    }
}

#[async_trait]
impl TrafficRouter for NginxRouter {
    async fn reconcile(&self, ctx: &RouteContext<'_>) -> Result<(), RouterError> {
        let routes = match self.canary(ctx).await? {
            Some(live) => read_canary_ingress(&live, is_ab(ctx.spec))?,
            None => Routes::STABLE,
        };
        self.write(ctx, routes).await
    }

    async fn set_routes(&self, ctx: &RouteContext<'_>, routes: Routes) -> Result<(), RouterError> {
        let (_, name) = names(ctx)?;
        let live = self
            .canary(ctx)
            .await?
            .ok_or_else(|| RouterError::NotFound(format!("Ingress {}/{name}", ctx.namespace)))?;
        let source = self.source(ctx).await?;
        let body = canary_ingress(ctx, &source, routes)?;
        let canary_annotations = |o: &Value| -> Map<String, Value> {
            o["metadata"]["annotations"]
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, _)| k.starts_with(&ann("canary")))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        if canary_annotations(&live) == canary_annotations(&body) && contains(&live["spec"], &body["spec"]) {
            debug!(ingress = name, ?routes, "routes already in force");
            return Ok(());
        }
        self.objects.apply(INGRESS, ctx.namespace, &body).await
    }

    async fn get_routes(&self, ctx: &RouteContext<'_>) -> Result<Routes, RouterError> {
        let (_, name) = names(ctx)?;
        let live = self
            .canary(ctx)
            .await?
            .ok_or_else(|| RouterError::NotFound(format!("Ingress {}/{name}", ctx.namespace)))?;
        read_canary_ingress(&live, is_ab(ctx.spec))
    }

    async fn finalize(&self, ctx: &RouteContext<'_>) -> Result<(), RouterError> {
        if self.canary(ctx).await?.is_none() {
            return Ok(());
        }
        let spec = without_run_routing(ctx.spec);
        let plain = RouteContext { spec: &spec, ..*ctx };
        self.write(&plain, ALL_TO_CANARY).await
    }
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;
    use serde_json::json;

    use super::*;
    use crate::router::testkit::{WEIGHTS, ab_analysis, ctx, label, owned_meta, spec};

    fn source() -> Value {
        json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "podinfo", "namespace": "test", "labels": {"team": "a"},
                "annotations": {"kubernetes.io/ingress.class": "nginx",
                    "kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "spec": {"rules": [{"host": "app.example.com", "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "podinfo", "port": {"number": 80}}}},
                {"path": "/other", "pathType": "Prefix", "backend": {"service": {"name": "other", "port": {"number": 80}}}},
            ]}}]},
        })
    }

    fn ingress_spec(analysis: Value) -> crate::crd::CanarySpec {
        let mut s = spec("nginx", json!({}), analysis);
        s.ingress_ref = serde_json::from_value(
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "podinfo"}),
        )
        .expect("ref");
        s
    }

    #[test]
    fn golden_canary_ingress() {
        let spec = ingress_spec(json!({}));
        let label = label();
        let ctx = ctx(&spec, &label);
        let body = canary_ingress(&ctx, &source(), Routes { primary: 90, canary: 10, mirrored: false })
            .expect("body");
        let mut meta = owned_meta("podinfo-canary");
        meta["labels"] = json!({"team": "a"});
        meta["annotations"]["kubernetes.io/ingress.class"] = json!("nginx");
        meta["annotations"]["nginx.ingress.kubernetes.io/canary"] = json!("true");
        meta["annotations"]["nginx.ingress.kubernetes.io/canary-weight"] = json!("10");
        assert_eq!(
            body,
            json!({
                "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta,
                "spec": {"rules": [{"host": "app.example.com", "http": {"paths": [
                    {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "podinfo-canary", "port": {"number": 80}}}},
                    {"path": "/other", "pathType": "Prefix", "backend": {"service": {"name": "other", "port": {"number": 80}}}},
                ]}}]},
            })
        );
        for canary in WEIGHTS {
            let routes = Routes { primary: 100 - canary, canary, mirrored: false };
            let body = canary_ingress(&ctx, &source(), routes).expect("body");
            assert_eq!(read_canary_ingress(&body, is_ab(ctx.spec)).expect("read"), routes);
        }
    }

    #[test]
    fn ab_header_cookie_and_refusals() {
        let label = label();
        let spec = ingress_spec(ab_analysis());
        let ctx = ctx(&spec, &label);
        let all = Routes { primary: 0, canary: 100, mirrored: false };
        let body = canary_ingress(&ctx, &source(), all).expect("body");
        let a = &body["metadata"]["annotations"];
        assert_eq!(a["nginx.ingress.kubernetes.io/canary-by-header"], "x-canary");
        assert_eq!(a["nginx.ingress.kubernetes.io/canary-by-header-value"], "insider");
        assert_eq!(a["nginx.ingress.kubernetes.io/canary-weight"], "0");
        assert_eq!(read_canary_ingress(&body, is_ab(ctx.spec)).expect("read"), all);
        assert_eq!(read_canary_ingress(&body, false).expect("stale a/b annotations"), Routes::STABLE);
        let idle = canary_ingress(&ctx, &source(), Routes::STABLE).expect("body");
        assert!(
            idle["metadata"]["annotations"].get("nginx.ingress.kubernetes.io/canary-by-header").is_none()
        );
        assert_eq!(read_canary_ingress(&idle, true).expect("read"), Routes::STABLE);
        let err = canary_ingress(&ctx, &source(), Routes { primary: 50, canary: 50, mirrored: false });
        assert!(matches!(err, Err(RouterError::Unsupported { .. })));

        let cookie = json!({"stepWeight": null, "maxWeight": null, "iterations": 10,
            "match": [{"headers": {"cookie": {"regex": "^(.*?;)?(canary=always)(;.*)?$"}}}]});
        let spec = ingress_spec(cookie);
        let ctx = crate::router::testkit::ctx(&spec, &label);
        let body = canary_ingress(&ctx, &source(), all).expect("body");
        assert_eq!(body["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary-by-cookie"], "canary");

        let two = json!({"stepWeight": null, "maxWeight": null, "iterations": 10,
            "match": [{"headers": {"a": {"exact": "1"}, "b": {"exact": "2"}}}]});
        let spec = ingress_spec(two);
        let ctx = crate::router::testkit::ctx(&spec, &label);
        assert!(matches!(canary_ingress(&ctx, &source(), all), Err(RouterError::Unsupported { .. })));
        let err =
            canary_ingress(&ctx, &source(), Routes { mirrored: true, ..Routes::STABLE }).expect_err("mirror");
        assert!(err.to_string().contains("mirror"), "{err}");
    }

    #[test]
    fn missing_ingress_ref_is_named() {
        let spec = spec("nginx", json!({}), json!({}));
        let label = label();
        let err = canary_ingress(&ctx(&spec, &label), &source(), Routes::STABLE).expect_err("no ref");
        assert!(err.to_string().contains("spec.ingressRef"), "{err}");
    }
}
