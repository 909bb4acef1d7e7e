//! Gathers this tick's `AnalysisReport`: exactly the metric queries and webhook calls the
//! rollout core's `needs` asked for, concurrently, within the analysis interval.

use std::collections::BTreeMap;

use super::context::Context;
use super::observe::Snapshot;
use super::secrets::secret_strings;
use crate::analysis::run::{CanaryRef, run_metrics};
use crate::crd::canary::{Webhook, WebhookType};
use crate::crd::{Canary, CanaryPhase};
use crate::rollout::{self, AnalysisReport, CheckKind, Needs};
use crate::webhook::gates::{self, HookOutcome};
use crate::webhook::{SecretHeaders, payload};

/// The Secret-backed headers of every hook that has a `secretRef`, by hook name. A missing
/// Secret leaves the hook without them: the call then fails at the receiver, visibly.
pub fn hook_secrets(ctx: &Context, namespace: &str, hooks: &[Webhook]) -> BTreeMap<String, SecretHeaders> {
    hooks
        .iter()
        .filter_map(|hook| {
            let secret = hook.secret_ref.as_ref()?;
            match secret_strings(&ctx.stores, namespace, &secret.name) {
                Ok(values) => Some((hook.name.clone(), SecretHeaders::new(values))),
                Err(e) => {
                    tracing::warn!(hook = %hook.name, error = %e, "webhook secret missing");
                    None
                }
            }
        })
        .collect()
}

/// Runs the hooks of `kind` for this canary.
pub async fn run_hooks(
    ctx: &Context,
    canary: &Canary,
    revision: &str,
    kind: WebhookType,
    phase: CanaryPhase,
) -> Vec<HookOutcome> {
    let namespace = canary.metadata.namespace.as_deref().unwrap_or_default();
    let name = canary.metadata.name.as_deref().unwrap_or_default();
    let hooks = canary.spec.analysis.webhooks.as_deref().unwrap_or_default();
    if !hooks.iter().any(|h| h.type_.unwrap_or(WebhookType::Unset).effective() == kind) {
        return Vec::new();
    }
    let secrets = hook_secrets(ctx, namespace, hooks);
    let target = payload::CanaryRef { name, namespace, checksum: revision };
    let budget = gates::budget_within(rollout::interval(&canary.spec));
    gates::run_kind(ctx.webhooks.as_ref(), kind, hooks, &target, phase, &secrets, budget).await
}

fn gate_open(outcomes: &[HookOutcome]) -> Option<bool> {
    Some(gates::gate(outcomes).open)
}

/// Gathers what `needs` asks for.
pub async fn gather(
    ctx: &Context,
    canary: &Canary,
    snapshot: &Snapshot,
    needs: Needs,
    now_unix: i64,
) -> AnalysisReport {
    if needs.is_empty() {
        return AnalysisReport::default();
    }
    let namespace = canary.metadata.namespace.as_deref().unwrap_or_default();
    let name = canary.metadata.name.as_deref().unwrap_or_default();
    let revision = snapshot.observed.revision.as_str();
    let current = canary.status.as_ref().and_then(|s| s.phase).unwrap_or(CanaryPhase::Initializing);
    let progressing = CanaryPhase::Progressing;

    let metrics = async {
        if !needs.analysis {
            return Vec::new();
        }
        let canary_ref = CanaryRef {
            namespace,
            name,
            spec: &canary.spec,
            provider: snapshot.observed.provider,
            gateway: ctx.settings.gateway_metrics,
        };
        let lookup =
            |ns: &str, template: &str| ctx.stores.metric_template(ns, template).map(|t| (*t).clone());
        run_metrics(&canary_ref, &lookup, ctx.backends.as_ref(), now_unix).await
    };
    let when = |wanted: bool, kind: WebhookType, phase: CanaryPhase| async move {
        if wanted { run_hooks(ctx, canary, revision, kind, phase).await } else { Vec::new() }
    };
    let (metrics, rollout_hooks, pre_rollout, confirm_rollout, traffic, promotion, rollback) = futures::join!(
        metrics,
        when(needs.analysis, WebhookType::Rollout, progressing),
        when(needs.pre_rollout_hooks, WebhookType::PreRollout, progressing),
        when(needs.confirm_rollout, WebhookType::ConfirmRollout, current),
        when(needs.confirm_traffic_increase, WebhookType::ConfirmTrafficIncrease, progressing),
        when(needs.confirm_promotion, WebhookType::ConfirmPromotion, progressing),
        when(needs.rollback_hooks, WebhookType::Rollback, current),
    );

    let mut checks = gates::check_results(CheckKind::PreRolloutHook, &pre_rollout);
    checks.extend(gates::check_results(CheckKind::RolloutHook, &rollout_hooks));
    checks.extend(metrics);
    let mut report = AnalysisReport { checks, ..AnalysisReport::default() };
    if needs.confirm_rollout {
        report.gates.confirm_rollout = gate_open(&confirm_rollout);
    }
    if needs.confirm_traffic_increase {
        report.gates.confirm_traffic_increase = gate_open(&traffic);
    }
    if needs.confirm_promotion {
        report.gates.confirm_promotion = gate_open(&promotion);
    }
    report.rollback_requested = needs.rollback_hooks && gates::rollback(&rollback).roll_back;
    report
}
