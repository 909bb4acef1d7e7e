//! Asynchronous delivery: the reconciler hands alerts to a bounded queue and moves on; a
//! background task sends them with retries and backoff, suppresses duplicates within a window,
//! and logs and counts failures. A slow or broken chat never delays a rollback.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::Notifier;
use super::message::Notification;
use crate::telemetry::metrics::ResultLabels;

/// Delivery tuning.
#[derive(Clone, Copy, Debug)]
pub struct DispatchConfig {
    /// Attempts per alert, the first included.
    pub attempts: u32,
    /// Wait before the first retry; doubles after each.
    pub backoff: Duration,
    /// The same alert to the same destination within this window is sent once.
    pub dedup_window: Duration,
    /// Alerts waiting to be sent; beyond it new alerts are dropped (and counted).
    pub queue: usize,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        Self {
            attempts: 4,
            backoff: Duration::from_secs(1),
            dedup_window: Duration::from_secs(600),
            queue: 1024,
        }
    }
}

struct Job {
    destination: String,
    notifier: Arc<dyn Notifier>,
    note: Notification,
}

/// Hands alerts to the background sender.
#[derive(Clone)]
pub struct Dispatcher {
    queue: mpsc::Sender<Job>,
    outcomes: Family<ResultLabels, Counter>,
}

impl Dispatcher {
    /// Starts the background sender; `outcomes` counts `sent`, `failed`, `suppressed`, `dropped`.
    pub fn start(config: DispatchConfig, outcomes: Family<ResultLabels, Counter>) -> Self {
        let (queue, jobs) = mpsc::channel(config.queue.max(1));
        tokio::spawn(run(config, jobs, outcomes.clone()));
        Self { queue, outcomes }
    }

    /// Queues `note` for `notifier`; `destination` identifies it for duplicate suppression
    /// (e.g. the AlertProvider's namespace/name). Never waits.
    pub fn send(&self, destination: &str, notifier: Arc<dyn Notifier>, note: Notification) {
        let job = Job { destination: destination.to_string(), notifier, note };
        if self.queue.try_send(job).is_err() {
            tracing::warn!(destination, "alert queue full or closed; alert dropped");
            count(&self.outcomes, "dropped");
        }
    }
}

fn count(outcomes: &Family<ResultLabels, Counter>, result: &str) {
    outcomes.get_or_create(&ResultLabels { result: result.into() }).inc();
}

fn key(job: &Job) -> u64 {
    let mut hasher = DefaultHasher::new();
    (&job.destination, &job.note.namespace, &job.note.name, &job.note.title, &job.note.message)
        .hash(&mut hasher);
    hasher.finish()
}

async fn run(config: DispatchConfig, mut jobs: mpsc::Receiver<Job>, outcomes: Family<ResultLabels, Counter>) {
    let mut recent: HashMap<u64, Instant> = HashMap::new();
    while let Some(job) = jobs.recv().await {
        let now = Instant::now();
        recent.retain(|_, sent| now.duration_since(*sent) < config.dedup_window);
        let key = key(&job);
        if recent.contains_key(&key) {
            count(&outcomes, "suppressed");
            continue;
        }
        recent.insert(key, now);
        // Each alert is sent on its own task, so one slow destination does not hold up others.
        let outcomes = outcomes.clone();
        tokio::spawn(async move {
            let mut wait = config.backoff;
            for attempt in 1..=config.attempts.max(1) {
                match job.notifier.send(&job.note).await {
                    Ok(()) => {
                        count(&outcomes, "sent");
                        return;
                    }
                    Err(e) if attempt < config.attempts => {
                        tracing::info!(destination = %job.destination, attempt, error = %e, "alert delivery failed; retrying");
                        tokio::time::sleep(wait).await;
                        wait *= 2;
                    }
                    Err(e) => {
                        tracing::warn!(destination = %job.destination, error = %e, canary = %job.note.subject(), "alert not delivered");
                        count(&outcomes, "failed");
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use axum::Router;
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::post;
    use serde_json::Value;

    use super::*;
    use crate::crd::AlertProviderType;
    use crate::crd::canary::AlertSeverity;
    use crate::notify::formats::Sender;
    use crate::notify::{Destination, HttpNotifier};

    /// Path, Authorization header and JSON body of one received alert.
    type Received = (String, Option<String>, Value);

    #[derive(Clone, Default)]
    struct Receiver {
        bodies: Arc<Mutex<Vec<Received>>>,
        failures_left: Arc<Mutex<u32>>,
    }

    async fn receive(
        State(rx): State<Receiver>,
        uri: axum::http::Uri,
        headers: HeaderMap,
        body: String,
    ) -> StatusCode {
        let mut left = rx.failures_left.lock().expect("lock");
        if *left > 0 {
            *left -= 1;
            return StatusCode::SERVICE_UNAVAILABLE;
        }
        let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).map(String::from);
        let value = serde_json::from_str(&body).unwrap_or(Value::Null);
        rx.bodies.lock().expect("lock").push((uri.path().to_string(), auth, value));
        StatusCode::OK
    }

    async fn start_receiver(failures: u32) -> (Receiver, String) {
        let rx = Receiver { failures_left: Arc::new(Mutex::new(failures)), ..Receiver::default() };
        let app = Router::new().route("/{*path}", post(receive)).with_state(rx.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        (rx, format!("http://{addr}"))
    }

    fn rollback_with_revert() -> Notification {
        Notification {
            name: "podinfo".into(),
            namespace: "test".into(),
            severity: AlertSeverity::Error,
            title: "Rolled back".into(),
            message: "Rolling back podinfo.test failed checks threshold reached 2".into(),
            fields: BTreeMap::from([("Revert commit".into(), "0a1b2c3".into())]),
            cluster: None,
        }
    }

    fn fast() -> DispatchConfig {
        DispatchConfig {
            attempts: 3,
            backoff: Duration::from_millis(10),
            dedup_window: Duration::from_secs(60),
            queue: 16,
        }
    }

    async fn wait_for(rx: &Receiver, n: usize) -> Vec<Received> {
        for _ in 0..200 {
            if rx.bodies.lock().expect("lock").len() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        rx.bodies.lock().expect("lock").clone()
    }

    fn notifier(kind: AlertProviderType, address: String, token: Option<&str>) -> Arc<dyn Notifier> {
        let destination = Destination {
            kind,
            address,
            token: token.map(String::from),
            proxy: None,
            sender: Sender::default(),
        };
        Arc::new(HttpNotifier::new(destination, Duration::from_secs(2)).expect("notifier"))
    }

    #[tokio::test]
    async fn delivers_each_provider_body_to_a_real_receiver_with_retries() {
        let (rx, base) = start_receiver(1).await;
        let outcomes = Family::<ResultLabels, Counter>::default();
        let dispatcher = Dispatcher::start(fast(), outcomes.clone());
        let cases = [
            (AlertProviderType::Slack, "/slack-hook", Some("xoxb-1")),
            (AlertProviderType::Discord, "/api/webhooks/1/abc", None),
            (AlertProviderType::Msteams, "/teams", None),
            (AlertProviderType::Webhook, "/generic", None),
        ];
        for (kind, path, token) in cases {
            dispatcher.send(path, notifier(kind, format!("{base}{path}"), token), rollback_with_revert());
        }
        let got = wait_for(&rx, cases.len()).await;
        assert_eq!(got.len(), cases.len(), "{got:?}");
        for (kind, path, token) in cases {
            let want_path =
                if kind == AlertProviderType::Discord { format!("{path}/slack") } else { path.to_string() };
            let (_, auth, body) = got.iter().find(|(p, _, _)| *p == want_path).expect("delivered");
            assert_eq!(
                body,
                &crate::notify::formats::body(kind, &Sender::default(), &rollback_with_revert()),
                "{kind:?}"
            );
            assert_eq!(auth.clone(), token.map(|t| format!("Bearer {t}")), "{kind:?}");
        }
        assert_eq!(outcomes.get_or_create(&ResultLabels { result: "sent".into() }).get(), 4);
    }

    #[tokio::test]
    async fn duplicates_within_the_window_are_sent_once() {
        let (rx, base) = start_receiver(0).await;
        let outcomes = Family::<ResultLabels, Counter>::default();
        let dispatcher = Dispatcher::start(fast(), outcomes.clone());
        let hook = notifier(AlertProviderType::Webhook, format!("{base}/hook"), None);
        for _ in 0..3 {
            dispatcher.send("ns/provider", hook.clone(), rollback_with_revert());
        }
        let mut other = rollback_with_revert();
        other.message = "another message".into();
        dispatcher.send("ns/provider", hook, other);
        let got = wait_for(&rx, 2).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(got.len(), 2);
        assert_eq!(outcomes.get_or_create(&ResultLabels { result: "suppressed".into() }).get(), 2);
    }

    struct Stuck;

    #[async_trait::async_trait]
    impl Notifier for Stuck {
        async fn send(&self, _: &Notification) -> Result<(), crate::notify::NotifyError> {
            std::future::pending().await
        }
    }

    #[tokio::test]
    async fn a_hanging_destination_never_blocks_the_caller_or_other_alerts() {
        let (rx, base) = start_receiver(0).await;
        let dispatcher = Dispatcher::start(fast(), Family::default());
        let send_both = async {
            dispatcher.send("stuck", Arc::new(Stuck), rollback_with_revert());
            dispatcher.send(
                "ok",
                notifier(AlertProviderType::Webhook, format!("{base}/ok"), None),
                rollback_with_revert(),
            );
        };
        tokio::time::timeout(Duration::from_secs(5), send_both).await.expect("send returned without waiting");
        assert_eq!(wait_for(&rx, 1).await.len(), 1, "the other alert went out");
    }

    #[tokio::test]
    async fn an_unreachable_destination_is_retried_then_counted() {
        let outcomes = Family::<ResultLabels, Counter>::default();
        let dispatcher = Dispatcher::start(fast(), outcomes.clone());
        // Port 9 on loopback: connection refused at once.
        dispatcher.send(
            "dead",
            notifier(AlertProviderType::Slack, "http://127.0.0.1:9/x".into(), None),
            rollback_with_revert(),
        );
        for _ in 0..500 {
            if outcomes.get_or_create(&ResultLabels { result: "failed".into() }).get() == 1 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("failure was not counted");
    }
}
