//! `serin controller`: starts the caches, leader election, the metrics and health server, and
//! the kube-runtime Controller on Canaries. Target Deployments and tracked ConfigMaps/Secrets
//! are watched and mapped back to their Canaries, so a new revision is noticed at once.

use std::fmt::Debug;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use prometheus_client::registry::Registry;
use serde::de::DeserializeOwned;
use thiserror::Error;
use tokio::sync::watch;

use super::backends::PrometheusBackends;
use super::context::{Context, HttpNotifiers, KubeRouters, Settings, WrittenStatus};
use super::events::{EventRecorder, Reporter};
use super::index::CanaryIndex;
use super::reconcile::{error_policy, reconcile};
use super::stores::Stores;
use crate::crd::{AlertProvider, Canary, MetricTemplate};
use crate::gitops::{Git2Reverter, ReverterConfig};
use crate::notify::dispatch::{DispatchConfig, Dispatcher};
use crate::telemetry::metrics::Metrics;
use crate::telemetry::server::{self, Health, Role, ServerState};
use crate::webhook::HttpCaller;

/// How the controller runs.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Watch one namespace, or all.
    pub namespace: Option<String>,
    /// Reconcile settings.
    pub settings: Settings,
    /// Address of `/metrics`, `/healthz`, `/readyz`.
    pub listen: SocketAddr,
    /// Leader election: `Some((lease namespace, identity))`, or `None` to act at once (one replica).
    pub leader_election: Option<(String, String)>,
    /// Directory for cached Git clones.
    pub git_cache_dir: Option<PathBuf>,
    /// Canaries reconciled at once (`--workers`).
    pub workers: u16,
}

/// Why the controller could not start or stopped.
#[derive(Debug, Error)]
pub enum RunError {
    /// The metrics server could not bind.
    #[error("listening on {0}: {1}")]
    Listen(SocketAddr, std::io::Error),
    /// Leader election could not start.
    #[error("leader election: {0}")]
    Lease(String),
    /// The webhook client could not be built.
    #[error("webhook client: {0}")]
    Webhooks(String),
    /// The Serin CRDs are not installed.
    #[error("the Canary CRD is not installed (kubectl apply -f crds/): {0}")]
    CrdMissing(kube::Error),
}

fn api<K>(client: &Client, namespace: &Option<String>) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// A cache and the stream that keeps it filled (poll it, or hand it to the Controller).
fn cached<K>(api: Api<K>) -> (Store<K>, impl Stream<Item = Result<K, watcher::Error>> + Send + 'static)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    cached_with(api, |_| {})
}

/// [`cached`], calling `inspect` with each watch event before the cache applies it.
fn cached_with<K>(
    api: Api<K>,
    inspect: impl Fn(&watcher::Event<K>) + Send + 'static,
) -> (Store<K>, impl Stream<Item = Result<K, watcher::Error>> + Send + 'static)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    // managedFields are never read from the caches and are often the larger part of an object.
    let events = watcher(api, watcher::Config::default())
        .modify(|o| o.meta_mut().managed_fields = None)
        .inspect_ok(inspect);
    let stream = reflector::reflector(writer, events).default_backoff().touched_objects();
    (reader, stream)
}

/// Fires whenever this replica becomes leader, so it picks up every Canary at once.
fn leadership_gained(leader: watch::Receiver<bool>) -> impl Stream<Item = ()> + Send + 'static {
    futures::stream::unfold(leader, |mut rx| async move {
        loop {
            if rx.changed().await.is_err() {
                return None;
            }
            if *rx.borrow_and_update() {
                return Some(((), rx));
            }
        }
    })
}

/// Runs the controller until SIGTERM or Ctrl-C.
pub async fn run(client: Client, config: RunConfig) -> Result<(), RunError> {
    // Fail fast with an install hint when the CRDs are missing.
    let canaries: Api<Canary> = api(&client, &config.namespace);
    canaries.list(&kube::api::ListParams::default().limit(1)).await.map_err(RunError::CrdMissing)?;

    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    let health = Arc::new(Health::default());

    let index = CanaryIndex::default();
    let (canary_store, canary_stream) = {
        let index = index.clone();
        cached_with(canaries, move |event| index.apply(event))
    };
    let (deployments, deployment_stream) = cached::<Deployment>(api(&client, &config.namespace));
    let (config_maps, config_map_stream) = cached::<ConfigMap>(api(&client, &config.namespace));
    let (secrets, secret_stream) = cached::<Secret>(api(&client, &config.namespace));
    let (metric_templates, template_stream) = cached::<MetricTemplate>(api(&client, &config.namespace));
    let (alert_providers, provider_stream) = cached::<AlertProvider>(api(&client, &config.namespace));
    tokio::spawn(template_stream.for_each(|_| async {}));
    tokio::spawn(provider_stream.for_each(|_| async {}));
    let stores = Stores {
        canaries: canary_store.clone(),
        deployments,
        config_maps,
        secrets,
        metric_templates,
        alert_providers,
        index,
    };
    {
        let stores = stores.clone();
        let health = health.clone();
        tokio::spawn(async move {
            let ready = futures::join!(
                stores.canaries.wait_until_ready(),
                stores.deployments.wait_until_ready(),
                stores.config_maps.wait_until_ready(),
                stores.secrets.wait_until_ready(),
                stores.metric_templates.wait_until_ready(),
                stores.alert_providers.wait_until_ready(),
            );
            if ready.0.is_ok() && ready.1.is_ok() {
                health.set_synced();
            }
        });
    }

    // Leadership: standbys keep caches warm and act on nothing.
    let leader = match &config.leader_election {
        Some((namespace, identity)) => {
            let lease = super::shard::lease_name(config.settings.shard);
            let manager = kube_lease_manager::LeaseManagerBuilder::new(client.clone(), &lease)
                .with_namespace(namespace)
                .with_identity(identity)
                .with_duration(15)
                .with_grace(5)
                .build()
                .await
                .map_err(|e| RunError::Lease(e.to_string()))?;
            let (leader, _task) = manager.watch().await;
            leader
        }
        None => watch::channel(true).1,
    };
    {
        let health = health.clone();
        let mut leader = leader.clone();
        tokio::spawn(async move {
            loop {
                let role = if *leader.borrow_and_update() { Role::Leader } else { Role::Standby };
                health.set_role(role);
                tracing::info!(?role, "leadership");
                if leader.changed().await.is_err() {
                    break;
                }
            }
        });
    }

    let webhooks = HttpCaller::new().map_err(|e| RunError::Webhooks(e.to_string()))?.with_metrics(&metrics);
    let reporter = Reporter {
        controller: "serin".into(),
        instance: config.leader_election.as_ref().map(|(_, id)| id.clone()),
    };
    let written = Arc::new(WrittenStatus::default());
    let ctx = Arc::new(Context {
        client: client.clone(),
        stores: stores.clone(),
        settings: config.settings.clone(),
        metrics: metrics.clone(),
        recorder: EventRecorder::new(client.clone(), reporter),
        routers: Arc::new(KubeRouters(client.clone(), Some(crate::router::cache::RoutingCache::new()))),
        backends: Arc::new(PrometheusBackends::new(stores.clone(), config.settings.metrics_server.clone())),
        webhooks: Arc::new(webhooks),
        git: Arc::new(Git2Reverter::new(ReverterConfig {
            cache_dir: config.git_cache_dir.clone(),
            ..ReverterConfig::default()
        })),
        alerts: Dispatcher::start(DispatchConfig::default(), metrics.alerts.clone()),
        notifiers: Arc::new(HttpNotifiers::default()),
        leader: leader.clone(),
        written: written.clone(),
        admitted: Default::default(),
    });

    let listener =
        tokio::net::TcpListener::bind(config.listen).await.map_err(|e| RunError::Listen(config.listen, e))?;
    let state = ServerState { registry: Arc::new(registry), health: health.clone() };
    let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(server::serve(listener, state, async {
        let _ = server_stopped.await;
    }));

    let by_deployment = {
        let stores = stores.clone();
        move |d: Deployment| {
            stores.canaries_using(&d.namespace().unwrap_or_default(), "Deployment", &d.name_any())
        }
    };
    let by_config_map = {
        let stores = stores.clone();
        move |c: ConfigMap| {
            stores.canaries_using(&c.namespace().unwrap_or_default(), "ConfigMap", &c.name_any())
        }
    };
    let by_secret = {
        let stores = stores.clone();
        move |s: Secret| stores.canaries_using(&s.namespace().unwrap_or_default(), "Secret", &s.name_any())
    };

    // The watch event of a paced tick's own status write wakes nothing: the tick requeued
    // itself for its next due time (the cache still applies the event).
    let canary_triggers = {
        let written = written.clone();
        canary_stream.try_filter(move |canary| futures::future::ready(!written.is_paced_echo(canary)))
    };
    Controller::for_stream(canary_triggers, canary_store)
        .with_config(kube::runtime::controller::Config::default().concurrency(config.workers))
        .watches_stream(deployment_stream, by_deployment)
        .watches_stream(config_map_stream, by_config_map)
        .watches_stream(secret_stream, by_secret)
        .reconcile_all_on(leadership_gained(leader))
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "reconcile did not complete");
            }
        })
        .await;

    tracing::info!("shutting down");
    let _ = stop_server.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    Ok(())
}
