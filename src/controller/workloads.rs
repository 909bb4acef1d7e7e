//! Applies the workload side of a plan: the primary Deployment and its HPA, the `-primary`
//! copies of tracked ConfigMaps and Secrets, the three Services, and the target's replicas.
//! Every write is idempotent: server-side apply with field manager `serin` for objects Serin
//! owns, a merge patch of `spec.replicas` on the target.

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use thiserror::Error;

use super::observe::Snapshot;
use super::stores::Stores;
use crate::crd::canary::AutoscalerKind;
use crate::crd::{Canary, Provider};
use crate::workload::autoscaler::primary_hpa;
use crate::workload::config_refs::ConfigKind;
use crate::workload::primary::{PrimaryError, PrimaryInputs, primary_deployment, primary_name};
use crate::workload::services::{Selects, canary_services};

/// Field manager of the objects Serin owns.
pub const FIELD_MANAGER: &str = "serin";

/// Why a workload write failed.
#[derive(Debug, Error)]
pub enum WorkloadError {
    /// The API refused or could not be reached.
    #[error("{action}: {source}")]
    Api {
        /// What was being written.
        action: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// The primary cannot be built from the target.
    #[error(transparent)]
    Primary(#[from] PrimaryError),
    /// The Canary has no UID yet (not stored by the API server).
    #[error("canary has no uid; cannot own objects")]
    NoOwner,
    /// An object could not be serialized.
    #[error("serializing {0}: {1}")]
    Json(String, serde_json::Error),
}

/// Writes workloads for one canary.
pub struct Workloads<'a> {
    client: &'a Client,
    stores: &'a Stores,
    canary: &'a Canary,
    namespace: &'a str,
    owner: OwnerReference,
}

impl<'a> Workloads<'a> {
    /// A writer for `canary`'s workloads.
    pub fn new(
        client: &'a Client,
        stores: &'a Stores,
        canary: &'a Canary,
        namespace: &'a str,
    ) -> Result<Self, WorkloadError> {
        let owner = canary.controller_owner_ref(&()).ok_or(WorkloadError::NoOwner)?;
        Ok(Self { client, stores, canary, namespace, owner })
    }

    async fn apply<K>(&self, object: &K) -> Result<(), WorkloadError>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + Serialize
            + DeserializeOwned
            + Clone
            + std::fmt::Debug,
    {
        let name = object.meta().name.clone().unwrap_or_default();
        let what = format!("{} {}/{name}", K::kind(&()), self.namespace);
        let mut body = serde_json::to_value(object).map_err(|e| WorkloadError::Json(what.clone(), e))?;
        if let Some(map) = body.as_object_mut() {
            map.insert("apiVersion".into(), json!(K::api_version(&())));
            map.insert("kind".into(), json!(K::kind(&())));
            map.remove("status");
        }
        let api: Api<K> = Api::namespaced(self.client.clone(), self.namespace);
        api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&body))
            .await
            .map(|_| ())
            .map_err(|source| WorkloadError::Api { action: format!("applying {what}"), source })
    }

    /// Creates what the canary needs: Services (always re-applied), and the primary with its
    /// configs and HPA when it does not exist yet. An existing primary is never overwritten
    /// here: it runs the promoted version.
    pub async fn initialize(&self, snapshot: &Snapshot, provider: Provider) -> Result<(), WorkloadError> {
        let containers = snapshot
            .target
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .map(|p| p.containers.clone())
            .unwrap_or_default();
        // The kubernetes router owns the apex selector (it is the route); other routers leave
        // the apex on the primary.
        let apex = if provider == Provider::Kubernetes { None } else { Some(Selects::Primary) };
        let services = canary_services(
            &self.canary.spec,
            self.namespace,
            &self.owner,
            &snapshot.selector,
            &containers,
            apex,
        );
        for service in [&services.apex, &services.primary, &services.canary] {
            self.apply::<Service>(service).await?;
        }
        if snapshot.primary.is_none() {
            self.write_primary(snapshot).await?;
        }
        Ok(())
    }

    /// Copies the target's pod template and tracked configs to the primary.
    pub async fn promote(&self, snapshot: &Snapshot) -> Result<(), WorkloadError> {
        self.write_primary(snapshot).await
    }

    async fn write_primary(&self, snapshot: &Snapshot) -> Result<(), WorkloadError> {
        self.copy_configs(snapshot).await?;
        let hpa = self.primary_hpa().await?;
        let replicas = match &hpa {
            Some(_) => None,
            None => Some(self.promoted_replicas(snapshot)),
        };
        let inputs = PrimaryInputs {
            owner: self.owner.clone(),
            revision: &snapshot.observed.revision,
            tracked: &snapshot.tracked,
            replicas,
        };
        self.apply(&primary_deployment(&snapshot.target, &inputs)?).await?;
        if let Some(hpa) = hpa {
            self.apply(&hpa).await?;
        }
        Ok(())
    }

    /// Replicas for the primary without an autoscaler: the target's own when it is scaled up,
    /// else the primary's current count, else 1.
    fn promoted_replicas(&self, snapshot: &Snapshot) -> i32 {
        let target = snapshot.target.spec.as_ref().and_then(|s| s.replicas).filter(|r| *r > 0);
        let primary = snapshot
            .primary
            .as_ref()
            .and_then(|p| p.spec.as_ref())
            .and_then(|s| s.replicas)
            .filter(|r| *r > 0);
        target.or(primary).unwrap_or(1)
    }

    async fn copy_configs(&self, snapshot: &Snapshot) -> Result<(), WorkloadError> {
        for config in &snapshot.tracked {
            let metadata = ObjectMeta {
                name: Some(primary_name(&config.name)),
                namespace: Some(self.namespace.to_string()),
                owner_references: Some(vec![self.owner.clone()]),
                ..ObjectMeta::default()
            };
            match config.kind {
                ConfigKind::ConfigMap => {
                    if let Some(cm) = self.stores.config_map(self.namespace, &config.name) {
                        let copy = ConfigMap {
                            metadata,
                            data: cm.data.clone(),
                            binary_data: cm.binary_data.clone(),
                            immutable: None,
                        };
                        self.apply(&copy).await?;
                    }
                }
                ConfigKind::Secret => {
                    if let Some(secret) = self.stores.secret(self.namespace, &config.name) {
                        let copy = Secret {
                            metadata,
                            data: secret.data.clone(),
                            type_: secret.type_.clone(),
                            immutable: None,
                            string_data: None,
                        };
                        self.apply(&copy).await?;
                    }
                }
            }
        }
        Ok(())
    }

    /// The target's HorizontalPodAutoscaler (`autoscaling/v2`), when the canary names one.
    /// KEDA ScaledObjects are not copied yet; with one, the primary keeps explicit replicas.
    async fn target_hpa(&self) -> Result<Option<HorizontalPodAutoscaler>, WorkloadError> {
        let Some(reference) = &self.canary.spec.autoscaler_ref else { return Ok(None) };
        if reference.kind != AutoscalerKind::HorizontalPodAutoscaler {
            return Ok(None);
        }
        let api: Api<HorizontalPodAutoscaler> = Api::namespaced(self.client.clone(), self.namespace);
        api.get_opt(&reference.name).await.map_err(|source| WorkloadError::Api {
            action: format!("reading HorizontalPodAutoscaler {}/{}", self.namespace, reference.name),
            source,
        })
    }

    /// The primary's copy of the target's HPA.
    async fn primary_hpa(&self) -> Result<Option<HorizontalPodAutoscaler>, WorkloadError> {
        let overrides =
            self.canary.spec.autoscaler_ref.as_ref().and_then(|r| r.primary_scaler_replicas.as_ref());
        let primary = primary_name(&self.canary.spec.target_ref.name);
        Ok(self.target_hpa().await?.and_then(|hpa| primary_hpa(&hpa, &primary, &self.owner, overrides)))
    }

    /// Sets the target's replica count.
    pub async fn scale_target(&self, replicas: i32) -> Result<(), WorkloadError> {
        let name = &self.canary.spec.target_ref.name;
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), self.namespace);
        let params = PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..PatchParams::default() };
        api.patch(name, &params, &Patch::Merge(json!({"spec": {"replicas": replicas}})))
            .await
            .map(|_| ())
            .map_err(|source| WorkloadError::Api {
                action: format!("scaling Deployment {}/{name} to {replicas}", self.namespace),
                source,
            })
    }

    /// Replicas for a target scaled up for analysis: the HPA's minimum, else the primary's
    /// count, else 1.
    pub async fn scale_up_replicas(&self, snapshot: &Snapshot) -> Result<i32, WorkloadError> {
        if let Some(min) = self.target_hpa().await?.and_then(|h| h.spec).and_then(|s| s.min_replicas) {
            return Ok(min.max(1));
        }
        Ok(self.promoted_replicas(snapshot))
    }
}

/// Adds `finalizer` to the Canary unless present (merge patch of the whole list).
pub async fn add_finalizer(client: &Client, canary: &Canary, finalizer: &str) -> Result<(), WorkloadError> {
    set_finalizers(client, canary, |list| {
        if !list.iter().any(|f| f == finalizer) {
            list.push(finalizer.to_string());
        }
    })
    .await
}

/// Removes `finalizer` from the Canary.
pub async fn remove_finalizer(
    client: &Client,
    canary: &Canary,
    finalizer: &str,
) -> Result<(), WorkloadError> {
    set_finalizers(client, canary, |list| list.retain(|f| f != finalizer)).await
}

async fn set_finalizers(
    client: &Client,
    canary: &Canary,
    change: impl FnOnce(&mut Vec<String>),
) -> Result<(), WorkloadError> {
    let namespace = canary.metadata.namespace.clone().unwrap_or_default();
    let name = canary.metadata.name.clone().unwrap_or_default();
    let mut list = canary.metadata.finalizers.clone().unwrap_or_default();
    let before = list.clone();
    change(&mut list);
    if list == before {
        return Ok(());
    }
    // The resourceVersion makes this a compare-and-swap: a concurrent change to the list fails
    // with 409 instead of being overwritten.
    let patch =
        json!({"metadata": {"finalizers": list, "resourceVersion": canary.metadata.resource_version}});
    let api: Api<Canary> = Api::namespaced(client.clone(), &namespace);
    api.patch(&name, &PatchParams::default(), &Patch::Merge(patch)).await.map(|_| ()).map_err(|source| {
        WorkloadError::Api { action: format!("updating finalizers of canary {namespace}/{name}"), source }
    })
}
