//! Builds the three ClusterIP Services of a canary: the apex `<svc>` that clients use,
//! `<svc>-primary` and `<svc>-canary`. With a mesh or ingress router the apex selects the
//! primary pods; with the `kubernetes` (blue/green) router the apex selector *is* the route, so
//! it is left out here and owned by the router (its own field manager), which switches it
//! between primary and canary.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::primary::SelectorLabel;
use crate::crd::CanarySpec;
use crate::crd::common::CustomMetadata;

/// Sidecar containers whose ports are never exposed by port discovery.
const SIDECARS: [&str; 4] = ["istio-proxy", "linkerd-proxy", "envoy", "envoy-sidecar"];

/// Which pods a Service selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Selects {
    /// The `<value>-primary` pods.
    Primary,
    /// The target's own pods (the canary).
    Canary,
}

/// The apex, primary and canary Services, in that order.
#[derive(Clone, Debug, PartialEq)]
pub struct CanaryServices {
    /// `<svc>`: what clients call.
    pub apex: Service,
    /// `<svc>-primary`.
    pub primary: Service,
    /// `<svc>-canary`.
    pub canary: Service,
}

/// The selector of a Service that selects `selects`.
pub fn selector_for(label: &SelectorLabel, selects: Selects) -> BTreeMap<String, String> {
    let value = match selects {
        Selects::Primary => label.primary_value(),
        Selects::Canary => label.value.clone(),
    };
    BTreeMap::from([(label.key.clone(), value)])
}

/// Builds the Services for a canary. `containers` are the target's containers (for
/// `portDiscovery`); `apex_selects` is `Some(Primary)` for mesh and ingress routers and `None`
/// when the router owns the apex selector.
pub fn canary_services(
    spec: &CanarySpec,
    namespace: &str,
    owner: &OwnerReference,
    label: &SelectorLabel,
    containers: &[Container],
    apex_selects: Option<Selects>,
) -> CanaryServices {
    let name = spec.service_name();
    let ports = service_ports(spec, containers);
    let build = |name: String, selects: Option<Selects>, meta: Option<&CustomMetadata>| Service {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(namespace.to_string()),
            labels: meta.and_then(|m| m.labels.clone()),
            annotations: meta.and_then(|m| m.annotations.clone()),
            owner_references: Some(vec![owner.clone()]),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            cluster_ip: spec.service.headless.filter(|h| *h).map(|_| "None".to_string()),
            selector: selects.map(|selects| selector_for(label, selects)),
            ports: Some(ports.clone()),
            traffic_distribution: spec.service.traffic_distribution.map(|t| format!("{t:?}")),
            ..ServiceSpec::default()
        }),
        status: None,
    };
    CanaryServices {
        apex: build(name.to_string(), apex_selects, spec.service.apex.as_ref()),
        primary: build(format!("{name}-primary"), Some(Selects::Primary), spec.service.primary.as_ref()),
        canary: build(format!("{name}-canary"), Some(Selects::Canary), spec.service.canary.as_ref()),
    }
}

/// The main port (`service.port` → `targetPort`, named `portName` or `http`) and, with
/// `portDiscovery`, every other container port except sidecars'.
fn service_ports(spec: &CanarySpec, containers: &[Container]) -> Vec<ServicePort> {
    let main_target = spec.service.target_port.clone().unwrap_or(IntOrString::Int(spec.service.port));
    let mut ports = vec![ServicePort {
        name: Some(spec.service.port_name.clone().unwrap_or_else(|| "http".into())),
        port: spec.service.port,
        target_port: Some(main_target.clone()),
        protocol: Some("TCP".into()),
        app_protocol: spec.service.app_protocol.clone(),
        ..ServicePort::default()
    }];
    if spec.service.port_discovery != Some(true) {
        return ports;
    }
    for container in containers.iter().filter(|c| !SIDECARS.contains(&c.name.as_str())) {
        for port in container.ports.iter().flatten() {
            let is_main = match &main_target {
                IntOrString::Int(n) => *n == port.container_port,
                IntOrString::String(name) => port.name.as_deref() == Some(name.as_str()),
            };
            let taken = ports.iter().any(|p| p.port == port.container_port);
            if is_main || taken || port.protocol.as_deref().is_some_and(|p| p != "TCP") {
                continue;
            }
            ports.push(ServicePort {
                name: Some(format!("tcp-{}-{}", container.name, port.container_port)),
                port: port.container_port,
                target_port: Some(IntOrString::Int(port.container_port)),
                protocol: Some("TCP".into()),
                ..ServicePort::default()
            });
        }
    }
    ports
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(service: serde_json::Value) -> CanarySpec {
        serde_json::from_value(json!({
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": service,
            "analysis": {"iterations": 3}
        }))
        .expect("spec")
    }

    fn owner() -> OwnerReference {
        OwnerReference {
            api_version: "serin.dev/v1alpha1".into(),
            kind: "Canary".into(),
            name: "podinfo".into(),
            uid: "u".into(),
            ..Default::default()
        }
    }

    fn label() -> SelectorLabel {
        SelectorLabel { key: "app".into(), value: "podinfo".into() }
    }

    fn selector(service: &Service) -> String {
        service
            .spec
            .as_ref()
            .and_then(|s| s.selector.as_ref())
            .and_then(|s| s.get("app"))
            .cloned()
            .unwrap_or_default()
    }

    #[test]
    fn apex_and_primary_select_primary_pods_canary_selects_the_target() {
        let spec =
            spec(json!({"port": 80, "targetPort": 9898, "apex": {"annotations": {"external-dns": "x"}}}));
        let s = canary_services(&spec, "test", &owner(), &label(), &[], Some(Selects::Primary));
        assert_eq!(s.apex.metadata.name.as_deref(), Some("podinfo"));
        assert_eq!(s.primary.metadata.name.as_deref(), Some("podinfo-primary"));
        assert_eq!(s.canary.metadata.name.as_deref(), Some("podinfo-canary"));
        assert_eq!(
            (selector(&s.apex), selector(&s.primary), selector(&s.canary)),
            ("podinfo-primary".into(), "podinfo-primary".into(), "podinfo".into())
        );
        assert_eq!(s.apex.metadata.annotations, Some(BTreeMap::from([("external-dns".into(), "x".into())])));
        assert_eq!(s.primary.metadata.annotations, None);
        let port = &s.apex.spec.as_ref().and_then(|s| s.ports.clone()).unwrap_or_default()[0];
        assert_eq!(
            (port.name.as_deref(), port.port, port.target_port.clone()),
            (Some("http"), 80, Some(IntOrString::Int(9898)))
        );
    }

    #[test]
    fn a_router_owned_apex_has_no_selector_here() {
        let s =
            canary_services(&spec(json!({"port": 80, "name": "web"})), "test", &owner(), &label(), &[], None);
        assert_eq!(s.apex.metadata.name.as_deref(), Some("web"));
        assert_eq!(s.apex.spec.as_ref().and_then(|s| s.selector.clone()), None);
        assert_eq!(selector(&s.primary), "podinfo-primary");
        assert_eq!(selector(&s.canary), "podinfo");
        assert_eq!(
            selector_for(&label(), Selects::Canary),
            BTreeMap::from([("app".into(), "podinfo".into())])
        );
    }

    #[test]
    fn target_port_defaults_to_port_and_headless_sets_no_cluster_ip() {
        let s = canary_services(
            &spec(json!({"port": 8080, "headless": true, "portName": "grpc"})),
            "t",
            &owner(),
            &label(),
            &[],
            Some(Selects::Primary),
        );
        let svc = s.apex.spec.expect("spec");
        assert_eq!(svc.cluster_ip.as_deref(), Some("None"));
        let port = &svc.ports.expect("ports")[0];
        assert_eq!(
            (port.name.as_deref(), port.target_port.clone()),
            (Some("grpc"), Some(IntOrString::Int(8080)))
        );
    }

    #[test]
    fn port_discovery_adds_other_container_ports_but_not_sidecars() {
        let containers: Vec<Container> = serde_json::from_value(json!([
            {"name": "app", "ports": [{"containerPort": 9898, "name": "http"}, {"containerPort": 9797}, {"containerPort": 53, "protocol": "UDP"}]},
            {"name": "istio-proxy", "ports": [{"containerPort": 15090}]}
        ]))
        .expect("containers");
        let s = canary_services(
            &spec(json!({"port": 80, "targetPort": "http", "portDiscovery": true})),
            "t",
            &owner(),
            &label(),
            &containers,
            Some(Selects::Primary),
        );
        let ports: Vec<(String, i32)> = s
            .apex
            .spec
            .and_then(|s| s.ports)
            .unwrap_or_default()
            .into_iter()
            .map(|p| (p.name.unwrap_or_default(), p.port))
            .collect();
        assert_eq!(ports, vec![("http".into(), 80), ("tcp-app-9797".into(), 9797)]);
    }
}
