//! The builtin metrics `request-success-rate` (percent non-5xx) and `request-duration`
//! (P99, milliseconds), plus the `request-count` helper behind `minRequests`, for every router
//! Serin supports. The queries live as MetricTemplate YAML under the top-level `analysis/`
//! folder and are embedded here with `include_str!`: one source of truth that the binary runs
//! and users can also `kubectl apply`.
//!
//! Builtins are keyed by a *metrics provider* name, which is the folder name: usually the
//! router's name, but Gateway API has two (`gatewayapi-envoy` for `envoy_cluster_*` metrics,
//! `gatewayapi-istio` for Istio as the gateway, `reporter="source"`), and the SMI versions
//! share `smi`.

use std::sync::OnceLock;

use crate::crd::{MetricTemplate, Provider};

/// Name of the builtin success-rate check (percent of non-5xx responses).
pub const REQUEST_SUCCESS_RATE: &str = "request-success-rate";
/// Name of the builtin latency check (P99 in milliseconds).
pub const REQUEST_DURATION: &str = "request-duration";
/// Name of the helper query counting the canary's requests in the window; `minRequests` is
/// judged against it. Not a check of its own.
pub const REQUEST_COUNT: &str = "request-count";

/// Every metrics provider with builtins, i.e. every folder under `analysis/`.
pub const PROVIDERS: [&str; 9] = [
    "istio",
    "linkerd",
    "nginx",
    "contour",
    "traefik",
    "gatewayapi-envoy",
    "gatewayapi-istio",
    "kubernetes",
    "smi",
];

/// Every builtin metric name each provider has.
pub const METRICS: [&str; 3] = [REQUEST_SUCCESS_RATE, REQUEST_DURATION, REQUEST_COUNT];

/// (provider, metric, YAML) of every embedded file.
const FILES: [(&str, &str, &str); 27] = [
    ("istio", "request-success-rate", include_str!("../../analysis/istio/request-success-rate.yaml")),
    ("istio", "request-duration", include_str!("../../analysis/istio/request-duration.yaml")),
    ("istio", "request-count", include_str!("../../analysis/istio/request-count.yaml")),
    ("linkerd", "request-success-rate", include_str!("../../analysis/linkerd/request-success-rate.yaml")),
    ("linkerd", "request-duration", include_str!("../../analysis/linkerd/request-duration.yaml")),
    ("linkerd", "request-count", include_str!("../../analysis/linkerd/request-count.yaml")),
    ("nginx", "request-success-rate", include_str!("../../analysis/nginx/request-success-rate.yaml")),
    ("nginx", "request-duration", include_str!("../../analysis/nginx/request-duration.yaml")),
    ("nginx", "request-count", include_str!("../../analysis/nginx/request-count.yaml")),
    ("contour", "request-success-rate", include_str!("../../analysis/contour/request-success-rate.yaml")),
    ("contour", "request-duration", include_str!("../../analysis/contour/request-duration.yaml")),
    ("contour", "request-count", include_str!("../../analysis/contour/request-count.yaml")),
    ("traefik", "request-success-rate", include_str!("../../analysis/traefik/request-success-rate.yaml")),
    ("traefik", "request-duration", include_str!("../../analysis/traefik/request-duration.yaml")),
    ("traefik", "request-count", include_str!("../../analysis/traefik/request-count.yaml")),
    (
        "gatewayapi-envoy",
        "request-success-rate",
        include_str!("../../analysis/gatewayapi-envoy/request-success-rate.yaml"),
    ),
    (
        "gatewayapi-envoy",
        "request-duration",
        include_str!("../../analysis/gatewayapi-envoy/request-duration.yaml"),
    ),
    ("gatewayapi-envoy", "request-count", include_str!("../../analysis/gatewayapi-envoy/request-count.yaml")),
    (
        "gatewayapi-istio",
        "request-success-rate",
        include_str!("../../analysis/gatewayapi-istio/request-success-rate.yaml"),
    ),
    (
        "gatewayapi-istio",
        "request-duration",
        include_str!("../../analysis/gatewayapi-istio/request-duration.yaml"),
    ),
    ("gatewayapi-istio", "request-count", include_str!("../../analysis/gatewayapi-istio/request-count.yaml")),
    (
        "kubernetes",
        "request-success-rate",
        include_str!("../../analysis/kubernetes/request-success-rate.yaml"),
    ),
    ("kubernetes", "request-duration", include_str!("../../analysis/kubernetes/request-duration.yaml")),
    ("kubernetes", "request-count", include_str!("../../analysis/kubernetes/request-count.yaml")),
    ("smi", "request-success-rate", include_str!("../../analysis/smi/request-success-rate.yaml")),
    ("smi", "request-duration", include_str!("../../analysis/smi/request-duration.yaml")),
    ("smi", "request-count", include_str!("../../analysis/smi/request-count.yaml")),
];

/// Which metrics a Gateway API canary's builtins should read: the gateway's Envoy cluster
/// metrics, or Istio's (when Istio implements the Gateway API).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GatewayMetrics {
    /// `envoy_cluster_*` metrics (Contour-style cluster names).
    #[default]
    Envoy,
    /// `istio_requests_total` with `reporter="source"`.
    Istio,
}

/// The metrics provider (folder under `analysis/`) whose builtins fit a canary's router, or
/// `None` for routers Serin does not support. For Gateway API the caller says which
/// implementation serves it (a controller setting; not wired yet).
pub fn provider_for(router: Provider, gateway: GatewayMetrics) -> Option<&'static str> {
    Some(match router {
        Provider::Kubernetes => "kubernetes",
        Provider::Istio => "istio",
        Provider::Linkerd => "linkerd",
        Provider::GatewayApiV1 | Provider::GatewayApiV1Beta1 => match gateway {
            GatewayMetrics::Envoy => "gatewayapi-envoy",
            GatewayMetrics::Istio => "gatewayapi-istio",
        },
        Provider::SmiV1Alpha1 | Provider::SmiV1Alpha2 | Provider::SmiV1Alpha3 => "smi",
        Provider::Nginx => "nginx",
        Provider::Traefik => "traefik",
        Provider::Contour => "contour",
        Provider::Apisix
        | Provider::AppMesh
        | Provider::AppMeshV1Beta2
        | Provider::Gloo
        | Provider::Knative
        | Provider::Kuma
        | Provider::Osm
        | Provider::Skipper => return None,
    })
}

/// The YAML of one builtin, as embedded.
pub fn source(provider: &str, name: &str) -> Option<&'static str> {
    FILES.iter().find(|(p, n, _)| *p == provider && *n == name).map(|(_, _, yaml)| *yaml)
}

fn parsed() -> &'static [(&'static str, &'static str, MetricTemplate)] {
    static PARSED: OnceLock<Vec<(&'static str, &'static str, MetricTemplate)>> = OnceLock::new();
    PARSED.get_or_init(|| {
        // A file that does not parse is left out here and fails the tests below; the embedded
        // files are part of the binary, not input from outside.
        FILES
            .iter()
            .filter_map(|(p, n, yaml)| {
                serde_norway::from_str::<MetricTemplate>(yaml).ok().map(|t| (*p, *n, t))
            })
            .collect()
    })
}

/// The builtin MetricTemplate `name` of metrics provider `provider`, e.g.
/// `builtin("istio", "request-duration")`.
pub fn builtin(provider: &str, name: &str) -> Option<&'static MetricTemplate> {
    parsed().iter().find(|(p, n, _)| *p == provider && *n == name).map(|(_, _, t)| t)
}

/// Every builtin as (provider, metric, template), in folder order.
pub fn all() -> impl Iterator<Item = (&'static str, &'static str, &'static MetricTemplate)> {
    parsed().iter().map(|(p, n, t)| (*p, *n, t))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use super::*;
    use crate::analysis::template::{self, TemplateContext};
    use crate::crd::MetricProviderType;

    fn full_context() -> TemplateContext {
        TemplateContext {
            name: "podinfo".into(),
            namespace: "test".into(),
            target: "podinfo".into(),
            service: "podinfo-svc".into(),
            ingress: "podinfo-ing".into(),
            route: "podinfo-route".into(),
            interval: "1m".into(),
            primary: "podinfo-primary".into(),
            variables: BTreeMap::new(),
        }
    }

    #[test]
    fn every_file_is_embedded_and_every_embedded_file_exists() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("analysis");
        let mut on_disk = Vec::new();
        for entry in walkdir::WalkDir::new(&root).into_iter().map(|e| e.expect("walk analysis/")) {
            if entry.file_type().is_file() {
                let rel =
                    entry.path().strip_prefix(&root).expect("under root").to_string_lossy().into_owned();
                on_disk.push(rel);
            }
        }
        on_disk.sort();
        let mut embedded: Vec<String> = FILES.iter().map(|(p, n, _)| format!("{p}/{n}.yaml")).collect();
        embedded.sort();
        assert_eq!(on_disk, embedded);
        for (p, n, yaml) in FILES {
            let file = std::fs::read_to_string(root.join(p).join(format!("{n}.yaml"))).expect("read");
            assert_eq!(file, yaml, "{p}/{n}");
        }
    }

    #[test]
    fn every_builtin_parses_as_a_metric_template() {
        for (p, n, yaml) in FILES {
            let parsed: MetricTemplate =
                serde_norway::from_str(yaml).unwrap_or_else(|e| panic!("{p}/{n}.yaml does not parse: {e}"));
            assert_eq!(parsed.spec.provider.type_, MetricProviderType::Prometheus, "{p}/{n}");
            assert_eq!(
                parsed.spec.provider.address, None,
                "{p}/{n}: builtins use the global --metrics-server"
            );
            assert_eq!(parsed.metadata.name.as_deref(), Some(format!("{p}-{n}").as_str()));
            assert!(yaml.contains("apiVersion: serin.dev/v1alpha1\nkind: MetricTemplate\n"), "{p}/{n}");
        }
        assert_eq!(all().count(), FILES.len());
        for p in PROVIDERS {
            for n in METRICS {
                assert!(builtin(p, n).is_some(), "{p}/{n}");
            }
        }
        assert!(builtin("istio", "nope").is_none());
        assert!(builtin("gloo", REQUEST_SUCCESS_RATE).is_none());
    }

    #[test]
    fn every_builtin_renders_with_a_full_context() {
        let ctx = full_context();
        for (p, n, t) in all() {
            let query = template::render(&t.spec.query, &ctx).unwrap_or_else(|e| panic!("{p}/{n}: {e}"));
            assert!(!query.contains("{{") && !query.contains("}}"), "{p}/{n}: {query}");
            assert!(
                query.contains("test") || query.contains("podinfo"),
                "{p}/{n} does not select the canary"
            );
            assert_eq!(query.matches('(').count(), query.matches(')').count(), "{p}/{n}: {query}");
            if n == REQUEST_SUCCESS_RATE {
                assert!(query.trim_end().ends_with("* 100"), "{p}/{n} must be a percentage");
            }
            if n == REQUEST_DURATION {
                assert!(query.contains("histogram_quantile(0.99"), "{p}/{n} must be a P99");
            }
        }
    }

    #[test]
    fn gateway_api_has_envoy_and_istio_flavours() {
        let envoy = builtin("gatewayapi-envoy", REQUEST_SUCCESS_RATE).expect("envoy");
        assert!(envoy.spec.query.contains("envoy_cluster_upstream_rq"));
        let istio = builtin("gatewayapi-istio", REQUEST_SUCCESS_RATE).expect("istio");
        assert!(istio.spec.query.contains(r#"reporter="source""#));
    }

    #[test]
    fn routers_map_to_builtin_folders() {
        for router in Provider::ALL {
            if let Some(folder) = provider_for(router, GatewayMetrics::Envoy) {
                assert!(PROVIDERS.contains(&folder), "{router:?} -> {folder}");
            }
        }
        assert_eq!(provider_for(Provider::GatewayApiV1, GatewayMetrics::Istio), Some("gatewayapi-istio"));
        assert_eq!(provider_for(Provider::SmiV1Alpha2, GatewayMetrics::Envoy), Some("smi"));
        assert_eq!(provider_for(Provider::Gloo, GatewayMetrics::Envoy), None);
    }
}
