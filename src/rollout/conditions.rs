//! Status conditions: Flagger's `Promoted` (reason = phase) plus the kstatus trio `Ready`,
//! `Reconciling`, `Stalled`, so Flux health checks, Argo CD and `kubectl wait` can follow a
//! release.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::crd::status::{CanaryPhase, condition_types};

/// Why the Canary is in its phase, for the condition reason and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Detail {
    /// CamelCase reason, e.g. `FailedChecksThresholdReached`.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
    /// Progress is blocked and needs a human (sets `Stalled=True` even outside `Failed`).
    pub stalled: bool,
}

impl Detail {
    /// A detail with the phase's default reason and Flagger's message.
    pub fn for_phase(phase: CanaryPhase) -> Detail {
        Detail {
            reason: phase.as_str().to_string(),
            message: phase_message(phase).to_string(),
            stalled: false,
        }
    }
}

/// Flagger's condition message for a phase.
pub fn phase_message(phase: CanaryPhase) -> &'static str {
    match phase {
        CanaryPhase::Initializing => "New Deployment detected, starting initialization.",
        CanaryPhase::Initialized => "Deployment initialization completed.",
        CanaryPhase::Waiting => "Waiting for approval.",
        CanaryPhase::Progressing => "New revision detected, progressing canary analysis.",
        CanaryPhase::WaitingPromotion => "Waiting for approval.",
        CanaryPhase::Promoting => "Canary analysis completed, starting primary rolling update.",
        CanaryPhase::Finalising => "Canary analysis completed, routing all traffic to primary.",
        CanaryPhase::Succeeded => "Canary analysis completed successfully, promotion finished.",
        CanaryPhase::Failed => "Canary analysis failed, Deployment scaled to zero.",
        CanaryPhase::Terminating => "Canary is being terminated.",
        CanaryPhase::Terminated => "Canary has been terminated.",
    }
}

fn in_flight(phase: CanaryPhase) -> bool {
    matches!(
        phase,
        CanaryPhase::Initializing
            | CanaryPhase::Waiting
            | CanaryPhase::Progressing
            | CanaryPhase::WaitingPromotion
            | CanaryPhase::Promoting
            | CanaryPhase::Finalising
            | CanaryPhase::Terminating
    )
}

fn status_str(value: Option<bool>) -> &'static str {
    match value {
        Some(true) => "True",
        Some(false) => "False",
        None => "Unknown",
    }
}

/// Sets the four conditions for `phase`. `lastTransitionTime` changes only when a condition's
/// status changes.
pub fn apply(
    conditions: &mut Vec<Condition>,
    phase: CanaryPhase,
    detail: &Detail,
    now: &Time,
    generation: Option<i64>,
) {
    let promoted = match phase {
        CanaryPhase::Initialized | CanaryPhase::Succeeded => Some(true),
        CanaryPhase::Failed => Some(false),
        _ => None,
    };
    let ready = matches!(phase, CanaryPhase::Initialized | CanaryPhase::Succeeded);
    let stalled = phase == CanaryPhase::Failed || detail.stalled;
    let phase_reason = phase.as_str();
    let settled_reason = if ready || stalled { detail.reason.as_str() } else { phase_reason };
    let rows: [(&str, &str, &str); 4] = [
        (condition_types::PROMOTED, status_str(promoted), phase_reason),
        (condition_types::READY, status_str(Some(ready)), settled_reason),
        (condition_types::RECONCILING, status_str(Some(in_flight(phase) && !stalled)), phase_reason),
        (condition_types::STALLED, status_str(Some(stalled)), settled_reason),
    ];
    for (type_, status, reason) in rows {
        set(conditions, type_, status, reason, &detail.message, now, generation);
    }
}

fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: &Time,
    generation: Option<i64>,
) {
    let existing = conditions.iter_mut().find(|c| c.type_ == type_);
    match existing {
        Some(condition) => {
            if condition.status != status {
                condition.last_transition_time = now.clone();
            }
            condition.status = status.to_string();
            condition.reason = reason.to_string();
            condition.message = message.to_string();
            condition.observed_generation = generation;
        }
        None => conditions.push(Condition {
            type_: type_.to_string(),
            status: status.to_string(),
            reason: reason.to_string(),
            message: message.to_string(),
            last_transition_time: now.clone(),
            observed_generation: generation,
        }),
    }
}
