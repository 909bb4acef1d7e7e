//! The working state of one decision: inputs, the status being built, the effects so far, and
//! the helpers every phase uses (phase changes, waits with the progress deadline, gates, alerts).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::crd::canary::{AlertSeverity, CanarySpec, WebhookType};
use crate::crd::status::{CanaryPhase, CanaryStatus, ProgressWait, WaitReason};

use super::conditions::{self, Detail};
use super::observed::Observed;
use super::plan::{Effect, EventType, NotificationKind, Plan};
use super::report::{AnalysisReport, Needs};
use super::steps;
use super::verdict::{self, Judged, Stage};

/// A confirm gate (`confirm-rollout`, `confirm-traffic-increase`, `confirm-promotion`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Gate {
    Rollout,
    TrafficIncrease,
    Promotion,
}

impl Gate {
    fn webhook_type(self) -> WebhookType {
        match self {
            Gate::Rollout => WebhookType::ConfirmRollout,
            Gate::TrafficIncrease => WebhookType::ConfirmTrafficIncrease,
            Gate::Promotion => WebhookType::ConfirmPromotion,
        }
    }

    /// The wait a closed gate puts the release in.
    pub(crate) fn wait_reason(self) -> WaitReason {
        match self {
            Gate::Rollout => WaitReason::ConfirmRollout,
            Gate::TrafficIncrease => WaitReason::ConfirmTrafficIncrease,
            Gate::Promotion => WaitReason::ConfirmPromotion,
        }
    }
}

/// What happened to the wait when a tick halted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Wait {
    /// The wait started or its reason changed this tick.
    pub changed: bool,
    /// The progress deadline has passed.
    pub expired: bool,
}

pub(crate) struct Tick<'a> {
    pub spec: &'a CanarySpec,
    pub observed: &'a Observed,
    report: Option<&'a AnalysisReport>,
    pub needs: Needs,
    pub now: Time,
    pub status: CanaryStatus,
    pub effects: Vec<Effect>,
    detail: Option<Detail>,
    start_phase: Option<CanaryPhase>,
}

impl<'a> Tick<'a> {
    /// A tick; `report == None` probes which inputs the tick consults (for `needs`), answering
    /// every gate open and every check passed.
    pub fn new(
        spec: &'a CanarySpec,
        status: &CanaryStatus,
        observed: &'a Observed,
        report: Option<&'a AnalysisReport>,
        now: Time,
    ) -> Self {
        Tick {
            spec,
            observed,
            report,
            needs: Needs::default(),
            now,
            status: status.clone(),
            effects: Vec::new(),
            detail: None,
            start_phase: status.phase,
        }
    }

    pub fn phase(&self) -> Option<CanaryPhase> {
        self.status.phase
    }

    pub fn target(&self) -> &str {
        &self.spec.target_ref.name
    }

    pub fn revision(&self) -> &str {
        &self.observed.revision
    }

    pub fn set_phase(&mut self, phase: CanaryPhase) {
        self.status.phase = Some(phase);
    }

    /// Sets the reason and message the conditions will carry.
    pub fn detail(&mut self, reason: &str, message: String, stalled: bool) {
        self.detail = Some(Detail { reason: reason.to_string(), message, stalled });
    }

    pub fn emit(&mut self, effect: Effect) {
        self.effects.push(effect);
    }

    pub fn event(&mut self, type_: EventType, reason: &str, message: String) {
        self.emit(Effect::Event { type_, reason: reason.to_string(), message });
    }

    pub fn notify(&mut self, severity: AlertSeverity, kind: NotificationKind, message: String) {
        self.notify_with(severity, kind, message, BTreeMap::new());
    }

    pub fn notify_with(
        &mut self,
        severity: AlertSeverity,
        kind: NotificationKind,
        message: String,
        mut fields: BTreeMap<String, String>,
    ) {
        fields.insert("target".into(), format!("{:?}/{}", self.spec.target_ref.kind, self.target()));
        fields.insert("revision".into(), self.observed.revision.clone());
        self.emit(Effect::Notify { severity, kind, message, fields });
    }

    /// Sets the routes and records whether traffic is mirrored.
    pub fn route(&mut self, primary: i32, canary: i32, mirrored: bool) {
        self.emit(Effect::SetRoutes { primary, canary, mirrored });
        self.status.mirrored = mirrored.then_some(true);
    }

    /// Whether the last routes this run set mirror traffic to the canary.
    pub fn mirrored(&self) -> bool {
        self.status.mirrored == Some(true)
    }

    /// Records progress: the release is no longer waiting.
    pub fn progress(&mut self) {
        self.status.waiting = None;
    }

    /// Starts a fresh wait at `now` (a new run or a phase change).
    pub fn restart_wait(&mut self, reason: WaitReason) {
        self.status.waiting = Some(ProgressWait { reason, since: self.now.clone() });
    }

    /// The tick halts because of `reason`: start the wait or continue it, and say whether the
    /// progress deadline has passed. Workload and no-data waits share one clock since the last
    /// progress, so alternating between them cannot stall a release forever; a gate found
    /// closed gets the full deadline from that moment.
    pub fn wait(&mut self, reason: WaitReason) -> Wait {
        let deadline = steps::progress_deadline(self.spec);
        let now = self.now.clone();
        match &mut self.status.waiting {
            None => {
                self.status.waiting = Some(ProgressWait { reason, since: now });
                Wait { changed: true, expired: false }
            }
            Some(wait) => {
                let changed = wait.reason != reason;
                if changed && reason.is_gate() {
                    wait.since = now;
                }
                wait.reason = reason;
                let elapsed = self.now.0.as_second() - wait.since.0.as_second();
                Wait { changed, expired: elapsed > deadline }
            }
        }
    }

    fn has_hooks(&self, type_: WebhookType) -> bool {
        self.spec
            .analysis
            .webhooks
            .iter()
            .flatten()
            .any(|h| h.type_.unwrap_or(WebhookType::Unset).effective() == type_)
    }

    /// Whether a confirm gate is open. No webhooks of that type: open. Not asked: closed.
    pub fn gate(&mut self, gate: Gate) -> bool {
        if !self.has_hooks(gate.webhook_type()) {
            return true;
        }
        match gate {
            Gate::Rollout => self.needs.confirm_rollout = true,
            Gate::TrafficIncrease => self.needs.confirm_traffic_increase = true,
            Gate::Promotion => self.needs.confirm_promotion = true,
        }
        let Some(report) = self.report else { return true };
        let answer = match gate {
            Gate::Rollout => report.gates.confirm_rollout,
            Gate::TrafficIncrease => report.gates.confirm_traffic_increase,
            Gate::Promotion => report.gates.confirm_promotion,
        };
        answer == Some(true)
    }

    /// Whether a `rollback` webhook asked for a rollback.
    pub fn rollback_requested(&mut self) -> bool {
        if !self.has_hooks(WebhookType::Rollback) {
            return false;
        }
        self.needs.rollback_hooks = true;
        self.report.is_some_and(|r| r.rollback_requested)
    }

    /// Judges a stage's checks and records the results in `status.analysis`.
    pub fn judge(&mut self, stage: Stage) -> Judged {
        let configured = !verdict::expected(self.spec, stage).is_empty();
        match stage {
            Stage::PreRollout => self.needs.pre_rollout_hooks |= configured,
            Stage::Analysis => self.needs.analysis |= configured,
        }
        let judged = verdict::judge(self.spec, stage, self.report, &self.now);
        if configured {
            let mut analysis = self.status.analysis.take().unwrap_or_default();
            for result in &judged.results {
                match analysis.iter_mut().find(|r| r.name == result.name) {
                    Some(slot) => *slot = result.clone(),
                    None => analysis.push(result.clone()),
                }
            }
            self.status.analysis = Some(analysis);
        }
        judged
    }

    /// The plan: sets `observedGeneration`, `lastTransitionTime` and conditions.
    pub fn finish(mut self, requeue_after: Duration) -> Plan {
        self.status.observed_generation = self.observed.generation;
        let phase = self.status.phase.unwrap_or(CanaryPhase::Initializing);
        let phase_changed = self.start_phase != self.status.phase;
        if phase_changed {
            self.status.last_transition_time = Some(self.now.clone());
        }
        let missing = self.status.conditions.as_ref().is_none_or(|c| c.is_empty());
        if phase_changed || self.detail.is_some() || missing {
            let detail = self.detail.take().unwrap_or_else(|| Detail::for_phase(phase));
            let mut list = self.status.conditions.take().unwrap_or_default();
            conditions::apply(&mut list, phase, &detail, &self.now, self.observed.generation);
            self.status.conditions = Some(list);
        }
        Plan { status: self.status, effects: self.effects, requeue_after }
    }
}
