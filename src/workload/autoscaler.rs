//! Builds `<hpa>-primary`, the primary's copy of the target's HorizontalPodAutoscaler
//! (`autoscaling/v2`), pointed at `<target>-primary`, with `primaryScalerReplicas` overrides.

use k8s_openapi::api::autoscaling::v2::{CrossVersionObjectReference, HorizontalPodAutoscaler};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::primary::primary_name;
use crate::crd::canary::ScalerReplicas;

/// Builds the primary HPA from the target's HPA; `None` when the HPA has no spec.
pub fn primary_hpa(
    target_hpa: &HorizontalPodAutoscaler,
    primary_deployment: &str,
    owner: &OwnerReference,
    overrides: Option<&ScalerReplicas>,
) -> Option<HorizontalPodAutoscaler> {
    let name = target_hpa.metadata.name.as_deref()?;
    let mut spec = target_hpa.spec.clone()?;
    spec.scale_target_ref = CrossVersionObjectReference {
        api_version: Some("apps/v1".into()),
        kind: "Deployment".into(),
        name: primary_deployment.to_string(),
    };
    if let Some(overrides) = overrides {
        if let Some(min) = overrides.min_replicas {
            spec.min_replicas = Some(min);
        }
        if let Some(max) = overrides.max_replicas {
            spec.max_replicas = max;
        }
    }
    Some(HorizontalPodAutoscaler {
        metadata: ObjectMeta {
            name: Some(primary_name(name)),
            namespace: target_hpa.metadata.namespace.clone(),
            labels: target_hpa.metadata.labels.clone(),
            owner_references: Some(vec![owner.clone()]),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn copies_the_hpa_for_the_primary() {
        let hpa: HorizontalPodAutoscaler = serde_json::from_value(json!({
            "metadata": {"name": "podinfo", "namespace": "test", "labels": {"app": "podinfo"}},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                "minReplicas": 2, "maxReplicas": 4,
                "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 99}}}]
            }
        }))
        .expect("hpa");
        let owner = OwnerReference { name: "podinfo".into(), kind: "Canary".into(), ..Default::default() };
        let copy = primary_hpa(&hpa, "podinfo-primary", &owner, None).expect("copy");
        let spec = copy.spec.clone().expect("spec");
        assert_eq!(copy.metadata.name.as_deref(), Some("podinfo-primary"));
        assert_eq!(spec.scale_target_ref.name, "podinfo-primary");
        assert_eq!((spec.min_replicas, spec.max_replicas), (Some(2), 4));
        assert_eq!(spec.metrics, hpa.spec.clone().and_then(|s| s.metrics));

        let overrides = ScalerReplicas { min_replicas: Some(3), max_replicas: Some(10) };
        let copy = primary_hpa(&hpa, "podinfo-primary", &owner, Some(&overrides)).expect("copy");
        let spec = copy.spec.expect("spec");
        assert_eq!((spec.min_replicas, spec.max_replicas), (Some(3), 10));
    }
}
