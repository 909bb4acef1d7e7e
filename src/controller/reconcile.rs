//! One reconcile of one Canary, reading like a table of contents:
//! observe → needs → gather → decide → apply → write status.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::controller::Action;
use thiserror::Error;
use tracing::Instrument;

use super::context::{Context, status_key};
use super::effects::{Apply, EffectError, FINALIZER};
use super::gather::gather;
use super::observe::{self, ObserveError};
use super::status;
use super::workloads::{WorkloadError, add_finalizer};
use crate::crd::validation::validate_canary;
use crate::crd::{Canary, CanaryPhase, CanaryStatus};
use crate::rollout;
use crate::rollout::admission::{Admission, counts_against_limit};
use crate::router::{RouteContext, RouterError};
use crate::telemetry::metrics::{AnalysisLabels, CategoryLabels};
use crate::workload::primary::selector_label;

/// Why a reconcile failed; it is retried with backoff.
#[derive(Debug, Error)]
pub enum ReconcileError {
    /// A cluster change of the plan failed.
    #[error(transparent)]
    Effect(#[from] EffectError),
    /// The status could not be written.
    #[error("writing status: {0}")]
    Status(status::StatusError),
    /// The finalizer could not be added.
    #[error(transparent)]
    Finalizer(WorkloadError),
}

impl ReconcileError {
    /// A short label for metrics.
    pub fn category(&self) -> &'static str {
        match self {
            ReconcileError::Effect(e) => e.category(),
            ReconcileError::Status(_) => "status",
            ReconcileError::Finalizer(_) => "finalizer",
        }
    }
}

fn reason_of(error: &ObserveError) -> &'static str {
    match error {
        ObserveError::InvalidSpec(_) => "InvalidSpec",
        ObserveError::NoNamespace => "InvalidCanary",
        ObserveError::TargetNotFound { .. } => "TargetNotFound",
        ObserveError::Selector(_) => "NoSelectorLabel",
        ObserveError::Routes(RouterError::NoRouter(_)) => "UnsupportedProvider",
        ObserveError::Routes(_) => "RouterUnavailable",
    }
}

/// Reconciles one Canary (kube-runtime entry point).
pub async fn reconcile(canary: Arc<Canary>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    if !*ctx.leader.borrow() {
        // Standby replicas keep their caches warm and touch nothing.
        return Ok(Action::await_change());
    }
    let namespace = canary.metadata.namespace.clone().unwrap_or_default();
    let name = canary.metadata.name.clone().unwrap_or_default();
    if let Some(shard) = ctx.settings.shard
        && !shard.owns(&namespace, &name)
    {
        // Another shard's canary: its controller acts on it.
        return Ok(Action::await_change());
    }
    let span = tracing::info_span!("reconcile", canary.namespace = %namespace, canary.name = %name);
    let started = Instant::now();
    // Boxed: the tick's future is many kilobytes (every await of a tick nests in it), and
    // kube-runtime moves the reconcile future by value several times per reconcile (into its
    // span, into a spawned task); under callgrind those copies were about an eighth of the
    // controller's instructions. Boxed, only a pointer moves.
    let result = Box::pin(tick(&canary, &ctx)).instrument(span).await;
    ctx.metrics.reconcile_duration.observe(started.elapsed().as_secs_f64());
    result
}

async fn tick(canary: &Canary, ctx: &Context) -> Result<Action, ReconcileError> {
    let deleting = canary.metadata.deletion_timestamp.is_some();
    let has_finalizer = canary.metadata.finalizers.iter().flatten().any(|f| f == FINALIZER);
    if canary.spec.revert_on_deletion == Some(true) && !deleting && !has_finalizer {
        add_finalizer(&ctx.client, canary, FINALIZER).await.map_err(ReconcileError::Finalizer)?;
        return Ok(Action::await_change());
    }
    let key = status_key(canary);
    if ctx.written.is_stale(&key, canary.metadata.resource_version.as_deref(), canary.status.as_ref()) {
        // Our last status write has not reached the cache yet; its watch event will trigger
        // the next reconcile (the requeue is a safety net).
        return Ok(Action::requeue(Duration::from_millis(500)));
    }
    let provider = canary.spec.provider_or(ctx.settings.default_provider);
    let current = canary.status.clone().unwrap_or_default();
    let interval = rollout::interval(&canary.spec);

    // A spec the API server accepted can still break rules only Serin knows (e.g. weights on
    // the blue/green-only `kubernetes` router): nothing moves until it is fixed. Deletion
    // still runs, so a bad Canary can always be removed.
    if !deleting {
        let problems = validate_canary(&canary.spec, Some(ctx.settings.default_provider));
        if !problems.is_empty() {
            let text = problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
            return blocked(canary, ctx, &current, &ObserveError::InvalidSpec(text), interval).await;
        }
    }

    // A paced canary woken before its tick is due (by its own status write, a Deployment status
    // change) waits without reading the router: pacing needs only the caches.
    if let Some(wait) = paced_wait(canary, ctx, &current, provider) {
        return Ok(Action::requeue(wait));
    }

    // Observe: caches, plus the router's current split.
    let router = match ctx.routers.router(provider) {
        Ok(router) => router,
        Err(e) => return blocked(canary, ctx, &current, &ObserveError::Routes(e), interval).await,
    };
    let namespace = canary.metadata.namespace.as_deref().unwrap_or_default();
    let routes =
        match ctx.stores.deployment(namespace, &canary.spec.target_ref.name).as_deref().map(selector_label) {
            Some(Ok(selector)) => {
                let name = canary.metadata.name.as_deref().unwrap_or_default();
                let route_ctx = RouteContext {
                    namespace,
                    name,
                    uid: canary.metadata.uid.as_deref(),
                    spec: &canary.spec,
                    selector: &selector,
                    affinity_cookie: current.session_affinity_cookie.as_deref(),
                };
                router.get_routes(&route_ctx).await
            }
            // `snapshot` reports the missing target or selector itself.
            _ => Err(RouterError::NotFound("routes (target not observed)".into())),
        };
    let snapshot = match observe::snapshot(canary, &ctx.stores, routes, provider) {
        Ok(snapshot) => snapshot,
        Err(error) => return blocked(canary, ctx, &current, &error, interval).await,
    };

    // A running release advances once per interval, however often related objects change.
    let now = Timestamp::now();
    if let Some(wait) = rollout::wait_before_tick(&canary.spec, &current, &snapshot.observed, now) {
        return Ok(Action::requeue(wait));
    }

    // Decide, with exactly the checks and gates the decision needs.
    let needs = rollout::needs(&canary.spec, &current, &snapshot.observed);
    let report = gather(ctx, canary, &snapshot, needs, now.as_second()).await;
    let plan = rollout::decide(&canary.spec, &current, &snapshot.observed, &report, now);
    if let Some(message) = admission(ctx, &key, &current, &plan.status).message() {
        // Nothing of the plan is applied: the release starts from the same state later.
        return queued(canary, ctx, &current, &message, interval).await;
    }

    // Act, then record.
    // Only ticks of a running release are paced, so only they are stamped: a settled Canary
    // whose tick changed nothing is not written at all.
    let mut next = plan.status.clone();
    if rollout::paced(current.phase) || rollout::paced(next.phase) {
        next.last_tick = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            Timestamp::from_second(now.as_second()).unwrap_or(now),
        ));
    }
    let apply = Apply { ctx, canary, snapshot: &snapshot, router: router.as_ref() };
    apply.run(&plan.effects, &mut next).await?;
    if next != current {
        write_status(ctx, canary, &next).await?;
    }
    record_metrics(ctx, canary, &next);
    // The watch event of this status write does not wake a paced canary (`is_paced_echo`),
    // so the next tick is requeued for exactly when it is due.
    let requeue = rollout::next_tick_in(&canary.spec, &next, Timestamp::now()).unwrap_or(plan.requeue_after);
    Ok(Action::requeue(requeue))
}

/// How long a paced canary must still wait, judged from the caches alone (the routes are not
/// read, and [`rollout::wait_before_tick`] does not consult them); `None` when the tick should
/// run now or the canary cannot be observed (the full path reports why).
fn paced_wait(
    canary: &Canary,
    ctx: &Context,
    current: &CanaryStatus,
    provider: crate::crd::Provider,
) -> Option<Duration> {
    let now = Timestamp::now();
    // A tick due by the clock runs whatever the snapshot would show (what the schedule tests
    // check): the snapshot is built only for a wake-up before the tick is due.
    if rollout::next_tick_in(&canary.spec, current, now).is_none_or(|wait| wait.is_zero()) {
        return None;
    }
    let unread = Err(RouterError::NotFound(String::new()));
    let snapshot = observe::snapshot(canary, &ctx.stores, unread, provider).ok()?;
    rollout::wait_before_tick(&canary.spec, current, &snapshot.observed, now)
}

/// Writes `next` as the Canary's status (a merge patch from the cached status) and remembers
/// the write until the cache shows it.
async fn write_status(ctx: &Context, canary: &Canary, next: &CanaryStatus) -> Result<(), ReconcileError> {
    let stored = status::write(&ctx.client, canary, canary.status.as_ref(), next)
        .await
        .map_err(ReconcileError::Status)?;
    ctx.written.record(status_key(canary), stored);
    Ok(())
}

/// A Canary that cannot be observed: conditions and a Warning Event say why; retried at the
/// analysis interval.
async fn blocked(
    canary: &Canary,
    ctx: &Context,
    current: &crate::crd::CanaryStatus,
    error: &ObserveError,
    interval: Duration,
) -> Result<Action, ReconcileError> {
    let reason = reason_of(error);
    let message = error.to_string();
    let next = status::blocked(current, reason, &message, canary.metadata.generation);
    if &next != current {
        write_status(ctx, canary, &next).await?;
        publish_warning(ctx, canary, reason, &message).await;
    }
    Ok(Action::requeue(interval))
}

/// `--max-concurrent-canaries`: whether this canary may go from `current` to `next` now,
/// counting the canaries of this shard that the cache shows progressing.
fn admission(ctx: &Context, key: &str, current: &CanaryStatus, next: &CanaryStatus) -> Admission {
    let Some(limit) = ctx.settings.max_concurrent_canaries else { return Admission::Go };
    let mut in_flight = BTreeSet::new();
    let mut present = BTreeSet::new();
    for other in ctx.stores.canaries.state() {
        let (namespace, name) = (other.metadata.namespace.as_deref().unwrap_or_default(), other.name_any());
        if ctx.settings.shard.is_some_and(|s| !s.owns(namespace, &name)) {
            continue;
        }
        let other_key = status_key(&other);
        if other_key != key && other.status.as_ref().and_then(|s| s.phase).is_some_and(counts_against_limit) {
            in_flight.insert(other_key.clone());
        }
        present.insert(other_key);
    }
    ctx.admitted.admit(key, current.phase, next.phase, in_flight, &present, Some(limit))
}

/// A canary whose release waits for a slot: the `Queued` conditions and an Event say so (once);
/// it is looked at again every analysis interval.
async fn queued(
    canary: &Canary,
    ctx: &Context,
    current: &CanaryStatus,
    message: &str,
    interval: Duration,
) -> Result<Action, ReconcileError> {
    let next = status::queued(current, message, canary.metadata.generation);
    if &next != current {
        write_status(ctx, canary, &next).await?;
        tracing::info!("{message}");
        publish(ctx, canary, kube::runtime::events::EventType::Normal, status::QUEUED, message).await;
    }
    Ok(Action::requeue(interval))
}

async fn publish_warning(ctx: &Context, canary: &Canary, reason: &str, message: &str) {
    tracing::warn!(reason, "{message}");
    publish(ctx, canary, kube::runtime::events::EventType::Warning, reason, message).await;
}

async fn publish(
    ctx: &Context,
    canary: &Canary,
    type_: kube::runtime::events::EventType,
    reason: &str,
    message: &str,
) {
    use kube::Resource;
    if let Err(e) = ctx.recorder.publish(&canary.object_ref(&()), type_, reason, message).await {
        tracing::warn!(error = %e, "recording event failed");
    }
}

fn record_metrics(ctx: &Context, canary: &Canary, status: &crate::crd::CanaryStatus) {
    let namespace = canary.metadata.namespace.as_deref().unwrap_or_default();
    let name = canary.metadata.name.as_deref().unwrap_or_default();
    let phase = status.phase.unwrap_or(CanaryPhase::Initializing);
    ctx.metrics.set_canary(
        namespace,
        name,
        &canary.spec.target_ref.name,
        phase,
        status.canary_weight.unwrap_or(0),
    );
    for result in status.analysis.iter().flatten() {
        if let Some(value) = result.value {
            let labels = AnalysisLabels {
                name: name.into(),
                namespace: namespace.into(),
                metric: result.name.clone(),
            };
            ctx.metrics.metric_analysis.get_or_create(&labels).set(value);
        }
    }
}

/// What happens after a failed reconcile: counted by category, retried in 10 s.
pub fn error_policy(canary: Arc<Canary>, error: &ReconcileError, ctx: Arc<Context>) -> Action {
    tracing::warn!(
        canary.namespace = canary.metadata.namespace.as_deref().unwrap_or_default(),
        canary.name = canary.metadata.name.as_deref().unwrap_or_default(),
        error = %error,
        "reconcile failed; retrying"
    );
    ctx.metrics.reconcile_errors.get_or_create(&CategoryLabels { category: error.category().into() }).inc();
    Action::requeue(Duration::from_secs(10))
}
