//! What the controller saw in the cluster this tick, reduced to the facts the state machine
//! decides on. Building it is I/O (cache reads, router queries, hashing) and lives elsewhere;
//! the rollout core only reads it.

use std::collections::BTreeMap;

use crate::crd::canary::Provider;

/// Readiness of a workload (the canary target or the primary).
///
/// The caller judges readiness, because it has the replica counts: a workload is `Ready` when its
/// `observedGeneration` is current and at least `canaryReadyThreshold` /
/// `primaryReadyThreshold` percent (default 100) of the desired replicas are updated and
/// available. The rollout core applies `progressDeadlineSeconds` on top, from its own status, so
/// a workload that stays `NotReady` fails the release even when Kubernetes never marks it failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// Enough replicas are updated and available.
    Ready,
    /// Still rolling out (retriable); the message says what is missing.
    NotReady(String),
    /// The rollout cannot finish (e.g. the Deployment reports `ProgressDeadlineExceeded`).
    Failed(String),
}

impl Readiness {
    /// Whether the workload counts as ready.
    pub fn is_ready(&self) -> bool {
        matches!(self, Readiness::Ready)
    }
}

/// Traffic split as read from (or written to) the router. Weights are percentages summing to 100.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Routes {
    /// Weight of the primary.
    pub primary: i32,
    /// Weight of the canary (for A/B testing: of the requests that match `analysis.match`).
    pub canary: i32,
    /// Whether requests are also mirrored (shadowed) to the canary.
    pub mirrored: bool,
}

impl Routes {
    /// All traffic on the primary, nothing mirrored: the stable split.
    pub const STABLE: Routes = Routes { primary: 100, canary: 0, mirrored: false };
}

/// Operational requests made with `serin promote|abort|retry|pause|resume`, which set
/// annotations on the Canary; the controller removes an annotation when the plan acknowledges it
/// with [`crate::rollout::Effect::ClearOperation`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Operations {
    /// Promote as soon as the current tick's checks pass: skip the remaining steps and gates.
    pub promote: bool,
    /// Roll the release back now (counts as a failed release: quarantined, reverted in Git).
    pub abort: bool,
    /// Run a failed or quarantined revision again.
    pub retry: bool,
    /// Freeze the release where it is (like `spec.suspend`, but remembered in status).
    pub pause: bool,
    /// Undo `pause`.
    pub resume: bool,
}

/// The observed world for one tick.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    /// `metadata.generation` of the Canary.
    pub generation: Option<i64>,
    /// Revision of the target: hash of its pod template plus the content of the ConfigMaps and
    /// Secrets it references.
    pub revision: String,
    /// Checksums of the tracked ConfigMaps and Secrets, keyed `ConfigMap/<name>` /
    /// `Secret/<name>`.
    pub tracked_configs: BTreeMap<String, String>,
    /// Whether the primary workload, the Services and the routing object all exist.
    pub initialized: bool,
    /// Readiness of the target (the canary).
    pub canary: Readiness,
    /// Readiness of the primary.
    pub primary: Readiness,
    /// Current routes, when the routing object exists and could be read. Used to put traffic
    /// back on the primary before a new run if something left it elsewhere; the run's own
    /// progress (weight, mirroring) is read from status, not from here.
    pub routes: Option<Routes>,
    /// Operational annotations present on the Canary.
    pub operations: Operations,
    /// The Canary has a deletion timestamp.
    pub deleting: bool,
    /// The traffic router in effect: `spec.provider`, or the controller's default. The
    /// `kubernetes` router forces blue/green (as in Flagger), and mirroring only happens on
    /// routers that can mirror.
    pub provider: Provider,
}
