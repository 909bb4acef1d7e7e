//! Builds the `<target>-primary` Deployment from the target: same pod template, with the
//! selector label rewritten to `<value>-primary` (so the apex and primary Services select only
//! primary pods), tracked ConfigMaps/Secrets pointed at their `-primary` copies, and affinity
//! selectors rewritten the same way. Pure: the controller applies the result with server-side
//! apply.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{Affinity, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use thiserror::Error;

use super::config_refs::{ConfigKind, ConfigRef};

/// Labels that may carry the app identity, in the order Flagger looks for them
/// (`-selector-labels` default).
pub const SELECTOR_LABELS: [&str; 3] = ["app", "name", "app.kubernetes.io/name"];

/// Pod-template annotation holding the revision, so a promotion that changes only a tracked
/// ConfigMap or Secret still rolls the primary's pods.
pub const REVISION_ANNOTATION: &str = "serin.dev/revision";

/// Why a primary cannot be built from a target.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PrimaryError {
    /// The target's selector has none of the labels that identify the app.
    #[error(
        "deployment {0} selects its pods by none of the labels app, name, app.kubernetes.io/name; Serin needs one of them to tell primary pods from canary pods"
    )]
    NoSelectorLabel(String),
    /// The target has no name.
    #[error("target deployment has no name")]
    Unnamed,
}

/// The label that identifies the app's pods, and its value on the target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelectorLabel {
    /// Label key, e.g. `app`.
    pub key: String,
    /// Value on the target, e.g. `podinfo`; the primary's pods get `podinfo-primary`.
    pub value: String,
}

impl SelectorLabel {
    /// The value on primary pods.
    pub fn primary_value(&self) -> String {
        format!("{}-primary", self.value)
    }
}

/// Finds the selector label of a Deployment (first of [`SELECTOR_LABELS`] in its selector).
pub fn selector_label(target: &Deployment) -> Result<SelectorLabel, PrimaryError> {
    let name = target.metadata.name.clone().ok_or(PrimaryError::Unnamed)?;
    let labels = target.spec.as_ref().and_then(|s| s.selector.match_labels.as_ref());
    SELECTOR_LABELS
        .iter()
        .find_map(|key| {
            labels?.get(*key).map(|value| SelectorLabel { key: key.to_string(), value: value.clone() })
        })
        .ok_or(PrimaryError::NoSelectorLabel(name))
}

/// Inputs of the primary Deployment beyond the target itself.
#[derive(Clone, Debug)]
pub struct PrimaryInputs<'a> {
    /// The Canary that owns the primary.
    pub owner: OwnerReference,
    /// Revision being promoted (goes into the pod-template annotation).
    pub revision: &'a str,
    /// ConfigMaps and Secrets that get `-primary` copies.
    pub tracked: &'a BTreeSet<ConfigRef>,
    /// Replicas for the primary; `None` when an autoscaler owns the count.
    pub replicas: Option<i32>,
}

/// Name of the primary copy of a workload or config object.
pub fn primary_name(name: &str) -> String {
    format!("{name}-primary")
}

/// Builds the primary Deployment for `target`.
pub fn primary_deployment(
    target: &Deployment,
    inputs: &PrimaryInputs<'_>,
) -> Result<Deployment, PrimaryError> {
    let label = selector_label(target)?;
    let name = target.metadata.name.as_deref().ok_or(PrimaryError::Unnamed)?;
    let spec = target.spec.clone().unwrap_or_default();
    let primary_labels = BTreeMap::from([(label.key.clone(), label.primary_value())]);

    let mut template = spec.template.clone();
    rewrite_template(&mut template, &label, inputs);

    Ok(Deployment {
        metadata: ObjectMeta {
            name: Some(primary_name(name)),
            namespace: target.metadata.namespace.clone(),
            labels: Some(primary_labels.clone()),
            owner_references: Some(vec![inputs.owner.clone()]),
            ..ObjectMeta::default()
        },
        spec: Some(DeploymentSpec {
            replicas: inputs.replicas,
            selector: LabelSelector { match_labels: Some(primary_labels), match_expressions: None },
            template,
            progress_deadline_seconds: spec.progress_deadline_seconds,
            min_ready_seconds: spec.min_ready_seconds,
            revision_history_limit: spec.revision_history_limit,
            strategy: spec.strategy.clone(),
            paused: None,
        }),
        status: None,
    })
}

fn rewrite_template(template: &mut PodTemplateSpec, label: &SelectorLabel, inputs: &PrimaryInputs<'_>) {
    let metadata = template.metadata.get_or_insert_with(ObjectMeta::default);
    metadata.labels.get_or_insert_with(BTreeMap::new).insert(label.key.clone(), label.primary_value());
    metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(REVISION_ANNOTATION.to_string(), inputs.revision.to_string());
    if let Some(pod) = template.spec.as_mut() {
        rename_configs(pod, inputs.tracked);
        if let Some(affinity) = pod.affinity.as_mut() {
            rewrite_affinity(affinity, label);
        }
        for constraint in pod.topology_spread_constraints.iter_mut().flatten() {
            if let Some(selector) = constraint.label_selector.as_mut() {
                rewrite_selector(selector, label);
            }
        }
    }
}

/// Points every reference to a tracked ConfigMap or Secret at its `-primary` copy.
fn rename_configs(pod: &mut PodSpec, tracked: &BTreeSet<ConfigRef>) {
    let rename = |kind: ConfigKind, name: &mut String| {
        if tracked.contains(&ConfigRef { kind, name: name.clone() }) {
            *name = primary_name(name);
        }
    };
    for volume in pod.volumes.iter_mut().flatten() {
        if let Some(cm) = volume.config_map.as_mut() {
            rename(ConfigKind::ConfigMap, &mut cm.name);
        }
        if let Some(name) = volume.secret.as_mut().and_then(|s| s.secret_name.as_mut()) {
            rename(ConfigKind::Secret, name);
        }
        for source in volume.projected.iter_mut().flat_map(|p| p.sources.iter_mut().flatten()) {
            if let Some(cm) = source.config_map.as_mut() {
                rename(ConfigKind::ConfigMap, &mut cm.name);
            }
            if let Some(secret) = source.secret.as_mut() {
                rename(ConfigKind::Secret, &mut secret.name);
            }
        }
    }
    let containers = pod.containers.iter_mut().chain(pod.init_containers.iter_mut().flatten());
    for container in containers {
        for env in container.env.iter_mut().flatten() {
            let Some(from) = env.value_from.as_mut() else { continue };
            if let Some(cm) = from.config_map_key_ref.as_mut() {
                rename(ConfigKind::ConfigMap, &mut cm.name);
            }
            if let Some(secret) = from.secret_key_ref.as_mut() {
                rename(ConfigKind::Secret, &mut secret.name);
            }
        }
        for from in container.env_from.iter_mut().flatten() {
            if let Some(cm) = from.config_map_ref.as_mut() {
                rename(ConfigKind::ConfigMap, &mut cm.name);
            }
            if let Some(secret) = from.secret_ref.as_mut() {
                rename(ConfigKind::Secret, &mut secret.name);
            }
        }
    }
}

fn rewrite_affinity(affinity: &mut Affinity, label: &SelectorLabel) {
    let terms = affinity
        .pod_affinity
        .iter_mut()
        .flat_map(|a| {
            let required = a.required_during_scheduling_ignored_during_execution.iter_mut().flatten();
            let preferred = a
                .preferred_during_scheduling_ignored_during_execution
                .iter_mut()
                .flatten()
                .map(|w| &mut w.pod_affinity_term);
            required.chain(preferred)
        })
        .chain(affinity.pod_anti_affinity.iter_mut().flat_map(|a| {
            let required = a.required_during_scheduling_ignored_during_execution.iter_mut().flatten();
            let preferred = a
                .preferred_during_scheduling_ignored_during_execution
                .iter_mut()
                .flatten()
                .map(|w| &mut w.pod_affinity_term);
            required.chain(preferred)
        }));
    for term in terms {
        if let Some(selector) = term.label_selector.as_mut() {
            rewrite_selector(selector, label);
        }
    }
}

/// Rewrites `key: value` to `key: value-primary` in a label selector, including `In`
/// expressions.
fn rewrite_selector(selector: &mut LabelSelector, label: &SelectorLabel) {
    if let Some(value) = selector.match_labels.as_mut().and_then(|m| m.get_mut(&label.key))
        && *value == label.value
    {
        *value = label.primary_value();
    }
    for expression in selector.match_expressions.iter_mut().flatten() {
        if expression.key == label.key {
            for value in expression.values.iter_mut().flatten() {
                if *value == label.value {
                    *value = label.primary_value();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn target() -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "podinfo", "namespace": "test", "labels": {"app": "podinfo", "team": "a"}},
            "spec": {
                "replicas": 3,
                "minReadySeconds": 5,
                "revisionHistoryLimit": 4,
                "progressDeadlineSeconds": 120,
                "strategy": {"type": "RollingUpdate"},
                "selector": {"matchLabels": {"app": "podinfo"}},
                "template": {
                    "metadata": {"labels": {"app": "podinfo", "version": "v2"}},
                    "spec": {
                        "containers": [{
                            "name": "app", "image": "demo:2.0.0",
                            "envFrom": [{"configMapRef": {"name": "podinfo-config"}}, {"secretRef": {"name": "untracked"}}]
                        }],
                        "volumes": [{"name": "s", "secret": {"secretName": "podinfo-secret"}}],
                        "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
                            "weight": 100,
                            "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                                "labelSelector": {"matchLabels": {"app": "podinfo"}}}
                        }]}},
                        "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule",
                            "labelSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["podinfo", "other"]}]}}]
                    }
                }
            }
        }))
        .expect("deployment")
    }

    fn owner() -> OwnerReference {
        OwnerReference {
            api_version: "serin.dev/v1alpha1".into(),
            kind: "Canary".into(),
            name: "podinfo".into(),
            uid: "uid-1".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }

    #[test]
    fn builds_the_primary_with_rewritten_labels_configs_and_affinity() {
        let tracked = BTreeSet::from([
            ConfigRef { kind: ConfigKind::ConfigMap, name: "podinfo-config".into() },
            ConfigRef { kind: ConfigKind::Secret, name: "podinfo-secret".into() },
        ]);
        let inputs =
            PrimaryInputs { owner: owner(), revision: "abc123", tracked: &tracked, replicas: Some(3) };
        let primary = primary_deployment(&target(), &inputs).expect("primary");
        let got = serde_json::to_value(&primary).expect("json");
        let want: Value = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {
                "name": "podinfo-primary", "namespace": "test",
                "labels": {"app": "podinfo-primary"},
                "ownerReferences": [{"apiVersion": "serin.dev/v1alpha1", "kind": "Canary", "name": "podinfo",
                    "uid": "uid-1", "controller": true, "blockOwnerDeletion": true}]
            },
            "spec": {
                "replicas": 3, "minReadySeconds": 5, "revisionHistoryLimit": 4, "progressDeadlineSeconds": 120,
                "strategy": {"type": "RollingUpdate"},
                "selector": {"matchLabels": {"app": "podinfo-primary"}},
                "template": {
                    "metadata": {"labels": {"app": "podinfo-primary", "version": "v2"},
                        "annotations": {"serin.dev/revision": "abc123"}},
                    "spec": {
                        "containers": [{
                            "name": "app", "image": "demo:2.0.0",
                            "envFrom": [{"configMapRef": {"name": "podinfo-config-primary"}}, {"secretRef": {"name": "untracked"}}]
                        }],
                        "volumes": [{"name": "s", "secret": {"secretName": "podinfo-secret-primary"}}],
                        "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
                            "weight": 100,
                            "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                                "labelSelector": {"matchLabels": {"app": "podinfo-primary"}}}
                        }]}},
                        "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule",
                            "labelSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["podinfo-primary", "other"]}]}}]
                    }
                }
            }
        });
        assert_eq!(got, want);
    }

    #[test]
    fn autoscaled_primaries_leave_replicas_to_the_hpa() {
        let tracked = BTreeSet::new();
        let inputs = PrimaryInputs { owner: owner(), revision: "r", tracked: &tracked, replicas: None };
        let primary = primary_deployment(&target(), &inputs).expect("primary");
        assert_eq!(primary.spec.and_then(|s| s.replicas), None);
    }

    #[test]
    fn selector_label_follows_flaggers_order() {
        let with = |labels: Value| -> Deployment {
            serde_json::from_value(
                json!({"metadata": {"name": "x"}, "spec": {"selector": {"matchLabels": labels},
                "template": {}}}),
            )
            .expect("deployment")
        };
        let cases = [
            (json!({"app": "a", "name": "n"}), Ok(("app", "a"))),
            (json!({"name": "n", "app.kubernetes.io/name": "k"}), Ok(("name", "n"))),
            (json!({"app.kubernetes.io/name": "k", "tier": "web"}), Ok(("app.kubernetes.io/name", "k"))),
            (json!({"tier": "web"}), Err(PrimaryError::NoSelectorLabel("x".into()))),
        ];
        for (labels, want) in cases {
            let got = selector_label(&with(labels.clone()));
            let want = want.map(|(k, v)| SelectorLabel { key: k.into(), value: v.into() });
            assert_eq!(got, want, "{labels}");
        }
    }
}
