//! The `smi:v1alpha1|v1alpha2|v1alpha3` routers: an SMI TrafficSplit `<svc>`
//! (`split.smi-spec.io`) with `service: <svc>` and two backends, `<svc>-primary` and
//! `<svc>-canary`, each with its weight (a quantity string in v1alpha1, an integer later).
//!
//! Unsupported: mirroring, and A/B testing (`analysis.match`; v1alpha3 matches need
//! HTTPRouteGroups Serin does not write).
//!
//! Builtin metrics: `analysis/smi`.

use kube::Client;
use serde_json::{Value, json};

use super::object::{Desired, ObjectRouter, RoutingKind, Shape, owned_metadata, percentages, unsupported};
use super::{RouteContext, RouterError, Routes};
use crate::crd::Provider;

/// Which TrafficSplit version to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// `split.smi-spec.io/v1alpha1`: weights are quantities (`"90"`).
    V1Alpha1,
    /// `split.smi-spec.io/v1alpha2`: integer weights.
    V1Alpha2,
    /// `split.smi-spec.io/v1alpha3`: integer weights.
    V1Alpha3,
}

/// The TrafficSplit shape.
#[derive(Clone, Copy, Debug)]
pub struct TrafficSplitShape {
    /// The version written.
    pub version: Version,
}

/// The SMI router.
pub fn router(client: Client, version: Version) -> ObjectRouter<TrafficSplitShape> {
    ObjectRouter::new(client, TrafficSplitShape { version })
}

impl TrafficSplitShape {
    fn weight(&self, w: i32) -> Value {
        match self.version {
            Version::V1Alpha1 => json!(w.to_string()),
            Version::V1Alpha2 | Version::V1Alpha3 => json!(w),
        }
    }

    /// The TrafficSplit body for `routes`.
    pub fn traffic_split(&self, ctx: &RouteContext<'_>, routes: Routes) -> Result<Value, RouterError> {
        let provider = self.provider();
        if routes.mirrored {
            return Err(unsupported(provider, routes, "SMI TrafficSplit cannot mirror traffic"));
        }
        if ctx.spec.analysis.match_.as_ref().is_some_and(|m| !m.is_empty()) {
            return Err(unsupported(
                provider,
                routes,
                "A/B testing needs HTTPRouteGroup matches Serin does not write",
            ));
        }
        let svc = ctx.spec.service_name();
        let kind = self.kind();
        Ok(json!({
            "apiVersion": kind.api_version(),
            "kind": kind.kind,
            "metadata": owned_metadata(ctx, svc),
            "spec": {
                "service": svc,
                "backends": [
                    {"service": format!("{svc}-primary"), "weight": self.weight(routes.primary)},
                    {"service": format!("{svc}-canary"), "weight": self.weight(routes.canary)},
                ],
            },
        }))
    }
}

/// A weight as written by any version: an integer, or a quantity string (`"90"`, `"900m"`).
fn parse_weight(v: &Value) -> Option<i64> {
    if let Some(n) = v.as_i64() {
        return Some(n);
    }
    let s = v.as_str()?.trim();
    match s.strip_suffix('m') {
        Some(milli) => milli.parse::<i64>().ok().map(|m| m / 1000),
        None => s.parse().ok(),
    }
}

impl Shape for TrafficSplitShape {
    fn provider(&self) -> Provider {
        match self.version {
            Version::V1Alpha1 => Provider::SmiV1Alpha1,
            Version::V1Alpha2 => Provider::SmiV1Alpha2,
            Version::V1Alpha3 => Provider::SmiV1Alpha3,
        }
    }

    fn kind(&self) -> RoutingKind {
        RoutingKind {
            group: "split.smi-spec.io",
            version: match self.version {
                Version::V1Alpha1 => "v1alpha1",
                Version::V1Alpha2 => "v1alpha2",
                Version::V1Alpha3 => "v1alpha3",
            },
            kind: "TrafficSplit",
            plural: "trafficsplits",
        }
    }

    fn build(&self, ctx: &RouteContext<'_>, routes: Routes) -> Result<Vec<Desired>, RouterError> {
        Ok(vec![Desired { kind: self.kind(), body: self.traffic_split(ctx, routes)? }])
    }

    fn read(&self, ctx: &RouteContext<'_>, object: &Value) -> Result<Routes, RouterError> {
        let svc = ctx.spec.service_name();
        let (p, c) = (format!("{svc}-primary"), format!("{svc}-canary"));
        let weight = |name: &str| {
            object["spec"]["backends"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|b| b["service"] == name)
                .filter_map(|b| parse_weight(&b["weight"]))
                .reduce(|a, b| a + b)
        };
        let what = format!("TrafficSplit {}/{svc}", ctx.namespace);
        let (wp, wc) = (weight(&p), weight(&c));
        if wp.is_none() && wc.is_none() {
            return Err(RouterError::NotFound(format!("{what} backend {p} or {c}")));
        }
        percentages(wp.unwrap_or(0), wc.unwrap_or(0), false).ok_or_else(|| RouterError::Invalid {
            object: what,
            reason: "both backends have weight 0".into(),
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
    fn golden_traffic_splits_per_version() {
        let spec = spec("smi:v1alpha2", json!({}), json!({}));
        let label = label();
        let ctx = ctx(&spec, &label);
        let routes = Routes { primary: 90, canary: 10, mirrored: false };
        let body =
            TrafficSplitShape { version: Version::V1Alpha2 }.traffic_split(&ctx, routes).expect("body");
        assert_eq!(
            body,
            json!({
                "apiVersion": "split.smi-spec.io/v1alpha2",
                "kind": "TrafficSplit",
                "metadata": owned_meta("podinfo"),
                "spec": {"service": "podinfo", "backends": [
                    {"service": "podinfo-primary", "weight": 90},
                    {"service": "podinfo-canary", "weight": 10},
                ]},
            })
        );
        let v1 = TrafficSplitShape { version: Version::V1Alpha1 }.traffic_split(&ctx, routes).expect("body");
        assert_eq!(v1["apiVersion"], "split.smi-spec.io/v1alpha1");
        assert_eq!(v1["spec"]["backends"][0]["weight"], json!("90"));
        for version in [Version::V1Alpha1, Version::V1Alpha2, Version::V1Alpha3] {
            let shape = TrafficSplitShape { version };
            for canary in WEIGHTS {
                let routes = Routes { primary: 100 - canary, canary, mirrored: false };
                let body = shape.traffic_split(&ctx, routes).expect("body");
                assert_eq!(shape.read(&ctx, &body).expect("read"), routes, "{version:?}");
            }
        }
    }

    #[test]
    fn quantity_weights_parse() {
        assert_eq!(parse_weight(&json!("900m")), Some(0));
        assert_eq!(parse_weight(&json!("90000m")), Some(90));
        assert_eq!(parse_weight(&json!(" 7 ")), Some(7));
    }

    #[test]
    fn mirroring_and_ab_are_unsupported() {
        let spec = spec("smi:v1alpha3", json!({}), ab_analysis());
        let label = label();
        let shape = TrafficSplitShape { version: Version::V1Alpha3 };
        let err = shape.traffic_split(&ctx(&spec, &label), Routes::STABLE).expect_err("a/b");
        assert!(matches!(err, RouterError::Unsupported { .. }), "{err}");
        let spec = crate::router::testkit::spec("smi:v1alpha3", json!({}), json!({}));
        let err = shape
            .traffic_split(&ctx(&spec, &label), Routes { mirrored: true, ..Routes::STABLE })
            .expect_err("mirror");
        assert!(matches!(err, RouterError::Unsupported { .. }), "{err}");
    }
}
