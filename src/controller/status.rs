//! Writing a Canary's status: one write per reconcile that replaces the whole status subresource
//! (so fields the new status no longer has are removed), and the status a Canary gets when it
//! cannot be observed at all (missing target, no router). The write is unconditional (no
//! resourceVersion): only the leader writes a Canary's status.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, PostParams};

use super::workloads::FIELD_MANAGER;
use crate::crd::Canary;
use crate::crd::status::{CanaryStatus, condition_types};

/// What the API server stored on a status write.
#[derive(Debug, Clone, Default)]
pub struct Stored {
    /// The status as stored.
    pub status: Option<CanaryStatus>,
    /// The Canary's resourceVersion after the write: its watch event carries the same one.
    pub resource_version: Option<String>,
}

/// Writes `status` as the whole status of the Canary; returns what the API server stored.
pub async fn write(client: &Client, canary: &Canary, status: &CanaryStatus) -> Result<Stored, kube::Error> {
    let namespace = canary.metadata.namespace.as_deref().unwrap_or_default();
    let name = canary.metadata.name.as_deref().unwrap_or_default();
    let api: Api<Canary> = Api::namespaced(client.clone(), namespace);
    let mut object = canary.clone();
    object.metadata.resource_version = None;
    object.metadata.managed_fields = None;
    object.status = Some(status.clone());
    let params = PostParams { field_manager: Some(FIELD_MANAGER.into()), ..PostParams::default() };
    api.replace_status(name, &params, &object)
        .await
        .map(|stored| Stored { status: stored.status, resource_version: stored.metadata.resource_version })
}

/// `lastTransitionTime` stamp for conditions written outside the rollout core.
fn now() -> Time {
    Time(Timestamp::now())
}

fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    value: &str,
    reason: &str,
    message: &str,
    generation: Option<i64>,
) {
    let unchanged = conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == value && c.reason == reason && c.message == message);
    if unchanged {
        return;
    }
    conditions.retain(|c| c.type_ != type_);
    conditions.push(Condition {
        type_: type_.to_string(),
        status: value.to_string(),
        reason: reason.to_string(),
        message: message.to_string(),
        observed_generation: generation,
        last_transition_time: now(),
    });
}

/// The status of a Canary that cannot be worked on: `Ready=False` and `Stalled=True` with the
/// reason, everything else as it was (phase, weights and counters are not touched, so nothing
/// is lost when the problem is fixed).
pub fn blocked(status: &CanaryStatus, reason: &str, message: &str, generation: Option<i64>) -> CanaryStatus {
    let mut next = status.clone();
    let conditions = next.conditions.get_or_insert_with(Vec::new);
    set(conditions, condition_types::READY, "False", reason, message, generation);
    set(conditions, condition_types::STALLED, "True", reason, message, generation);
    set(conditions, condition_types::RECONCILING, "False", reason, message, generation);
    next.observed_generation = generation;
    next
}

/// Reason of the conditions of a canary held by `--max-concurrent-canaries`.
pub const QUEUED: &str = "Queued";

/// The status of a Canary whose new release waits for a slot under `--max-concurrent-canaries`:
/// `Ready=False` and `Reconciling=True` with reason `Queued` and the message, the phase and
/// everything else as it was (the release starts from there once a slot frees up).
pub fn queued(status: &CanaryStatus, message: &str, generation: Option<i64>) -> CanaryStatus {
    let mut next = status.clone();
    let conditions = next.conditions.get_or_insert_with(Vec::new);
    set(conditions, condition_types::READY, "False", QUEUED, message, generation);
    set(conditions, condition_types::RECONCILING, "True", QUEUED, message, generation);
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_keeps_the_phase_and_says_why() {
        let status =
            CanaryStatus { phase: Some(crate::crd::CanaryPhase::Succeeded), ..CanaryStatus::default() };
        let held = queued(&status, "waiting to start", Some(2));
        assert_eq!(held.phase, status.phase);
        let conditions = held.conditions.clone().unwrap_or_default();
        assert!(
            conditions.iter().any(|c| c.type_ == "Reconciling" && c.status == "True" && c.reason == QUEUED)
        );
        assert_eq!(queued(&held, "waiting to start", Some(2)), held, "no change when asked again");
    }

    #[test]
    fn blocked_sets_conditions_once_and_keeps_progress() {
        let mut status =
            CanaryStatus { canary_weight: Some(30), failed_checks: Some(1), ..CanaryStatus::default() };
        status = blocked(&status, "TargetNotFound", "target deployment test/podinfo not found", Some(4));
        assert_eq!(
            (status.canary_weight, status.failed_checks, status.observed_generation),
            (Some(30), Some(1), Some(4))
        );
        let conditions = status.conditions.clone().unwrap_or_default();
        let find =
            |t: &str| conditions.iter().find(|c| c.type_ == t).map(|c| (c.status.clone(), c.reason.clone()));
        assert_eq!(find("Ready"), Some(("False".into(), "TargetNotFound".into())));
        assert_eq!(find("Stalled"), Some(("True".into(), "TargetNotFound".into())));
        // The same problem again leaves the conditions (and their transition times) alone.
        let again = blocked(&status, "TargetNotFound", "target deployment test/podinfo not found", Some(4));
        assert_eq!(again, status);
    }
}
