//! Everything a reconcile needs, shared by all reconciles: the client, caches, settings, and
//! every external system behind a trait so tests can swap in fakes.

use std::sync::Arc;

use kube::Client;
use tokio::sync::watch;

use super::shard::Shard;
use super::status::Stored;
use super::stores::Stores;
use crate::analysis::builtin::GatewayMetrics;
use crate::analysis::run::Backends;
use crate::crd::{Canary, CanaryStatus, Provider};
use crate::gitops::GitReverter;
use crate::notify::dispatch::Dispatcher;
use crate::notify::{Destination, HttpNotifier, Notifier, NotifyError};
use crate::rollout::admission::{self, Admission};
use crate::router::cache::RoutingCache;
use crate::router::{RouterError, TrafficRouter};
use crate::telemetry::metrics::Metrics;
use crate::webhook::WebhookCaller;

/// Controller-wide settings (from the command line).
#[derive(Clone, Debug)]
pub struct Settings {
    /// Router for canaries without `spec.provider`.
    pub default_provider: Provider,
    /// Prometheus for the builtin metrics and inline queries.
    pub metrics_server: Option<String>,
    /// Which metrics Gateway API canaries' builtins read.
    pub gateway_metrics: GatewayMetrics,
    /// Added to alerts as the "Cluster" field.
    pub cluster_name: Option<String>,
    /// At most this many canaries progress at once (`None`: no limit).
    pub max_concurrent_canaries: Option<usize>,
    /// AlertProvider for canaries without `analysis.alerts`.
    pub default_alert_provider: Option<AlertProviderKey>,
    /// Reconcile only the canaries of this shard (`None`: all).
    pub shard: Option<Shard>,
}

/// An AlertProvider named on the command line (`NAMESPACE/NAME`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertProviderKey {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl std::str::FromStr for AlertProviderKey {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.split_once('/') {
            Some((namespace, name)) if !namespace.is_empty() && !name.is_empty() && !name.contains('/') => {
                Ok(Self { namespace: namespace.into(), name: name.into() })
            }
            _ => Err(format!("expected NAMESPACE/NAME, got {text:?}")),
        }
    }
}

/// Canaries this replica let start a release, until they finish: with the cache, the set of
/// canaries in flight that `--max-concurrent-canaries` counts. It covers the time between the
/// decision and the cache showing the new phase, so two reconciles cannot both take the last slot.
#[derive(Default)]
pub struct Admitted(std::sync::Mutex<std::collections::BTreeSet<String>>);

impl Admitted {
    /// Decides for `key` (moving from `current` to `next`) under the lock. `in_flight` are the
    /// other canaries the cache shows progressing, `present` every canary in the cache.
    pub fn admit(
        &self,
        key: &str,
        current: Option<crate::crd::CanaryPhase>,
        next: Option<crate::crd::CanaryPhase>,
        mut in_flight: std::collections::BTreeSet<String>,
        present: &std::collections::BTreeSet<String>,
        limit: Option<usize>,
    ) -> Admission {
        let Ok(mut admitted) = self.0.lock() else { return Admission::Go };
        // Deleted canaries free their slot; so does this one when its own (fresh) status shows
        // it is not progressing.
        admitted.retain(|k| present.contains(k));
        if !current.is_some_and(admission::counts_against_limit) {
            admitted.remove(key);
        }
        in_flight.extend(admitted.iter().cloned());
        let answer = admission::admit(key, current, next, &in_flight, limit);
        if answer == Admission::Go {
            if next.is_some_and(admission::counts_against_limit) {
                admitted.insert(key.to_string());
            } else {
                admitted.remove(key);
            }
        }
        answer
    }
}

/// Picks the traffic router of a provider.
pub trait RouterFactory: Send + Sync {
    /// The router for `provider`.
    fn router(&self, provider: Provider) -> Result<Arc<dyn TrafficRouter>, RouterError>;
}

/// The routers Serin ships, on a kube client; with a cache, the routing objects they read
/// come from watches started on first use.
pub struct KubeRouters(pub Client, pub Option<Arc<RoutingCache>>);

impl RouterFactory for KubeRouters {
    fn router(&self, provider: Provider) -> Result<Arc<dyn TrafficRouter>, RouterError> {
        crate::router::for_provider_with(provider, self.0.clone(), self.1.clone())
    }
}

/// Builds the notifier of an AlertProvider's resolved destination.
pub trait NotifierFactory: Send + Sync {
    /// The notifier for `destination`.
    fn notifier(&self, destination: Destination) -> Result<Arc<dyn Notifier>, NotifyError>;
}

/// The notifiers Serin ships: JSON over HTTP, in each platform's format.
pub struct HttpNotifiers {
    /// Bound of each delivery attempt.
    pub timeout: std::time::Duration,
}

impl Default for HttpNotifiers {
    fn default() -> Self {
        Self { timeout: std::time::Duration::from_secs(10) }
    }
}

impl NotifierFactory for HttpNotifiers {
    fn notifier(&self, destination: Destination) -> Result<Arc<dyn Notifier>, NotifyError> {
        Ok(Arc::new(HttpNotifier::new(destination, self.timeout)?))
    }
}

/// Statuses this replica wrote that the Canary cache has not shown yet (`namespace/name`).
/// Status is written by the leader alone, so a cached Canary whose status differs from a
/// pending write is a cache that has not caught up with our own write: deciding from it would
/// repeat the last tick's effects. A write is forgotten once the cache shows it, so only
/// writes in flight are held (not one status per Canary), or after [`WRITE_ECHO_TIMEOUT`]
/// without it showing up (someone else wrote the status since): the cache is then trusted
/// again rather than blocking the Canary for ever.
#[derive(Default)]
pub struct WrittenStatus(std::sync::Mutex<std::collections::HashMap<String, Pending>>);

/// A status write not yet seen in the cache.
struct Pending {
    status: CanaryStatus,
    resource_version: Option<String>,
    at: std::time::Instant,
}

/// `namespace/name`, the key of the written-status record.
pub fn status_key(canary: &Canary) -> String {
    format!(
        "{}/{}",
        canary.metadata.namespace.as_deref().unwrap_or_default(),
        canary.metadata.name.as_deref().unwrap_or_default()
    )
}

/// How long a status write may take to show up in the cache before it is no longer waited for.
pub const WRITE_ECHO_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

impl WrittenStatus {
    /// Whether a cached Canary (its resourceVersion and status) lags behind what this replica
    /// wrote. The cache has caught up when it shows the resourceVersion of the write, or the
    /// status written (a later change by someone else to other fields carries it too).
    pub fn is_stale(&self, key: &str, version: Option<&str>, cached: Option<&CanaryStatus>) -> bool {
        self.is_stale_at(key, version, cached, std::time::Instant::now())
    }

    fn is_stale_at(
        &self,
        key: &str,
        version: Option<&str>,
        cached: Option<&CanaryStatus>,
        now: std::time::Instant,
    ) -> bool {
        let Ok(mut written) = self.0.lock() else { return false };
        let Some(pending) = written.get(key) else { return false };
        let echo = version.is_some() && pending.resource_version.as_deref() == version;
        if echo || Some(&pending.status) == cached {
            written.remove(key);
            return false;
        }
        if now.saturating_duration_since(pending.at) >= WRITE_ECHO_TIMEOUT {
            tracing::warn!(
                canary = key,
                "the cache did not show this replica's status write within {WRITE_ECHO_TIMEOUT:?}; \
                 trusting the cache again (was the status written by someone else?)"
            );
            written.remove(key);
            return false;
        }
        true
    }

    /// Records a write (the status as the API server stored it).
    pub fn record(&self, key: String, stored: Stored) {
        self.record_at(key, stored, std::time::Instant::now());
    }

    fn record_at(&self, key: String, stored: Stored, at: std::time::Instant) {
        if let Ok(mut written) = self.0.lock() {
            match stored.status {
                Some(status) => {
                    written.insert(key, Pending { status, resource_version: stored.resource_version, at })
                }
                None => written.remove(&key),
            };
        }
    }

    /// Whether `canary` is exactly our last status write (same resourceVersion) showing up
    /// in the watch, with a paced phase. Reconciling it could only compute the wait for the
    /// next tick, which the tick that wrote it already requeued, so it need not wake the
    /// Canary; the cache still takes it.
    pub fn is_paced_echo(&self, canary: &Canary) -> bool {
        let Some(version) = canary.metadata.resource_version.as_deref() else { return false };
        let Ok(written) = self.0.lock() else { return false };
        written.get(&status_key(canary)).is_some_and(|p| {
            p.resource_version.as_deref() == Some(version) && crate::rollout::paced(p.status.phase)
        })
    }

    /// Writes waiting to show up in the cache.
    #[cfg(test)]
    fn pending(&self) -> usize {
        self.0.lock().map(|w| w.len()).unwrap_or_default()
    }
}

/// Shared state of the reconciler.
pub struct Context {
    /// API client for writes.
    pub client: Client,
    /// Caches for reads.
    pub stores: Stores,
    /// Settings.
    pub settings: Settings,
    /// Prometheus metrics of the controller.
    pub metrics: Metrics,
    /// Kubernetes Events.
    pub recorder: super::events::EventRecorder,
    /// Traffic routers.
    pub routers: Arc<dyn RouterFactory>,
    /// Metric backends.
    pub backends: Arc<dyn Backends>,
    /// Webhooks.
    pub webhooks: Arc<dyn WebhookCaller>,
    /// Git reverts.
    pub git: Arc<dyn GitReverter>,
    /// Alert delivery.
    pub alerts: Dispatcher,
    /// Notifiers of AlertProviders.
    pub notifiers: Arc<dyn NotifierFactory>,
    /// `true` while this replica holds the leader lease.
    pub leader: watch::Receiver<bool>,
    /// Statuses this replica wrote, to detect stale cache reads.
    pub written: Arc<WrittenStatus>,
    /// Canaries admitted under `--max-concurrent-canaries`.
    pub admitted: Admitted,
}

#[cfg(test)]
mod written_status_tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::crd::{Canary, CanaryPhase};

    fn stored(status: &CanaryStatus, version: &str) -> Stored {
        Stored { status: Some(status.clone()), resource_version: Some(version.into()) }
    }

    fn canary(version: &str, status: &CanaryStatus) -> Canary {
        let mut c: Canary = serde_json::from_value(serde_json::json!({
            "apiVersion": "serin.dev/v1alpha1", "kind": "Canary",
            "metadata": {"name": "a", "namespace": "test", "resourceVersion": version},
            "spec": {
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                "service": {"port": 80},
                "analysis": {"interval": "1m", "threshold": 1, "stepWeight": 10},
            },
        }))
        .expect("canary");
        c.status = Some(status.clone());
        c
    }

    #[test]
    fn only_the_watch_echo_of_a_paced_write_is_an_echo() {
        let t0 = Instant::now();
        let written = WrittenStatus::default();
        let progressing = status(CanaryPhase::Progressing, 20);
        let succeeded = status(CanaryPhase::Succeeded, 0);
        assert!(!written.is_paced_echo(&canary("5", &progressing)), "nothing written");
        written.record_at("test/a".into(), stored(&progressing, "5"), t0);
        assert!(written.is_paced_echo(&canary("5", &progressing)), "our write coming back");
        assert!(!written.is_paced_echo(&canary("6", &progressing)), "a later change by anyone");
        assert!(!written.is_paced_echo(&canary("4", &progressing)), "an earlier version");
        written.record_at("test/a".into(), stored(&succeeded, "7"), t0);
        assert!(!written.is_paced_echo(&canary("7", &succeeded)), "settled phases react to their echo");
        written.record_at(
            "test/a".into(),
            Stored { status: Some(progressing.clone()), resource_version: None },
            t0,
        );
        assert!(!written.is_paced_echo(&canary("7", &progressing)), "no version recorded");
    }

    fn status(phase: CanaryPhase, weight: i32) -> CanaryStatus {
        CanaryStatus { phase: Some(phase), canary_weight: Some(weight), ..CanaryStatus::default() }
    }

    #[test]
    fn a_write_is_waited_for_until_the_cache_shows_it_then_forgotten() {
        let t0 = Instant::now();
        let written = WrittenStatus::default();
        let old = status(CanaryPhase::Progressing, 10);
        let new = status(CanaryPhase::Progressing, 20);
        assert!(
            !written.is_stale_at("test/a", Some("4"), Some(&old), t0),
            "nothing written: the cache rules"
        );
        written.record_at("test/a".into(), stored(&new, "5"), t0);
        // (cache shows version and status, seconds after the write, stale expected)
        let table = [
            (Some("4"), Some(&old), 1, true),
            (None, None, 2, true),
            (Some("5"), Some(&new), 3, false),
            (Some("4"), Some(&old), 4, false),
        ];
        for (version, cached, secs, stale) in table {
            let at = t0 + Duration::from_secs(secs);
            assert_eq!(written.is_stale_at("test/a", version, cached, at), stale, "at {secs} s");
        }
        assert_eq!(written.pending(), 0, "forgotten once seen");
        assert!(!written.is_stale_at("test/b", Some("4"), Some(&old), t0), "other canaries are not affected");
    }

    #[test]
    fn the_write_is_recognised_by_its_version_or_by_its_status() {
        let t0 = Instant::now();
        let old = status(CanaryPhase::Progressing, 10);
        let new = status(CanaryPhase::Progressing, 20);
        let mut changed_by_server = new.clone();
        changed_by_server.iterations = Some(0);
        // (cached version, cached status, stale expected)
        let table = [
            (Some("5"), Some(&changed_by_server), false), // our write, altered on the way in
            (Some("5"), None, false),                     // our write, whatever its status
            (Some("6"), Some(&new), false),               // a later change that kept our status
            (Some("6"), Some(&changed_by_server), true),  // neither: still waiting
            (Some("4"), Some(&old), true),                // the version before the write
            (None, Some(&old), true),                     // no version, old status
        ];
        for (version, cached, stale) in table {
            let written = WrittenStatus::default();
            written.record_at("test/a".into(), stored(&new, "5"), t0);
            assert_eq!(written.is_stale_at("test/a", version, cached, t0), stale, "{version:?} {cached:?}");
        }
        let unversioned = WrittenStatus::default();
        unversioned.record_at(
            "test/a".into(),
            Stored { status: Some(new.clone()), resource_version: None },
            t0,
        );
        assert!(
            unversioned.is_stale_at("test/a", None, Some(&old), t0),
            "no version on either side is no echo"
        );
    }

    #[test]
    fn a_write_that_never_shows_up_stops_blocking_after_the_timeout() {
        let t0 = Instant::now();
        let written = WrittenStatus::default();
        let theirs = status(CanaryPhase::Failed, 0);
        written.record_at("test/a".into(), stored(&status(CanaryPhase::Progressing, 20), "5"), t0);
        let just_before = t0 + WRITE_ECHO_TIMEOUT - Duration::from_millis(1);
        assert!(written.is_stale_at("test/a", Some("6"), Some(&theirs), just_before));
        assert!(!written.is_stale_at("test/a", Some("6"), Some(&theirs), t0 + WRITE_ECHO_TIMEOUT));
        assert_eq!(written.pending(), 0);
        // A write of no status (the object is gone) is not waited for.
        written.record_at("test/a".into(), Stored::default(), t0);
        assert!(!written.is_stale_at("test/a", Some("6"), Some(&theirs), t0));
    }
}
