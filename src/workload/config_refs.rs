//! Which ConfigMaps and Secrets a pod template uses, so their content counts towards the
//! revision and the primary gets its own `-primary` copies on promotion.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Container, PodSpec};

/// Kind of a tracked configuration object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConfigKind {
    /// A ConfigMap.
    ConfigMap,
    /// A Secret.
    Secret,
}

impl ConfigKind {
    /// The kind as written in `status.trackedConfigs` keys.
    pub fn as_str(self) -> &'static str {
        match self {
            ConfigKind::ConfigMap => "ConfigMap",
            ConfigKind::Secret => "Secret",
        }
    }
}

/// A ConfigMap or Secret referenced by a pod template.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConfigRef {
    /// ConfigMap or Secret.
    pub kind: ConfigKind,
    /// Name in the pod's namespace.
    pub name: String,
}

impl ConfigRef {
    /// The key used in `status.trackedConfigs`, e.g. `ConfigMap/app-config` (Flagger's format).
    pub fn key(&self) -> String {
        format!("{}/{}", self.kind.as_str(), self.name)
    }
}

/// Every ConfigMap and Secret the pod spec references through volumes (including projected
/// volumes), `env[].valueFrom` and `envFrom`, of containers and init containers. Optional
/// references are included: their content still changes what the pod runs.
pub fn referenced_configs(spec: &PodSpec) -> BTreeSet<ConfigRef> {
    let mut refs = BTreeSet::new();
    let mut add = |kind, name: &str| {
        if !name.is_empty() {
            refs.insert(ConfigRef { kind, name: name.to_string() });
        }
    };
    for volume in spec.volumes.iter().flatten() {
        if let Some(cm) = &volume.config_map {
            add(ConfigKind::ConfigMap, &cm.name);
        }
        if let Some(secret) = volume.secret.as_ref().and_then(|s| s.secret_name.as_deref()) {
            add(ConfigKind::Secret, secret);
        }
        for source in volume.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            if let Some(cm) = &source.config_map {
                add(ConfigKind::ConfigMap, &cm.name);
            }
            if let Some(secret) = &source.secret {
                add(ConfigKind::Secret, &secret.name);
            }
        }
    }
    let containers: Vec<&Container> =
        spec.containers.iter().chain(spec.init_containers.iter().flatten()).collect();
    for container in containers {
        for env in container.env.iter().flatten() {
            let Some(from) = &env.value_from else { continue };
            if let Some(cm) = &from.config_map_key_ref {
                add(ConfigKind::ConfigMap, &cm.name);
            }
            if let Some(secret) = &from.secret_key_ref {
                add(ConfigKind::Secret, &secret.name);
            }
        }
        for from in container.env_from.iter().flatten() {
            if let Some(cm) = &from.config_map_ref {
                add(ConfigKind::ConfigMap, &cm.name);
            }
            if let Some(secret) = &from.secret_ref {
                add(ConfigKind::Secret, &secret.name);
            }
        }
    }
    refs
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn finds_configs_in_volumes_env_and_init_containers() {
        let spec: PodSpec = serde_json::from_value(json!({
            "volumes": [
                {"name": "a", "configMap": {"name": "cm-volume"}},
                {"name": "b", "secret": {"secretName": "secret-volume"}},
                {"name": "c", "projected": {"sources": [
                    {"configMap": {"name": "cm-projected"}},
                    {"secret": {"name": "secret-projected"}},
                    {"serviceAccountToken": {"path": "token"}}
                ]}},
                {"name": "d", "emptyDir": {}}
            ],
            "containers": [{
                "name": "app",
                "env": [
                    {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cm-env", "key": "k"}}},
                    {"name": "B", "valueFrom": {"secretKeyRef": {"name": "secret-env", "key": "k"}}},
                    {"name": "C", "value": "plain"},
                    {"name": "D", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
                ],
                "envFrom": [{"configMapRef": {"name": "cm-envfrom"}}, {"secretRef": {"name": "secret-envfrom"}}]
            }],
            "initContainers": [{"name": "init", "envFrom": [{"configMapRef": {"name": "cm-init"}}]}]
        }))
        .expect("pod spec");
        let keys: Vec<String> = referenced_configs(&spec).iter().map(ConfigRef::key).collect();
        assert_eq!(
            keys,
            vec![
                "ConfigMap/cm-env",
                "ConfigMap/cm-envfrom",
                "ConfigMap/cm-init",
                "ConfigMap/cm-projected",
                "ConfigMap/cm-volume",
                "Secret/secret-env",
                "Secret/secret-envfrom",
                "Secret/secret-projected",
                "Secret/secret-volume",
            ]
        );
    }

    #[test]
    fn a_pod_without_configs_tracks_nothing() {
        let spec: PodSpec =
            serde_json::from_value(json!({"containers": [{"name": "app", "image": "x"}]})).expect("pod spec");
        assert!(referenced_configs(&spec).is_empty());
    }
}
