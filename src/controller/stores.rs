//! The reflector caches the controller reads from: Canaries, Deployments, ConfigMaps, Secrets,
//! MetricTemplates and AlertProviders.
//!
//! Live reads that remain (the reconciler tests in `controller::tests` assert them call by
//! call):
//! - **not per tick any more**: the router's `get_routes` reads the routing object (the apex
//!   Service for `kubernetes`; the HTTPRoute, VirtualService, TrafficSplit, Ingress, … of the
//!   other routers) through `router::cache::RoutingCache`: a watch per kind, started on the
//!   first successful live read of that kind, serving reads once listed. A read goes live only
//!   while the kind's cache is starting, for an object it does not hold yet, or right after
//!   Serin wrote the object until the watch shows that write.
//! - **only inside effects** (initialisation, a new revision, promotion, deletion): the
//!   target's HorizontalPodAutoscaler (`Workloads::target_hpa`), read when the primary is
//!   written and when the target is scaled up; and, on rollback with `gitops`, the Flux
//!   Kustomization / GitRepository or Argo CD Application that locate the Git source.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Resource;
use kube::runtime::reflector::{ObjectRef, Store};

use super::index::CanaryIndex;
use crate::crd::{AlertProvider, Canary, MetricTemplate};

/// Read-only views of the watched objects.
#[derive(Clone)]
pub struct Stores {
    /// Canaries.
    pub canaries: Store<Canary>,
    /// Deployments (targets and primaries).
    pub deployments: Store<Deployment>,
    /// ConfigMaps (tracked configs).
    pub config_maps: Store<ConfigMap>,
    /// Secrets (tracked configs and credentials).
    pub secrets: Store<Secret>,
    /// MetricTemplates.
    pub metric_templates: Store<MetricTemplate>,
    /// AlertProviders.
    pub alert_providers: Store<AlertProvider>,
    /// Which Canaries use which Deployments and configs, fed by the Canary watch.
    pub index: CanaryIndex,
}

fn get<K>(store: &Store<K>, namespace: &str, name: &str) -> Option<Arc<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    store.get(&ObjectRef::new(name).within(namespace))
}

impl Stores {
    /// A Deployment.
    pub fn deployment(&self, namespace: &str, name: &str) -> Option<Arc<Deployment>> {
        get(&self.deployments, namespace, name)
    }

    /// A ConfigMap.
    pub fn config_map(&self, namespace: &str, name: &str) -> Option<Arc<ConfigMap>> {
        get(&self.config_maps, namespace, name)
    }

    /// A Secret.
    pub fn secret(&self, namespace: &str, name: &str) -> Option<Arc<Secret>> {
        get(&self.secrets, namespace, name)
    }

    /// A MetricTemplate.
    pub fn metric_template(&self, namespace: &str, name: &str) -> Option<Arc<MetricTemplate>> {
        get(&self.metric_templates, namespace, name)
    }

    /// An AlertProvider.
    pub fn alert_provider(&self, namespace: &str, name: &str) -> Option<Arc<AlertProvider>> {
        get(&self.alert_providers, namespace, name)
    }

    /// The Canaries whose target, primary or tracked configs include `kind/name` in
    /// `namespace`; what a change of that object must reconcile (looked up in [`Self::index`]).
    pub fn canaries_using(&self, namespace: &str, kind: &str, name: &str) -> Vec<ObjectRef<Canary>> {
        self.index.canaries_using(namespace, kind, name)
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Stores filled from literal objects, for tests of code that reads caches.

    use kube::runtime::reflector::store::Writer;
    use kube::runtime::watcher;

    use super::*;

    fn store<K>(objects: Vec<K>) -> Store<K>
    where
        K: Resource<DynamicType = ()> + Clone + 'static,
    {
        let mut writer = Writer::default();
        for object in objects {
            writer.apply_watcher_event(&watcher::Event::Apply(object));
        }
        writer.as_reader()
    }

    /// Objects to put in the stores.
    #[derive(Default)]
    pub struct Objects {
        pub canaries: Vec<Canary>,
        pub deployments: Vec<Deployment>,
        pub config_maps: Vec<ConfigMap>,
        pub secrets: Vec<Secret>,
        pub metric_templates: Vec<MetricTemplate>,
        pub alert_providers: Vec<AlertProvider>,
    }

    /// Stores holding exactly `objects`.
    pub fn stores(objects: Objects) -> Stores {
        let index = CanaryIndex::default();
        for canary in &objects.canaries {
            index.apply(&watcher::Event::Apply(canary.clone()));
        }
        Stores {
            index,
            canaries: store(objects.canaries),
            deployments: store(objects.deployments),
            config_maps: store(objects.config_maps),
            secrets: store(objects.secrets),
            metric_templates: store(objects.metric_templates),
            alert_providers: store(objects.alert_providers),
        }
    }
}
