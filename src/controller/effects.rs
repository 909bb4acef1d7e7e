//! Applies a plan's effects in order, following the contract in `rollout::plan`: a failed
//! cluster change stops the plan (and the status is not written, so the next tick decides
//! again); Git reverts, hooks, Events and alerts never block the effects after them.

use kube::Resource;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::EventType as KubeEventType;
use serde_json::json;
use thiserror::Error;

use super::alerts;
use super::context::Context;
use super::gather::{hook_secrets, run_hooks};
use super::git;
use super::observe::Snapshot;
use super::workloads::{WorkloadError, Workloads, remove_finalizer};
use crate::crd::annotations::ACTION;
use crate::crd::canary::WebhookType;
use crate::crd::status::CanaryStatus;
use crate::crd::{Canary, CanaryPhase};
use crate::rollout::{Effect, EventType, Operation, Routes};
use crate::router::{RouteContext, RouterError, TrafficRouter};
use crate::telemetry::metrics::ResultLabels;
use crate::webhook::{gates, payload};

/// Serin's finalizer (`revertOnDeletion`).
pub const FINALIZER: &str = "serin.dev/finalizer";

/// A cluster change that failed; the plan stops here.
#[derive(Debug, Error)]
pub enum EffectError {
    /// A workload write failed.
    #[error(transparent)]
    Workload(#[from] WorkloadError),
    /// A router write failed.
    #[error(transparent)]
    Router(#[from] RouterError),
    /// Clearing an operation annotation failed.
    #[error("clearing the {0} request: {1}")]
    Annotation(&'static str, kube::Error),
}

impl EffectError {
    /// A short label for metrics and Event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            EffectError::Workload(_) => "workload",
            EffectError::Router(_) => "router",
            EffectError::Annotation(..) => "annotation",
        }
    }
}

fn operation_name(op: Operation) -> &'static str {
    match op {
        Operation::Promote => "promote",
        Operation::Abort => "abort",
        Operation::Retry => "retry",
        Operation::Pause => "pause",
        Operation::Resume => "resume",
    }
}

/// Everything an effect needs.
pub struct Apply<'a> {
    /// Shared state.
    pub ctx: &'a Context,
    /// The Canary.
    pub canary: &'a Canary,
    /// What was observed this tick.
    pub snapshot: &'a Snapshot,
    /// The canary's router.
    pub router: &'a dyn TrafficRouter,
}

impl Apply<'_> {
    fn namespace(&self) -> &str {
        self.canary.metadata.namespace.as_deref().unwrap_or_default()
    }

    fn route_ctx(&self) -> RouteContext<'_> {
        RouteContext {
            namespace: self.namespace(),
            name: self.canary.metadata.name.as_deref().unwrap_or_default(),
            uid: self.canary.metadata.uid.as_deref(),
            affinity_cookie: self.canary.status.as_ref().and_then(|s| s.session_affinity_cookie.as_deref()),
            spec: &self.canary.spec,
            selector: &self.snapshot.selector,
        }
    }

    fn workloads(&self) -> Result<Workloads<'_>, WorkloadError> {
        Workloads::new(&self.ctx.client, &self.ctx.stores, self.canary, self.namespace())
    }

    /// Applies `effects` in order, updating `status` with what effects record (the Git revert).
    pub async fn run(&self, effects: &[Effect], status: &mut CanaryStatus) -> Result<(), EffectError> {
        for effect in effects {
            self.one(effect, status).await?;
        }
        Ok(())
    }

    async fn one(&self, effect: &Effect, status: &mut CanaryStatus) -> Result<(), EffectError> {
        match effect {
            Effect::Initialize => {
                self.workloads()?.initialize(self.snapshot, self.snapshot.observed.provider).await?;
                self.router.reconcile(&self.route_ctx()).await?;
                // The first primary is a copy of what Git holds now: the first known-good commit.
                if status.last_promoted_commit.is_none()
                    && let Some(commit) = git::live_commit(self.ctx, self.canary, self.snapshot).await
                {
                    status.last_promoted_commit = Some(commit);
                }
            }
            Effect::SetRoutes { primary, canary, mirrored } => {
                let routes = Routes { primary: *primary, canary: *canary, mirrored: *mirrored };
                self.router.set_routes(&self.route_ctx(), routes).await?;
            }
            Effect::ScaleTargetUp => {
                let workloads = self.workloads()?;
                let replicas = workloads.scale_up_replicas(self.snapshot).await?;
                workloads.scale_target(replicas).await?;
            }
            Effect::ScaleTargetToZero => self.workloads()?.scale_target(0).await?,
            Effect::PromotePrimary { revision } => {
                if *revision == self.snapshot.observed.revision {
                    self.workloads()?.promote(self.snapshot).await?;
                    if let Some(commit) = git::live_commit(self.ctx, self.canary, self.snapshot).await {
                        status.last_promoted_commit = Some(commit);
                    }
                } else {
                    tracing::warn!(%revision, current = %self.snapshot.observed.revision,
                        "target changed before promotion; the next tick sees the new revision");
                }
            }
            Effect::RevertGit { revision, reason, failed_checks, .. } => {
                let outcome =
                    git::revert(self.ctx, self.canary, self.snapshot, revision, reason, failed_checks).await;
                let result = format!("{:?}", outcome.state).to_lowercase();
                self.ctx.metrics.git_reverts.get_or_create(&ResultLabels { result }).inc();
                let message = outcome.message.clone().unwrap_or_default();
                let (type_, reason) = match outcome.state {
                    crate::crd::status::GitRevertState::Failed => (EventType::Warning, "GitRevertFailed"),
                    _ => (EventType::Normal, "GitReverted"),
                };
                self.event(type_, reason, &format!("Git revert of {revision}: {message}")).await;
                status.gitops = Some(outcome);
            }
            Effect::RunPostRolloutHooks { phase } => {
                let outcomes = run_hooks(
                    self.ctx,
                    self.canary,
                    &self.snapshot.observed.revision,
                    WebhookType::PostRollout,
                    *phase,
                )
                .await;
                for outcome in outcomes.iter().filter(|o| !o.succeeded()) {
                    tracing::warn!(detail = %outcome.detail(), "post-rollout webhook failed");
                }
            }
            Effect::Event { type_, reason, message } => self.event(*type_, reason, message).await,
            Effect::Notify { severity, kind, message, fields } => {
                let note = alerts::notification(
                    self.ctx,
                    self.canary,
                    *severity,
                    *kind,
                    message,
                    fields.clone(),
                    status.gitops.as_ref(),
                );
                alerts::send(self.ctx, self.canary, note);
            }
            Effect::ClearOperation(op) => self.clear_operation(*op).await?,
            Effect::RestoreOnDeletion => {
                let workloads = self.workloads()?;
                let replicas = workloads.scale_up_replicas(self.snapshot).await?;
                workloads.scale_target(replicas).await?;
                self.router.finalize(&self.route_ctx()).await?;
            }
            Effect::RemoveFinalizer => remove_finalizer(&self.ctx.client, self.canary, FINALIZER).await?,
        }
        Ok(())
    }

    async fn clear_operation(&self, op: Operation) -> Result<(), EffectError> {
        let name = operation_name(op);
        let current = self.canary.metadata.annotations.as_ref().and_then(|a| a.get(ACTION));
        if current.map(String::as_str) != Some(name) {
            return Ok(());
        }
        let api: Api<Canary> = Api::namespaced(self.ctx.client.clone(), self.namespace());
        let patch = json!({"metadata": {"annotations": {ACTION: null}}});
        let canary_name = self.canary.metadata.name.as_deref().unwrap_or_default();
        api.patch(canary_name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .map(|_| ())
            .map_err(|e| EffectError::Annotation(name, e))
    }

    /// Records a Kubernetes Event and forwards it to the canary's `event` webhooks (in the
    /// background: their failures are only logged).
    pub async fn event(&self, type_: EventType, reason: &str, message: &str) {
        let kind = match type_ {
            EventType::Normal => KubeEventType::Normal,
            EventType::Warning => KubeEventType::Warning,
        };
        let note: String = message.chars().take(1000).collect();
        if let Err(e) = self.ctx.recorder.publish(&self.canary.object_ref(&()), kind, reason, &note).await {
            tracing::warn!(error = %e, reason, "recording event failed");
        }
        match type_ {
            EventType::Normal => tracing::info!(reason, "{message}"),
            EventType::Warning => tracing::warn!(reason, "{message}"),
        }
        self.forward_event(type_, message);
    }

    fn forward_event(&self, type_: EventType, message: &str) {
        let hooks: Vec<_> = self
            .canary
            .spec
            .analysis
            .webhooks
            .iter()
            .flatten()
            .filter(|h| h.type_ == Some(WebhookType::Event))
            .cloned()
            .collect();
        if hooks.is_empty() {
            return;
        }
        let secrets = hook_secrets(self.ctx, self.namespace(), &hooks);
        let caller = self.ctx.webhooks.clone();
        let name = self.canary.metadata.name.clone().unwrap_or_default();
        let namespace = self.namespace().to_string();
        let checksum = self.snapshot.observed.revision.clone();
        let phase = self.canary.status.as_ref().and_then(|s| s.phase).unwrap_or(CanaryPhase::Initializing);
        let message = message.to_string();
        let event_type = match type_ {
            EventType::Normal => payload::EventType::Normal,
            EventType::Warning => payload::EventType::Warning,
        };
        tokio::spawn(async move {
            let target = payload::CanaryRef { name: &name, namespace: &namespace, checksum: &checksum };
            let budget = std::time::Duration::from_secs(10);
            let outcomes = gates::run_event(
                caller.as_ref(),
                &hooks,
                &target,
                phase,
                &message,
                event_type,
                &secrets,
                budget,
            )
            .await;
            for outcome in outcomes.iter().filter(|o| !o.succeeded()) {
                tracing::info!(detail = %outcome.detail(), "event webhook failed");
            }
        });
    }
}
