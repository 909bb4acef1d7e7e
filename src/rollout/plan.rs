//! The output of one decision: the next status and the ordered effects that bring the cluster
//! there.
//!
//! Contract with the controller that applies a plan:
//! - effects are applied **in order**; every effect is idempotent, so re-applying a plan after a
//!   partial failure or a restart is safe;
//! - when an effect that changes the cluster (`Initialize`, `SetRoutes`, `Scale*`,
//!   `PromotePrimary`, `RestoreOnDeletion`, `RemoveFinalizer`) fails, the controller stops and
//!   does **not** write `status`; the next tick decides again from the old status and emits the
//!   same effects;
//! - `RevertGit`, `RunPostRolloutHooks`, `Event`, `Notify` and `ClearOperation` never block later
//!   effects; the outcome of `RevertGit` (pushed, PR opened, not needed, failed) is written into
//!   `status.gitops` before the status is patched, and a `Notify` that follows a `RevertGit` in
//!   the same plan carries the revert commit or pull request;
//! - `status` is written once, after the effects.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::crd::canary::AlertSeverity;
use crate::crd::status::{CanaryPhase, CanaryStatus};

/// The result of [`crate::rollout::decide`].
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The status to write after the effects are applied.
    pub status: CanaryStatus,
    /// What to do, in order.
    pub effects: Vec<Effect>,
    /// When to reconcile again if nothing changes before.
    pub requeue_after: Duration,
}

/// Kubernetes Event type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// Progress and phase changes.
    Normal,
    /// Halts, failures, rollbacks.
    Warning,
}

/// What an alert is about; lets notifiers pick a title and colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotificationKind {
    /// The primary and routing are in place.
    Initialized,
    /// A new revision started an analysis.
    NewRevision,
    /// A confirm gate is closed and waits for a human or a webhook.
    WaitingApproval,
    /// The release was rolled back.
    Rollback,
    /// The release was promoted.
    Promoted,
    /// The primary failed while being promoted; traffic went to the canary.
    PromotionFailed,
    /// A quarantined revision came back and was refused.
    Quarantined,
    /// The target went back to the promoted revision (e.g. a Git revert landed).
    BackToStable,
    /// Initialisation is stuck (primary never became ready).
    Stalled,
}

/// An operational annotation, acknowledged by [`Effect::ClearOperation`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// `serin promote`.
    Promote,
    /// `serin abort`.
    Abort,
    /// `serin retry`.
    Retry,
    /// `serin pause`.
    Pause,
    /// `serin resume`.
    Resume,
}

/// One action for the controller. Each is idempotent.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Create or adopt the primary workload (copy of the target), the apex/primary/canary
    /// Services and the routing object. A routing object created here sends 100% to the
    /// primary; an existing one keeps its routes.
    Initialize,
    /// Set the traffic split; `primary + canary == 100`. For A/B testing `canary` applies to the
    /// requests matching `analysis.match`; for the `kubernetes` router (blue/green) a canary
    /// weight of 100 switches the apex Service selector to the canary.
    SetRoutes {
        /// Weight of the primary.
        primary: i32,
        /// Weight of the canary.
        canary: i32,
        /// Mirror requests to the canary (responses from the primary only).
        mirrored: bool,
    },
    /// Scale the target up for analysis (HPA minimum or its previous replicas) and resume its
    /// autoscaler.
    ScaleTargetUp,
    /// Scale the target to zero and pause its autoscaler.
    ScaleTargetToZero,
    /// Copy the target's pod template (and tracked ConfigMaps/Secrets) to the primary, and
    /// reconcile the primary's autoscaler copy.
    PromotePrimary {
        /// Revision being promoted, so the controller can check the target still has it.
        revision: String,
    },
    /// Revert, in Git, the commits that introduced `revision`. The adapter must be idempotent
    /// per revision: if Git no longer declares `revision` (already reverted), it records
    /// `NotNeeded` instead of committing again.
    RevertGit {
        /// The failed revision.
        revision: String,
        /// The last promoted revision Git should go back to.
        stable_revision: Option<String>,
        /// Why the release failed, for the commit trailer and the alert.
        reason: String,
        /// Names of the checks that failed.
        failed_checks: Vec<String>,
    },
    /// Call the `post-rollout` webhooks with this phase in the payload (failures are logged).
    RunPostRolloutHooks {
        /// `Succeeded` or `Failed`.
        phase: CanaryPhase,
    },
    /// Record a Kubernetes Event on the Canary (also sent to `event` webhooks).
    Event {
        /// Normal or Warning.
        type_: EventType,
        /// Machine-readable reason, e.g. `Rollback`.
        reason: String,
        /// Human-readable text.
        message: String,
    },
    /// Send an alert to the Canary's `analysis.alerts` providers of at most this severity.
    Notify {
        /// `Info`, `Warn` or `Error`.
        severity: AlertSeverity,
        /// What happened.
        kind: NotificationKind,
        /// Human-readable text.
        message: String,
        /// Extra fields (revision, failed checks, weights…).
        fields: BTreeMap<String, String>,
    },
    /// Remove an operational annotation: the request has been honoured.
    ClearOperation(Operation),
    /// `revertOnDeletion`: restore the target's replicas, the apex Service and the original
    /// routing objects.
    RestoreOnDeletion,
    /// Remove Serin's finalizer so the Canary can go away.
    RemoveFinalizer,
}
