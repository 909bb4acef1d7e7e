//! In-memory stand-ins for every trait the reconciler's [`Context`] holds, and a builder that
//! wires them with a [`MockApi`] client and caches filled from literal objects.

use std::sync::{Arc, Mutex};

use crate::controller::events::{EventRecorder, Reporter};
use async_trait::async_trait;
use k8s_openapi::api::apps::v1::Deployment;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use super::apiserver::MockApi;
use crate::analysis::builtin::GatewayMetrics;
use crate::analysis::provider::{MetricProvider, ProviderError, QueryOutcome, RangeOutcome, RangeWindow};
use crate::analysis::run::{Backend, Backends};
use crate::controller::context::{Context, KubeRouters, NotifierFactory, Settings};
use crate::controller::stores::testing::{Objects, stores};
use crate::crd::Provider;
use crate::gitops::{GitOpsError, GitReverter, RevertOutcome, RevertRequest};
use crate::notify::dispatch::{DispatchConfig, Dispatcher};
use crate::notify::message::Notification;
use crate::notify::{Destination, Notifier, NotifyError};
use crate::telemetry::metrics::Metrics;
use crate::webhook::FakeCaller;

/// Answers every instant query with one value (settable), and records the queries.
#[derive(Default)]
pub struct FakeMetrics {
    value: Mutex<f64>,
    queries: Mutex<Vec<String>>,
}

impl FakeMetrics {
    /// Every query answers `value` from now on.
    pub fn set(&self, value: f64) {
        *self.value.lock().expect("lock") = value;
    }

    /// The queries run so far.
    pub fn queries(&self) -> Vec<String> {
        self.queries.lock().expect("lock").clone()
    }
}

#[async_trait]
impl MetricProvider for FakeMetrics {
    async fn query_at(&self, query: &str, _: Option<i64>) -> Result<QueryOutcome, ProviderError> {
        self.queries.lock().expect("lock").push(query.to_string());
        Ok(QueryOutcome::Value(*self.value.lock().expect("lock")))
    }
    async fn query_range(&self, _: &str, _: RangeWindow) -> Result<RangeOutcome, ProviderError> {
        Ok(RangeOutcome::NoData)
    }
    async fn health(&self) -> Result<(), ProviderError> {
        Ok(())
    }
}

/// Every backend is the one [`FakeMetrics`].
pub struct FakeBackends(pub Arc<FakeMetrics>);

#[async_trait]
impl Backends for FakeBackends {
    async fn provider(&self, _: &Backend) -> Result<Arc<dyn MetricProvider>, ProviderError> {
        Ok(self.0.clone())
    }
}

/// Records revert requests and answers with a pushed commit.
#[derive(Default)]
pub struct FakeReverter {
    requests: Mutex<Vec<RevertRequest>>,
}

/// SHA the fake reverter "pushes".
pub const REVERT_SHA: &str = "5e21aa7c0ffee0000000000000000000000000aa";

impl FakeReverter {
    /// The requests so far.
    pub fn requests(&self) -> Vec<RevertRequest> {
        self.requests.lock().expect("lock").clone()
    }
}

#[async_trait]
impl GitReverter for FakeReverter {
    async fn revert(&self, request: RevertRequest) -> Result<RevertOutcome, GitOpsError> {
        let reverted = request.failed.commit.iter().cloned().collect();
        self.requests.lock().expect("lock").push(request);
        Ok(RevertOutcome::Pushed {
            sha: REVERT_SHA.into(),
            reverted,
            kind: Some(crate::gitops::CommitKind::Revert),
        })
    }
}

/// Records every alert delivered, with the destination's address.
#[derive(Default)]
pub struct FakeNotifiers {
    sent: Arc<Mutex<Vec<(String, Notification)>>>,
}

struct RecordingNotifier {
    address: String,
    sent: Arc<Mutex<Vec<(String, Notification)>>>,
}

#[async_trait]
impl Notifier for RecordingNotifier {
    async fn send(&self, note: &Notification) -> Result<(), NotifyError> {
        self.sent.lock().expect("lock").push((self.address.clone(), note.clone()));
        Ok(())
    }
}

impl NotifierFactory for FakeNotifiers {
    fn notifier(&self, destination: Destination) -> Result<Arc<dyn Notifier>, NotifyError> {
        Ok(Arc::new(RecordingNotifier { address: destination.address, sent: self.sent.clone() }))
    }
}

impl FakeNotifiers {
    /// Waits (up to two seconds: delivery is asynchronous) until `count` alerts arrived.
    pub async fn wait_for(&self, count: usize) -> Vec<(String, Notification)> {
        for _ in 0..200 {
            let sent = self.sent.lock().expect("lock").clone();
            if sent.len() >= count {
                return sent;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        self.sent.lock().expect("lock").clone()
    }
}

/// The fakes of one test, shared by every reconcile of it.
pub struct World {
    /// The API.
    pub api: MockApi,
    /// Metric answers.
    pub metrics: Arc<FakeMetrics>,
    /// Webhook answers.
    pub webhooks: Arc<FakeCaller>,
    /// Git reverts.
    pub git: Arc<FakeReverter>,
    /// Alerts.
    pub notifiers: Arc<FakeNotifiers>,
    dispatcher: Dispatcher,
}

impl World {
    /// A fresh mock API and fakes (metrics answer 100 until told otherwise).
    pub fn new() -> Self {
        let metrics = Arc::new(FakeMetrics::default());
        metrics.set(100.0);
        let dispatch = DispatchConfig {
            attempts: 1,
            backoff: std::time::Duration::from_millis(1),
            ..Default::default()
        };
        World {
            api: MockApi::start(),
            metrics,
            webhooks: Arc::new(FakeCaller::new()),
            git: Arc::new(FakeReverter::default()),
            notifiers: Arc::new(FakeNotifiers::default()),
            dispatcher: Dispatcher::start(dispatch, Default::default()),
        }
    }

    /// A Context as `serin controller` builds it, on the mock API and the fakes, with caches
    /// holding exactly `objects` (a fresh Context per reconcile is a controller restart: only
    /// the Canary's status carries over).
    pub fn context(&self, objects: Objects) -> Arc<Context> {
        let client = self.api.client.clone();
        let reporter = Reporter { controller: "serin".into(), instance: None };
        Arc::new(Context {
            client: client.clone(),
            stores: stores(objects),
            settings: Settings {
                default_provider: Provider::Kubernetes,
                metrics_server: Some("http://prometheus:9090".into()),
                gateway_metrics: GatewayMetrics::default(),
                cluster_name: None,
                max_concurrent_canaries: None,
                default_alert_provider: None,
                shard: None,
            },
            metrics: Metrics::register(&mut Registry::default()),
            recorder: EventRecorder::new(client.clone(), reporter),
            routers: Arc::new(KubeRouters(client, None)),
            backends: Arc::new(FakeBackends(self.metrics.clone())),
            webhooks: self.webhooks.clone(),
            git: self.git.clone(),
            alerts: self.dispatcher.clone(),
            notifiers: self.notifiers.clone(),
            leader: watch::channel(true).1,
            written: Default::default(),
            admitted: Default::default(),
        })
    }

    /// A Deployment as the mock API stores it, with the status of a finished rollout of its
    /// replicas (what the cache shows once the Deployment controller is done).
    pub fn rolled_out(&self, name: &str) -> Deployment {
        let path = format!("/apis/apps/v1/namespaces/test/deployments/{name}");
        let mut object = self.api.get(&path).unwrap_or_else(|| panic!("{path} was never written"));
        let replicas = object["spec"]["replicas"].as_i64().unwrap_or(1);
        object["metadata"]["generation"] = 1.into();
        object["status"] = serde_json::json!({"observedGeneration": 1, "replicas": replicas,
            "updatedReplicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas});
        serde_json::from_value(object).expect("deployment")
    }
}

/// The names of the webhooks called so far, in order.
pub fn hook_names(world: &World) -> Vec<String> {
    world.webhooks.calls().into_iter().map(|c| c.name).collect()
}
