//! Builds the rollout core's [`Observed`] from the caches and the router: the target's revision
//! (pod template plus tracked ConfigMaps and Secrets), readiness of target and primary, and the
//! current routes. Reads only caches; the router read (made by the caller) is the one live
//! read of a tick (see `stores`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use thiserror::Error;

use super::stores::Stores;
use crate::crd::annotations::{ACTION, Action};
use crate::crd::{Canary, Provider};
use crate::rollout::{Observed, Operations, Readiness, Routes};
use crate::router::RouterError;
use crate::workload::config_refs::{ConfigKind, ConfigRef, referenced_configs};
use crate::workload::primary::{PrimaryError, SelectorLabel, primary_name, selector_label};
use crate::workload::readiness::deployment_readiness;
use crate::workload::revision::{config_checksum, pod_template_hash, revision};

/// Annotations that opt a ConfigMap or Secret out of tracking (Serin's and Flagger's).
const TRACKING_OPT_OUT: [&str; 2] = ["serin.dev/config-tracking", "flagger.app/config-tracking"];

/// Why the world could not be observed; reported in status and Events, and retried.
#[derive(Debug, Error)]
pub enum ObserveError {
    /// The spec breaks Serin's semantic rules (the ones the CRD schema and CEL cannot say);
    /// every problem with its field path.
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
    /// The Canary has no namespace.
    #[error("canary has no namespace")]
    NoNamespace,
    /// The target Deployment does not exist (yet).
    #[error("target deployment {namespace}/{name} not found")]
    TargetNotFound {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// Serin cannot tell primary from canary pods.
    #[error(transparent)]
    Selector(#[from] PrimaryError),
    /// The routes could not be read (not "missing": the API failed).
    #[error("reading routes: {0}")]
    Routes(RouterError),
}

/// What `observe` found, with the objects the effects need.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// The facts for the rollout core.
    pub observed: Observed,
    /// The target Deployment.
    pub target: Arc<Deployment>,
    /// The primary Deployment, when it exists.
    pub primary: Option<Arc<Deployment>>,
    /// The label telling primary pods from canary pods.
    pub selector: SelectorLabel,
    /// ConfigMaps and Secrets of the target that exist and are tracked.
    pub tracked: BTreeSet<ConfigRef>,
}

/// The operational request on the Canary, if any.
pub fn operations(canary: &Canary) -> Operations {
    let action =
        canary.metadata.annotations.as_ref().and_then(|a| a.get(ACTION)).and_then(|v| Action::parse(v));
    let mut ops = Operations::default();
    match action {
        Some(Action::Promote) => ops.promote = true,
        Some(Action::Abort) => ops.abort = true,
        Some(Action::Retry) => ops.retry = true,
        Some(Action::Pause) => ops.pause = true,
        Some(Action::Resume) => ops.resume = true,
        None => {}
    }
    ops
}

/// Checksums of the target's ConfigMaps and Secrets, keyed `ConfigMap/<name>`; missing and
/// opted-out objects are left out.
pub fn tracked_configs(stores: &Stores, namespace: &str, target: &Deployment) -> BTreeMap<ConfigRef, String> {
    let Some(pod) = target.spec.as_ref().and_then(|s| s.template.spec.as_ref()) else {
        return BTreeMap::new();
    };
    let opted_out = |annotations: Option<&BTreeMap<String, String>>| {
        TRACKING_OPT_OUT
            .iter()
            .any(|key| annotations.and_then(|a| a.get(*key)).is_some_and(|v| v == "disabled"))
    };
    referenced_configs(pod)
        .into_iter()
        .filter_map(|config| {
            let checksum = match config.kind {
                ConfigKind::ConfigMap => {
                    let cm = stores.config_map(namespace, &config.name)?;
                    if opted_out(cm.metadata.annotations.as_ref()) {
                        return None;
                    }
                    let mut data: BTreeMap<String, Vec<u8>> = BTreeMap::new();
                    for (k, v) in cm.data.iter().flatten() {
                        data.insert(k.clone(), v.clone().into_bytes());
                    }
                    for (k, v) in cm.binary_data.iter().flatten() {
                        data.insert(format!("binary:{k}"), v.0.clone());
                    }
                    config_checksum(&data)
                }
                ConfigKind::Secret => {
                    let secret = stores.secret(namespace, &config.name)?;
                    if opted_out(secret.metadata.annotations.as_ref()) {
                        return None;
                    }
                    let data: BTreeMap<String, Vec<u8>> =
                        secret.data.iter().flatten().map(|(k, v)| (k.clone(), v.0.clone())).collect();
                    config_checksum(&data)
                }
            };
            Some((config, checksum))
        })
        .collect()
}

/// Observes one Canary. `routes` is the router's answer (`NotFound` means "not created yet").
pub fn snapshot(
    canary: &Canary,
    stores: &Stores,
    routes: Result<Routes, RouterError>,
    provider: Provider,
) -> Result<Snapshot, ObserveError> {
    let namespace = canary.metadata.namespace.as_deref().ok_or(ObserveError::NoNamespace)?;
    let target_name = &canary.spec.target_ref.name;
    let target = stores.deployment(namespace, target_name).ok_or_else(|| ObserveError::TargetNotFound {
        namespace: namespace.into(),
        name: target_name.clone(),
    })?;
    let selector = selector_label(&target)?;
    let primary = stores.deployment(namespace, &primary_name(target_name));

    let configs = tracked_configs(stores, namespace, &target);
    let tracked_map: BTreeMap<String, String> =
        configs.iter().map(|(c, sum)| (c.key(), sum.clone())).collect();
    let template_hash = target.spec.as_ref().map(|s| pod_template_hash(&s.template)).unwrap_or_default();

    let routes = match routes {
        Ok(routes) => Some(routes),
        Err(RouterError::NotFound(_)) => None,
        Err(e) => return Err(ObserveError::Routes(e)),
    };
    let analysis = &canary.spec.analysis;
    let canary_readiness = deployment_readiness(&target, analysis.canary_ready_threshold.unwrap_or(100));
    let primary_readiness = match &primary {
        Some(p) => deployment_readiness(p, analysis.primary_ready_threshold.unwrap_or(100)),
        None => Readiness::NotReady(format!("{}-primary does not exist yet", target_name)),
    };
    let observed = Observed {
        generation: canary.metadata.generation,
        revision: revision(&template_hash, &tracked_map),
        tracked_configs: tracked_map,
        initialized: primary.is_some() && routes.is_some(),
        canary: canary_readiness,
        primary: primary_readiness,
        routes,
        operations: operations(canary),
        deleting: canary.metadata.deletion_timestamp.is_some(),
        provider,
    };
    Ok(Snapshot { observed, target, primary, selector, tracked: configs.into_keys().collect() })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;

    use crate::controller::stores::testing::{Objects, stores};

    fn canary(annotations: serde_json::Value) -> Canary {
        serde_json::from_value(json!({
            "apiVersion": "serin.dev/v1alpha1", "kind": "Canary",
            "metadata": {"name": "podinfo", "namespace": "test", "generation": 3, "annotations": annotations},
            "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                "service": {"port": 80}, "analysis": {"iterations": 3, "canaryReadyThreshold": 50}}
        }))
        .expect("canary")
    }

    fn deployment(name: &str, app: &str, ready: i32) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "test", "generation": 1},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": app}},
                "template": {"metadata": {"labels": {"app": app}}, "spec": {"containers": [{"name": "app", "image": "demo:1",
                    "envFrom": [{"configMapRef": {"name": "settings"}}, {"secretRef": {"name": "creds"}}, {"configMapRef": {"name": "ignored"}}]}]}}},
            "status": {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "availableReplicas": ready}
        }))
        .expect("deployment")
    }

    fn config_map(name: &str, value: &str, annotations: serde_json::Value) -> ConfigMap {
        serde_json::from_value(
            json!({"metadata": {"name": name, "namespace": "test", "annotations": annotations},
            "data": {"key": value}}),
        )
        .expect("configmap")
    }

    fn objects(setting: &str, ready: i32) -> Objects {
        Objects {
            deployments: vec![deployment("podinfo", "podinfo", ready), deployment("podinfo-primary", "podinfo-primary", 2)],
            config_maps: vec![
                config_map("settings", setting, json!({})),
                config_map("ignored", "x", json!({"flagger.app/config-tracking": "disabled"})),
            ],
            secrets: vec![serde_json::from_value(json!({"metadata": {"name": "creds", "namespace": "test"}, "data": {"token": "c2VjcmV0"}})).expect("secret")],
            ..Objects::default()
        }
    }

    #[test]
    fn observes_revision_configs_readiness_routes_and_operations() {
        let canary = canary(json!({"serin.dev/action": "promote"}));
        let snap = snapshot(&canary, &stores(objects("a", 1)), Ok(Routes::STABLE), Provider::Kubernetes)
            .expect("snapshot");
        let o = &snap.observed;
        assert_eq!(o.generation, Some(3));
        assert_eq!(
            o.tracked_configs.keys().cloned().collect::<Vec<_>>(),
            vec!["ConfigMap/settings", "Secret/creds"]
        );
        assert!(o.initialized);
        assert_eq!(o.routes, Some(Routes::STABLE));
        assert_eq!(o.canary, Readiness::Ready, "1 of 2 available meets canaryReadyThreshold 50");
        assert_eq!(o.primary, Readiness::Ready);
        assert!(o.operations.promote && !o.operations.abort);
        assert_eq!(snap.selector, SelectorLabel { key: "app".into(), value: "podinfo".into() });

        // A changed ConfigMap is a new revision; an opted-out one is not tracked at all.
        let changed = snapshot(&canary, &stores(objects("b", 1)), Ok(Routes::STABLE), Provider::Kubernetes)
            .expect("snapshot");
        assert_ne!(changed.observed.revision, o.revision);
        assert_eq!(changed.observed.tracked_configs.len(), 2);
    }

    #[test]
    fn missing_objects_and_router_failures() {
        let canary = canary(json!({}));
        let no_routes = snapshot(
            &canary,
            &stores(objects("a", 0)),
            Err(RouterError::NotFound("svc".into())),
            Provider::Kubernetes,
        )
        .expect("snapshot");
        assert!(!no_routes.observed.initialized);
        assert!(matches!(no_routes.observed.canary, Readiness::NotReady(_)));

        let mut only_target = objects("a", 2);
        only_target.deployments.truncate(1);
        let fresh = snapshot(&canary, &stores(only_target), Ok(Routes::STABLE), Provider::Kubernetes)
            .expect("snapshot");
        assert!(!fresh.observed.initialized);
        assert_eq!(fresh.observed.primary, Readiness::NotReady("podinfo-primary does not exist yet".into()));

        let err = snapshot(&canary, &stores(Objects::default()), Ok(Routes::STABLE), Provider::Kubernetes)
            .expect_err("no target");
        assert_eq!(err.to_string(), "target deployment test/podinfo not found");

        let api = RouterError::NoRouter(Provider::Gloo);
        assert!(matches!(
            snapshot(&canary, &stores(objects("a", 2)), Err(api), Provider::Kubernetes),
            Err(ObserveError::Routes(_))
        ));
    }

    #[test]
    fn canaries_using_maps_objects_back_to_canaries() {
        let mut with_status = canary(json!({}));
        with_status.status = Some(
            serde_json::from_value(json!({"trackedConfigs": {"ConfigMap/settings": "x"}})).expect("status"),
        );
        let s = stores(Objects { canaries: vec![with_status], ..Objects::default() });
        assert_eq!(s.canaries_using("test", "Deployment", "podinfo").len(), 1);
        assert_eq!(s.canaries_using("test", "Deployment", "podinfo-primary").len(), 1);
        assert_eq!(s.canaries_using("test", "ConfigMap", "settings").len(), 1);
        assert!(s.canaries_using("test", "ConfigMap", "other").is_empty());
        assert!(s.canaries_using("other", "Deployment", "podinfo").is_empty());
    }
}
