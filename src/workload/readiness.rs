//! Whether a Deployment has finished rolling out, with Flagger's rules: the controller has seen
//! the latest generation, all replicas are updated, no old replicas linger, and enough updated
//! replicas are available (`primaryReadyThreshold` / `canaryReadyThreshold` percent).

use k8s_openapi::api::apps::v1::Deployment;

pub use crate::rollout::Readiness;

/// Judges a Deployment's readiness; `threshold_percent` is the share of updated replicas that
/// must be available (0–100).
pub fn deployment_readiness(deployment: &Deployment, threshold_percent: i32) -> Readiness {
    let name = deployment.metadata.name.as_deref().unwrap_or("deployment");
    let status = deployment.status.clone().unwrap_or_default();
    let generation = deployment.metadata.generation.unwrap_or(0);
    if status.observed_generation.unwrap_or(0) < generation {
        return Readiness::NotReady(format!(
            "waiting for {name} to roll out: the deployment controller has not observed generation {generation} yet"
        ));
    }
    let deadline_exceeded = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Progressing" && c.reason.as_deref() == Some("ProgressDeadlineExceeded"));
    if deadline_exceeded {
        return Readiness::Failed(format!("{name} exceeded its progress deadline"));
    }
    let desired = deployment.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let updated = status.updated_replicas.unwrap_or(0);
    let replicas = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    let needed = (i64::from(updated) * i64::from(threshold_percent.clamp(0, 100)) / 100) as i32;
    if updated < desired {
        Readiness::NotReady(format!(
            "waiting for {name} to roll out: {updated} of {desired} replicas updated"
        ))
    } else if replicas > updated {
        Readiness::NotReady(format!(
            "waiting for {name} to roll out: {} old replicas are pending termination",
            replicas - updated
        ))
    } else if available < needed {
        Readiness::NotReady(format!(
            "waiting for {name} to roll out: {available} of {updated} updated replicas available (need {threshold_percent}%)"
        ))
    } else {
        Readiness::Ready
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn deployment(generation: i64, replicas: i32, status: serde_json::Value) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "podinfo", "generation": generation},
            "spec": {"replicas": replicas, "selector": {}, "template": {}},
            "status": status
        }))
        .expect("deployment")
    }

    #[test]
    fn readiness_table() {
        let ready =
            json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3});
        let cases = [
            ("rolled out", deployment(2, 3, ready.clone()), 100, Readiness::Ready),
            ("not observed", deployment(3, 3, ready.clone()), 100,
                Readiness::NotReady("waiting for podinfo to roll out: the deployment controller has not observed generation 3 yet".into())),
            ("updating", deployment(2, 3, json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 1, "availableReplicas": 3})), 100,
                Readiness::NotReady("waiting for podinfo to roll out: 1 of 3 replicas updated".into())),
            ("old pods left", deployment(2, 3, json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 3, "availableReplicas": 3})), 100,
                Readiness::NotReady("waiting for podinfo to roll out: 1 old replicas are pending termination".into())),
            ("not available", deployment(2, 4, json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 4, "availableReplicas": 2})), 100,
                Readiness::NotReady("waiting for podinfo to roll out: 2 of 4 updated replicas available (need 100%)".into())),
            ("threshold met", deployment(2, 4, json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 4, "availableReplicas": 2})), 50, Readiness::Ready),
            ("threshold zero", deployment(2, 4, json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 4, "availableReplicas": 0})), 0, Readiness::Ready),
            ("scaled to zero", deployment(2, 0, json!({"observedGeneration": 2})), 100, Readiness::Ready),
            ("deadline exceeded", deployment(2, 3, json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 1,
                "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]})), 100,
                Readiness::Failed("podinfo exceeded its progress deadline".into())),
        ];
        for (name, d, threshold, want) in cases {
            assert_eq!(deployment_readiness(&d, threshold), want, "{name}");
        }
    }
}
