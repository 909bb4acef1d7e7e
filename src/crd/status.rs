//! Observed state of a Canary. Everything the controller needs to continue after a restart lives
//! here (weight, failed checks, iteration, hashes, revert progress), so killing the controller at
//! any moment loses nothing.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Phases of a release, with Flagger's exact strings.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum CanaryPhase {
    /// Creating the primary workload, Services and routing objects.
    Initializing,
    /// Ready, no release in progress yet.
    Initialized,
    /// A new revision waits for a confirm-rollout gate.
    Waiting,
    /// A release is being analysed.
    Progressing,
    /// The analysis passed; a confirm-promotion gate is closed.
    WaitingPromotion,
    /// Copying the canary's spec to the primary.
    Promoting,
    /// Routing all traffic back to the promoted primary.
    Finalising,
    /// The last release was promoted.
    Succeeded,
    /// The last release was rolled back.
    Failed,
    /// The Canary is being deleted and its changes reverted.
    Terminating,
    /// The Canary's changes are reverted; the finalizer is about to be removed.
    Terminated,
}

impl CanaryPhase {
    /// The phase string as Flagger writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            CanaryPhase::Initializing => "Initializing",
            CanaryPhase::Initialized => "Initialized",
            CanaryPhase::Waiting => "Waiting",
            CanaryPhase::Progressing => "Progressing",
            CanaryPhase::WaitingPromotion => "WaitingPromotion",
            CanaryPhase::Promoting => "Promoting",
            CanaryPhase::Finalising => "Finalising",
            CanaryPhase::Succeeded => "Succeeded",
            CanaryPhase::Failed => "Failed",
            CanaryPhase::Terminating => "Terminating",
            CanaryPhase::Terminated => "Terminated",
        }
    }
}

impl std::fmt::Display for CanaryPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Condition types Serin sets on a Canary.
pub mod condition_types {
    /// Flagger's condition: True once the last release is promoted; reason is the phase.
    pub const PROMOTED: &str = "Promoted";
    /// kstatus: the Canary is settled (Initialized, Succeeded) and nothing is in flight.
    pub const READY: &str = "Ready";
    /// kstatus: a release is in progress.
    pub const RECONCILING: &str = "Reconciling";
    /// kstatus: progress is blocked (failed release, quarantine, invalid spec, revert conflict).
    pub const STALLED: &str = "Stalled";
}

/// Verdict of one check: pass, fail, or no data (never a pass).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Verdict {
    /// The value is within its threshold.
    Pass,
    /// The value is outside its threshold.
    Fail,
    /// Empty or NaN result, or fewer requests than `minRequests`.
    NoData,
    /// The query could not be run (backend unreachable, several series returned…).
    Error,
}

/// The last result of one metric check, kept so users can see why a canary stopped.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricResult {
    /// Name of the metric check.
    pub name: String,
    /// Measured value, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// Lower bound it was judged against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold_min: Option<f64>,
    /// Upper bound it was judged against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold_max: Option<f64>,
    /// The verdict.
    pub verdict: Verdict,
    /// The rendered query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Why, in words (error text, no-data reason).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the check ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Time>,
}

/// Progress of the Git revert of a failed release.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum GitRevertState {
    /// Decided, not yet pushed.
    Pending,
    /// The revert commit is on the branch.
    Pushed,
    /// A pull request with the revert is open.
    PullRequestOpened,
    /// Nothing to revert: no commit since the last promotion touched this workload.
    NotNeeded,
    /// The revert could not be made; a human must revert `revertedCommits`.
    Failed,
}

/// What Serin did in Git for the last failed release; recorded so it happens exactly once.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitOpsStatus {
    /// The revision (pod-template hash) this revert belongs to.
    pub revision: String,
    /// Where the revert stands.
    pub state: GitRevertState,
    /// Commits that introduced the failed release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reverted_commits: Option<Vec<String>>,
    /// SHA of the revert (or restore) commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revert_commit: Option<String>,
    /// URL of the pull request, in `pullRequest` mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request_url: Option<String>,
    /// Why it failed, or what was done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Last state change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
}

/// A revision that failed analysis. If Git brings it back, Serin fails it fast instead of
/// exposing users again, until `serin retry`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailedRevision {
    /// The revision hash.
    pub revision: String,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_at: Option<Time>,
}

/// Why a release is not making progress.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum WaitReason {
    /// The canary workload is not ready yet.
    CanaryNotReady,
    /// The primary workload is not ready yet (initialisation, analysis or promotion).
    PrimaryNotReady,
    /// A `confirm-rollout` gate is closed.
    ConfirmRollout,
    /// A `confirm-traffic-increase` gate is closed.
    ConfirmTrafficIncrease,
    /// A `confirm-promotion` gate is closed.
    ConfirmPromotion,
    /// Metric checks returned no data (`onNoData: hold`).
    NoData,
}

impl WaitReason {
    /// Whether this is a closed confirm gate (a wait on a human or an external system).
    pub fn is_gate(self) -> bool {
        matches!(
            self,
            WaitReason::ConfirmRollout | WaitReason::ConfirmTrafficIncrease | WaitReason::ConfirmPromotion
        )
    }

    /// The reason as a condition/Event reason string.
    pub fn as_str(self) -> &'static str {
        match self {
            WaitReason::CanaryNotReady => "CanaryNotReady",
            WaitReason::PrimaryNotReady => "PrimaryNotReady",
            WaitReason::ConfirmRollout => "ConfirmRollout",
            WaitReason::ConfirmTrafficIncrease => "ConfirmTrafficIncrease",
            WaitReason::ConfirmPromotion => "ConfirmPromotion",
            WaitReason::NoData => "NoData",
        }
    }
}

/// Serin: a release that has stopped making progress, and since when. The progress deadline
/// (`progressDeadlineSeconds`) is measured from `since`, so it survives controller restarts and
/// applies to every waiting state, gates included (Flagger waits forever on a closed gate).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProgressWait {
    /// What the release is waiting for now.
    pub reason: WaitReason,
    /// When the release last made progress (scale-up, weight or iteration step, phase change).
    pub since: Time,
}

/// Observed state of a Canary.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStatus {
    /// Phase of the release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<CanaryPhase>,
    /// Failed checks in the current run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_checks: Option<i32>,
    /// Serin: no-data checks in the current run, counted apart from failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_data_checks: Option<i32>,
    /// Traffic weight routed to the canary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_weight: Option<i32>,
    /// Iterations done in the current run (blue/green, A/B).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iterations: Option<i32>,
    /// Checksums of the ConfigMaps and Secrets the target uses, keyed `ConfigMap/<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracked_configs: Option<BTreeMap<String, String>>,
    /// Hash of the target's pod template at the last sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_spec: Option<String>,
    /// Hash of what the primary runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_promoted_spec: Option<String>,
    /// When the phase last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// Session-affinity cookie of the current run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_affinity_cookie: Option<String>,
    /// Session-affinity cookie of the previous run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_session_affinity_cookie: Option<String>,
    /// Cookie pinning users to the primary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_session_affinity_cookie: Option<String>,
    /// Serin: `metadata.generation` this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Serin: the revision under test (pod template plus tracked configs), the identity CI waits on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// Conditions: Flagger's `Promoted`, and kstatus `Ready`, `Reconciling`, `Stalled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
    /// Serin: the last result of every metric check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<Vec<MetricResult>>,
    /// Serin: the Git revert of the last failed release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gitops: Option<GitOpsStatus>,
    /// Serin: revisions that failed and are quarantined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_revisions: Option<Vec<FailedRevision>>,
    /// Serin: the wait in progress, if the release is not advancing; the progress deadline
    /// counts from its `since`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<ProgressWait>,
    /// Serin: traffic is mirrored to the canary (the mirror step of a weighted run is done, or a
    /// blue/green iteration is mirrored). Kept here rather than read back from the router, so a
    /// router that cannot report mirroring does not repeat the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirrored: Option<bool>,
    /// Serin: set by `serin pause` (the `pause` annotation), cleared by `serin resume`; while set
    /// the release is frozen like `spec.suspend`. Kept here because the annotation is cleared
    /// once honoured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    /// Serin: when the last analysis tick ran, so ticks of a running release stay one interval
    /// apart across restarts and however often related objects change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_tick: Option<Time>,
    /// Serin: the Git commit the GitOps agent had applied when the primary was last promoted
    /// (or first created), with `spec.gitops`; a later revert undoes every commit since it
    /// that changed the workload, not only the newest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_promoted_commit: Option<String>,
}
