//! Ending a run without promotion: rollback (traffic back to the primary, target scaled down,
//! Git revert, alert), refusing a quarantined revision, settling on the stable revision, and
//! the primary failing during promotion.

use std::collections::BTreeMap;

use crate::crd::canary::AlertSeverity;
use crate::crd::status::{CanaryPhase, FailedRevision, GitOpsStatus, GitRevertState, Verdict, WaitReason};

use super::plan::{Effect, EventType, NotificationKind};
use super::steps;
use super::tick::Tick;
use super::verdict;

/// Why a run is rolled back.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Cause {
    /// `failedChecks` reached `threshold`.
    FailedChecks,
    /// A `rollback` webhook answered 2xx.
    RollbackHook,
    /// The canary workload cannot become ready.
    CanaryFailed(String),
    /// The canary stayed not ready past the progress deadline.
    CanaryDeadline(String),
    /// The primary cannot become ready during the analysis.
    PrimaryFailed(String),
    /// The primary stayed not ready past the progress deadline during the analysis.
    PrimaryDeadline(String),
    /// Checks kept returning no data past the progress deadline.
    NoDataDeadline,
    /// A confirm gate stayed closed past the progress deadline.
    GateDeadline(WaitReason),
    /// `serin abort`.
    Aborted,
}

impl Cause {
    /// Condition and Event reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Cause::FailedChecks => "FailedChecksThresholdReached",
            Cause::RollbackHook => "RollbackWebhook",
            Cause::CanaryFailed(_) => "CanaryFailed",
            Cause::CanaryDeadline(_) => "CanaryProgressDeadlineExceeded",
            Cause::PrimaryFailed(_) => "PrimaryFailed",
            Cause::PrimaryDeadline(_) => "PrimaryProgressDeadlineExceeded",
            Cause::NoDataDeadline => "NoDataDeadlineExceeded",
            Cause::GateDeadline(_) => "ApprovalDeadlineExceeded",
            Cause::Aborted => "Aborted",
        }
    }

    fn message(&self, tick: &Tick<'_>) -> String {
        let deadline = steps::progress_deadline(tick.spec);
        match self {
            Cause::FailedChecks => {
                format!("failed checks threshold reached {}", tick.status.failed_checks.unwrap_or(0))
            }
            Cause::RollbackHook => "a rollback webhook asked for a rollback".to_string(),
            Cause::CanaryFailed(why) => format!("canary cannot become ready: {why}"),
            Cause::CanaryDeadline(why) => {
                format!("canary not ready within the progress deadline of {deadline}s: {why}")
            }
            Cause::PrimaryFailed(why) => format!("primary cannot become ready: {why}"),
            Cause::PrimaryDeadline(why) => {
                format!("primary not ready within the progress deadline of {deadline}s: {why}")
            }
            Cause::NoDataDeadline => format!(
                "checks returned no data for longer than the progress deadline of {deadline}s ({} no-data checks)",
                tick.status.no_data_checks.unwrap_or(0)
            ),
            Cause::GateDeadline(gate) => {
                format!(
                    "{} gate stayed closed longer than the progress deadline of {deadline}s",
                    gate.as_str()
                )
            }
            Cause::Aborted => "aborted by `serin abort`".to_string(),
        }
    }

    /// Whether the failure is the revision's fault: then it is quarantined and reverted in Git.
    /// A broken primary or an approval that never came says nothing about the revision.
    pub fn blames_revision(&self) -> bool {
        !matches!(self, Cause::PrimaryFailed(_) | Cause::PrimaryDeadline(_) | Cause::GateDeadline(_))
    }
}

fn failing_checks(tick: &Tick<'_>) -> Vec<String> {
    tick.status
        .analysis
        .iter()
        .flatten()
        .filter(|r| r.verdict != Verdict::Pass)
        .map(|r| r.name.clone())
        .collect()
}

fn quarantine(tick: &mut Tick<'_>, revision: &str, reason: String) {
    let entry = FailedRevision {
        revision: revision.to_string(),
        reason: Some(reason),
        failed_at: Some(tick.now.clone()),
    };
    let list = tick.status.failed_revisions.get_or_insert_with(Vec::new);
    match list.iter_mut().find(|f| f.revision == revision) {
        Some(slot) => *slot = entry,
        None => list.push(entry),
    }
}

/// Rolls the run back: traffic 100% to the primary, target to zero, then (when the failure is
/// the revision's and `gitops.revert` is on) the Git revert, post-rollout hooks, Event, alert.
pub(crate) fn rollback(tick: &mut Tick<'_>, cause: Cause) {
    let revision = tick.status.last_applied_spec.clone().unwrap_or_else(|| tick.revision().to_string());
    let message = cause.message(tick);
    let failed = failing_checks(tick);
    let blame = cause.blames_revision();
    let revert = blame && tick.spec.gitops.as_ref().is_some_and(|g| g.revert);

    tick.route(100, 0, false);
    tick.emit(Effect::ScaleTargetToZero);
    if revert {
        tick.emit(Effect::RevertGit {
            revision: revision.clone(),
            stable_revision: tick.status.last_promoted_spec.clone(),
            reason: message.clone(),
            failed_checks: failed.clone(),
        });
        tick.status.gitops = Some(GitOpsStatus {
            revision: revision.clone(),
            state: GitRevertState::Pending,
            reverted_commits: None,
            revert_commit: None,
            pull_request_url: None,
            message: Some(message.clone()),
            last_transition_time: Some(tick.now.clone()),
        });
    }
    tick.emit(Effect::RunPostRolloutHooks { phase: CanaryPhase::Failed });
    let text = format!("Rolling back {}: {message}", tick.target());
    tick.event(EventType::Warning, cause.reason(), text.clone());
    let mut fields = BTreeMap::new();
    fields.insert("reason".to_string(), cause.reason().to_string());
    fields.insert("failedChecks".to_string(), tick.status.failed_checks.unwrap_or(0).to_string());
    fields.insert("threshold".to_string(), steps::threshold(tick.spec).to_string());
    let results: Vec<String> = tick
        .status
        .analysis
        .iter()
        .flatten()
        .filter(|r| r.verdict != Verdict::Pass)
        .map(verdict::summary)
        .collect();
    if !results.is_empty() {
        fields.insert("checks".to_string(), results.join("; "));
    }
    tick.notify_with(AlertSeverity::Error, NotificationKind::Rollback, text, fields);

    if blame {
        quarantine(tick, &revision, message.clone());
    }
    tick.status.canary_weight = Some(0);
    tick.status.waiting = None;
    tick.set_phase(CanaryPhase::Failed);
    tick.detail(
        cause.reason(),
        format!("Canary analysis failed, {} scaled to zero: {message}", tick.target()),
        true,
    );
}

/// Re-emits a Git revert that is still `Pending` for the failed revision (its outcome was not
/// recorded yet). The adapter is idempotent per revision, so this never makes a second commit.
pub(crate) fn resume_pending_revert(tick: &mut Tick<'_>) {
    let Some(gitops) = &tick.status.gitops else { return };
    let pending = gitops.state == GitRevertState::Pending
        && tick.status.last_applied_spec.as_deref() == Some(gitops.revision.as_str())
        && tick.spec.gitops.as_ref().is_some_and(|g| g.revert);
    if !pending {
        return;
    }
    let effect = Effect::RevertGit {
        revision: gitops.revision.clone(),
        stable_revision: tick.status.last_promoted_spec.clone(),
        reason: gitops.message.clone().unwrap_or_default(),
        failed_checks: failing_checks(tick),
    };
    tick.emit(effect);
}

/// The target carries a quarantined revision again: refuse it without sending it traffic.
pub(crate) fn refuse_quarantined(tick: &mut Tick<'_>) {
    let revision = tick.revision().to_string();
    let why = tick
        .status
        .failed_revisions
        .iter()
        .flatten()
        .find(|f| f.revision == revision)
        .and_then(|f| f.reason.clone())
        .unwrap_or_else(|| "it failed before".to_string());
    tick.route(100, 0, false);
    tick.emit(Effect::ScaleTargetToZero);
    let text = format!(
        "Revision {revision} of {} is quarantined ({why}); not exposing users again. Run `serin retry` to analyse it anyway.",
        tick.target()
    );
    tick.event(EventType::Warning, "RevisionQuarantined", text.clone());
    tick.notify(AlertSeverity::Error, NotificationKind::Quarantined, text.clone());
    sync_revision(tick);
    tick.status.canary_weight = Some(0);
    tick.status.waiting = None;
    tick.set_phase(CanaryPhase::Failed);
    tick.detail("RevisionQuarantined", text, true);
}

/// Records the observed revision as the applied one.
pub(crate) fn sync_revision(tick: &mut Tick<'_>) {
    tick.status.last_applied_spec = Some(tick.observed.revision.clone());
    tick.status.revision = Some(tick.observed.revision.clone());
    tick.status.tracked_configs = Some(tick.observed.tracked_configs.clone());
}

/// The target went back to the promoted revision (a Git revert landed, or a manual rollback):
/// nothing to analyse. Settles as `Initialized` with `Ready=True`, reason `BackToStable`.
/// `in_run` is true when a run was in progress: its traffic and canary are cleaned up.
pub(crate) fn back_to_stable(tick: &mut Tick<'_>, in_run: bool) {
    if in_run {
        tick.route(100, 0, false);
        tick.emit(Effect::ScaleTargetToZero);
    }
    let text =
        format!("{} is back on the promoted revision {}; nothing to analyse", tick.target(), tick.revision());
    tick.event(EventType::Normal, "BackToStable", text.clone());
    tick.notify(AlertSeverity::Info, NotificationKind::BackToStable, text.clone());
    sync_revision(tick);
    tick.status.canary_weight = Some(0);
    tick.status.iterations = Some(0);
    tick.status.waiting = None;
    tick.set_phase(CanaryPhase::Initialized);
    tick.detail("BackToStable", text, false);
}

/// The primary cannot finish rolling out the promoted spec (Flagger 1.44, #1931): send all
/// traffic to the canary, which runs the same analysed revision and is still up, and fail
/// loudly. Not the revision's fault: no quarantine, no Git revert.
pub(crate) fn primary_failed_during_promotion(tick: &mut Tick<'_>, why: String) {
    tick.route(0, 100, false);
    let text = format!(
        "Promotion of {} failed: primary not ready ({why}); all traffic routed to the canary",
        tick.target()
    );
    tick.event(EventType::Warning, "PromotionFailed", text.clone());
    tick.notify(AlertSeverity::Error, NotificationKind::PromotionFailed, text.clone());
    tick.status.canary_weight = Some(100);
    tick.status.waiting = None;
    tick.set_phase(CanaryPhase::Failed);
    tick.detail("PromotionFailed", text, true);
}
