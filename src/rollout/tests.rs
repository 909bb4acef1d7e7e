//! Table tests: one row per Flagger transition (and each Serin improvement), asserting phase,
//! weight, counters and the exact ordered effects.

use pretty_assertions::assert_eq;
use serde_json::json;

use crate::crd::canary::{CanarySpec, Provider};
use crate::crd::status::{
    CanaryPhase, CanaryStatus, FailedRevision, GitOpsStatus, GitRevertState, ProgressWait, Verdict,
    WaitReason, condition_types,
};

use super::observed::{Observed, Readiness, Routes};
use super::plan::{Effect, Plan};
use super::report::{AnalysisReport, CheckKind, Gates, Needs};
use super::testkit::*;
use super::{decide, needs};

use CanaryPhase::*;

#[derive(Clone)]
struct Scenario {
    spec: CanarySpec,
    status: CanaryStatus,
    observed: Observed,
    report: AnalysisReport,
    now: i64,
}

impl Scenario {
    /// A Canary just created: no status, nothing initialised.
    fn fresh() -> Self {
        let mut observed = observed("r1");
        observed.initialized = false;
        Scenario {
            spec: spec_from(spec_json()),
            status: CanaryStatus::default(),
            observed,
            report: AnalysisReport::default(),
            now: 60,
        }
    }

    /// Settled in `phase` on r1, target still on r1.
    fn settled(phase: CanaryPhase) -> Self {
        Scenario { status: settled(phase, "r1"), observed: observed("r1"), ..Scenario::fresh() }
    }

    /// Settled in `phase` on r1, target now on r2.
    fn new_revision(phase: CanaryPhase) -> Self {
        Scenario { observed: observed("r2"), ..Scenario::settled(phase) }
    }

    /// A run of r2 in `phase` at `weight`, metric passing, one minute in.
    fn running(phase: CanaryPhase, weight: i32) -> Self {
        Scenario {
            status: running(phase, weight),
            observed: observed("r2"),
            report: metric(Verdict::Pass),
            ..Scenario::fresh()
        }
    }

    fn spec(mut self, f: impl FnOnce(&mut CanarySpec)) -> Self {
        f(&mut self.spec);
        self
    }

    fn status(mut self, f: impl FnOnce(&mut CanaryStatus)) -> Self {
        f(&mut self.status);
        self
    }

    fn observed(mut self, f: impl FnOnce(&mut Observed)) -> Self {
        f(&mut self.observed);
        self
    }

    fn report(mut self, report: AnalysisReport) -> Self {
        self.report = report;
        self
    }

    fn gates(mut self, f: impl FnOnce(&mut Gates)) -> Self {
        f(&mut self.report.gates);
        self
    }

    fn at(mut self, seconds: i64) -> Self {
        self.now = seconds;
        self
    }

    fn decide(&self) -> Plan {
        decide(&self.spec, &self.status, &self.observed, &self.report, at(self.now))
    }
}

struct Row {
    name: &'static str,
    scenario: Scenario,
    phase: CanaryPhase,
    effects: Vec<&'static str>,
    weight: Option<i32>,
    failed: Option<i32>,
    iterations: Option<i32>,
    no_data: Option<i32>,
}

fn row(name: &'static str, scenario: Scenario, phase: CanaryPhase, effects: &[&'static str]) -> Row {
    Row {
        name,
        scenario,
        phase,
        effects: effects.to_vec(),
        weight: None,
        failed: None,
        iterations: None,
        no_data: None,
    }
}

impl Row {
    fn weight(mut self, weight: i32) -> Self {
        self.weight = Some(weight);
        self
    }
    fn failed(mut self, failed: i32) -> Self {
        self.failed = Some(failed);
        self
    }
    fn iterations(mut self, iterations: i32) -> Self {
        self.iterations = Some(iterations);
        self
    }
    fn no_data(mut self, no_data: i32) -> Self {
        self.no_data = Some(no_data);
        self
    }
}

fn check_rows(rows: Vec<Row>) {
    let mut problems = Vec::new();
    for row in rows {
        let plan = row.scenario.decide();
        let effects = shapes(&plan);
        if plan.status.phase != Some(row.phase) {
            problems.push(format!("{}: phase {:?}, want {:?}", row.name, plan.status.phase, row.phase));
        }
        if effects != row.effects {
            problems.push(format!("{}: effects {:?}, want {:?}", row.name, effects, row.effects));
        }
        let counters = [
            ("weight", row.weight, plan.status.canary_weight),
            ("failedChecks", row.failed, plan.status.failed_checks),
            ("iterations", row.iterations, plan.status.iterations),
            ("noDataChecks", row.no_data, plan.status.no_data_checks),
        ];
        for (what, want, got) in counters {
            if want.is_some() && want != got {
                problems.push(format!("{}: {what} {got:?}, want {want:?}", row.name));
            }
        }
        for effect in &plan.effects {
            if let Effect::SetRoutes { primary, canary, .. } = effect
                && primary + canary != 100
            {
                problems.push(format!("{}: routes {primary}+{canary} != 100", row.name));
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

const ROLLBACK: &[&str] = &[
    "SetRoutes(100,0)",
    "ScaleTargetToZero",
    "PostRollout(Failed)",
    "Event(Warning,{})",
    "Notify(Error,Rollback)",
];

/// The rollback effects with the Event reason filled in (and a Git revert when `revert`).
fn rollback(reason: &'static str, revert: bool) -> Vec<&'static str> {
    let event: &'static str = Box::leak(format!("Event(Warning,{reason})").into_boxed_str());
    let mut list = vec![ROLLBACK[0], ROLLBACK[1]];
    if revert {
        list.push("RevertGit(r2)");
    }
    list.extend([ROLLBACK[2], event, ROLLBACK[4]]);
    list
}

fn with_rollback(prefix: &[&'static str], reason: &'static str, revert: bool) -> Vec<&'static str> {
    let mut list = prefix.to_vec();
    list.extend(rollback(reason, revert));
    list
}

const NEW_RUN: &[&str] = &["ScaleTargetUp", "Event(Normal,NewRevision)", "Notify(Info,NewRevision)"];
const ADVANCE: &str = "Event(Normal,Advance)";
const PROMOTE: &[&str] = &["Event(Normal,Promoting)", "PromotePrimary(r2)"];
const WAIT_APPROVAL: &[&str] = &["Event(Normal,WaitingForApproval)", "Notify(Warn,WaitingApproval)"];

fn gitops(spec: &mut CanarySpec) {
    let mut value = serde_json::to_value(&*spec).expect("serializes");
    value["gitops"] = json!({"revert": true});
    *spec = spec_from(value);
}

fn quarantine(status: &mut CanaryStatus, revision: &str) {
    status.failed_revisions =
        Some(vec![FailedRevision { revision: revision.into(), reason: Some("bad".into()), failed_at: None }]);
}

fn waiting(reason: WaitReason, since: i64) -> impl FnOnce(&mut CanaryStatus) {
    move |s| s.waiting = Some(ProgressWait { reason, since: time(since) })
}

fn ab(spec: &mut CanarySpec) {
    analysis(
        spec,
        json!({"stepWeight": null, "maxWeight": null, "iterations": 3,
               "match": [{"headers": {"x-canary": {"exact": "insider"}}}]}),
    );
}

fn blue_green(spec: &mut CanarySpec) {
    analysis(spec, json!({"stepWeight": null, "maxWeight": null, "iterations": 3}));
}

#[test]
fn initialization() {
    check_rows(vec![
        row(
            "new Canary creates the primary, Services and routes",
            Scenario::fresh(),
            Initializing,
            &["Event(Normal,Initializing)", "Initialize"],
        ),
        row(
            "Initializing waits for the primary",
            Scenario::fresh().status(|s| s.phase = Some(Initializing)).observed(|o| {
                o.initialized = true;
                o.primary = Readiness::NotReady("0/2".into());
            }),
            Initializing,
            &[],
        ),
        row(
            "Initializing -> Initialized once the primary is ready",
            Scenario::fresh().status(|s| s.phase = Some(Initializing)).observed(|o| o.initialized = true),
            Initialized,
            &["ScaleTargetToZero", "Event(Normal,Initialized)", "Notify(Info,Initialized)"],
        )
        .weight(0),
        row(
            "Initializing stalls (condition, alert) when the primary misses the deadline",
            Scenario::fresh()
                .status(|s| s.phase = Some(Initializing))
                .status(waiting(WaitReason::PrimaryNotReady, 0))
                .observed(|o| {
                    o.initialized = true;
                    o.primary = Readiness::NotReady("0/2".into());
                })
                .at(601),
            Initializing,
            &["Event(Warning,InitializationStalled)", "Notify(Error,Stalled)"],
        ),
    ]);
}

#[test]
fn new_revisions_and_gates() {
    check_rows(vec![
        row("Initialized, no change: nothing to do", Scenario::settled(Initialized), Initialized, &[]),
        row(
            "Initialized -> Progressing on a new revision",
            Scenario::new_revision(Initialized),
            Progressing,
            NEW_RUN,
        )
        .weight(0)
        .failed(0)
        .iterations(0),
        row(
            "a tracked ConfigMap change starts a run",
            Scenario::settled(Initialized).observed(|o| {
                o.tracked_configs.insert("ConfigMap/podinfo".into(), "abc".into());
            }),
            Progressing,
            NEW_RUN,
        ),
        row(
            "Succeeded -> Progressing on a new revision",
            Scenario::new_revision(Succeeded),
            Progressing,
            NEW_RUN,
        ),
        row("Failed -> Progressing on a new revision", Scenario::new_revision(Failed), Progressing, NEW_RUN),
        row(
            "a run resets routes left away from the primary before scaling up",
            Scenario::new_revision(Failed)
                .observed(|o| o.routes = Some(Routes { primary: 0, canary: 100, mirrored: false })),
            Progressing,
            &["SetRoutes(100,0)", NEW_RUN[0], NEW_RUN[1], NEW_RUN[2]],
        ),
        row(
            "confirm-rollout closed -> Waiting (alert once)",
            Scenario::new_revision(Succeeded).spec(|s| hooks(s, &["confirm-rollout"])),
            Waiting,
            WAIT_APPROVAL,
        ),
        row(
            "Waiting: confirm-rollout still closed, within the deadline",
            Scenario::new_revision(Succeeded)
                .spec(|s| hooks(s, &["confirm-rollout"]))
                .status(|s| s.phase = Some(Waiting))
                .status(|s| s.revision = Some("r2".into()))
                .status(waiting(WaitReason::ConfirmRollout, 0))
                .at(300),
            Waiting,
            &[],
        ),
        row(
            "Waiting -> Progressing when confirm-rollout opens",
            Scenario::new_revision(Succeeded)
                .spec(|s| hooks(s, &["confirm-rollout"]))
                .status(|s| s.phase = Some(Waiting))
                .gates(|g| g.confirm_rollout = Some(true)),
            Progressing,
            NEW_RUN,
        ),
        row(
            "Waiting past the deadline -> Failed (no quarantine, no Git revert)",
            Scenario::new_revision(Succeeded)
                .spec(|s| hooks(s, &["confirm-rollout"]))
                .spec(gitops)
                .status(|s| s.phase = Some(Waiting))
                .status(|s| s.revision = Some("r2".into()))
                .status(waiting(WaitReason::ConfirmRollout, 0))
                .at(601),
            Failed,
            &rollback("ApprovalDeadlineExceeded", false),
        ),
        row(
            "Failed, same revision: stays Failed (no re-run)",
            Scenario::running(Failed, 0).status(|s| quarantine(s, "r2")),
            Failed,
            &[],
        ),
        row(
            "a quarantined revision coming back fails fast, no traffic",
            Scenario::new_revision(Succeeded).status(|s| quarantine(s, "r2")),
            Failed,
            &[
                "SetRoutes(100,0)",
                "ScaleTargetToZero",
                "Event(Warning,RevisionQuarantined)",
                "Notify(Error,Quarantined)",
            ],
        )
        .weight(0),
        row(
            "retry re-runs a quarantined revision",
            Scenario::running(Failed, 0)
                .status(|s| quarantine(s, "r2"))
                .observed(|o| o.operations.retry = true),
            Progressing,
            &["Clear(Retry)", "Event(Normal,Retry)", NEW_RUN[0], NEW_RUN[1], NEW_RUN[2]],
        ),
        row(
            "a Git revert back to the promoted revision settles without analysis",
            Scenario::running(Failed, 0)
                .status(|s| quarantine(s, "r2"))
                .observed(|o| o.revision = "r1".into()),
            Initialized,
            &["Event(Normal,BackToStable)", "Notify(Info,BackToStable)"],
        ),
        row(
            "Waiting: the pending revision went away (reverted) -> settled",
            Scenario::settled(Succeeded)
                .spec(|s| hooks(s, &["confirm-rollout"]))
                .status(|s| s.phase = Some(Waiting))
                .status(|s| s.revision = Some("r2".into())),
            Initialized,
            &["Event(Normal,BackToStable)", "Notify(Info,BackToStable)"],
        ),
        row(
            "abort while Waiting -> Failed, quarantined",
            Scenario::new_revision(Succeeded)
                .spec(|s| hooks(s, &["confirm-rollout"]))
                .status(|s| s.phase = Some(Waiting))
                .observed(|o| o.operations.abort = true),
            Failed,
            &with_rollback(&["Clear(Abort)"], "Aborted", false),
        ),
        row(
            "a pending Git revert is re-emitted until its outcome is recorded",
            Scenario::running(Failed, 0).spec(gitops).status(|s| {
                s.gitops = Some(GitOpsStatus {
                    revision: "r2".into(),
                    state: GitRevertState::Pending,
                    reverted_commits: None,
                    revert_commit: None,
                    pull_request_url: None,
                    message: None,
                    last_transition_time: None,
                })
            }),
            Failed,
            &["RevertGit(r2)"],
        ),
    ]);
}

#[test]
fn canary_analysis() {
    let pre_rollout_pass = AnalysisReport {
        checks: vec![check(CheckKind::PreRolloutHook, "pre-rollout-hook", Verdict::Pass)],
        ..AnalysisReport::default()
    };
    let pre_rollout_fail = AnalysisReport {
        checks: vec![check(CheckKind::PreRolloutHook, "pre-rollout-hook", Verdict::Fail)],
        ..AnalysisReport::default()
    };
    let hook_fail = AnalysisReport {
        checks: vec![
            check(CheckKind::RolloutHook, "rollout-hook", Verdict::Fail),
            check(CheckKind::Metric, METRIC, Verdict::Pass),
        ],
        ..AnalysisReport::default()
    };
    let on_no_data = |policy: &'static str| {
        move |s: &mut CanarySpec| {
            analysis(
                s,
                json!({"metrics": [{"name": METRIC, "thresholdRange": {"min": 99}, "onNoData": policy}]}),
            )
        }
    };
    check_rows(vec![
        row(
            "canary not ready: hold, no count",
            Scenario::running(Progressing, 0).observed(|o| o.canary = Readiness::NotReady("1/2".into())),
            Progressing,
            &[],
        )
        .weight(0)
        .failed(0),
        row(
            "canary not ready past the deadline -> rollback",
            Scenario::running(Progressing, 0)
                .observed(|o| o.canary = Readiness::NotReady("1/2".into()))
                .at(601),
            Failed,
            &rollback("CanaryProgressDeadlineExceeded", false),
        ),
        row(
            "canary failed (non-retriable) -> rollback with Git revert",
            Scenario::running(Progressing, 10)
                .spec(gitops)
                .observed(|o| o.canary = Readiness::Failed("ProgressDeadlineExceeded".into())),
            Failed,
            &rollback("CanaryFailed", true),
        )
        .weight(0),
        row(
            "primary not ready during analysis: hold",
            Scenario::running(Progressing, 10).observed(|o| o.primary = Readiness::NotReady("1/2".into())),
            Progressing,
            &[],
        )
        .weight(10),
        row(
            "primary not ready past the deadline -> rollback, no Git revert",
            Scenario::running(Progressing, 10)
                .spec(gitops)
                .observed(|o| o.primary = Readiness::NotReady("1/2".into()))
                .at(601),
            Failed,
            &rollback("PrimaryProgressDeadlineExceeded", false),
        ),
        row(
            "primary failed -> rollback",
            Scenario::running(Progressing, 10).observed(|o| o.primary = Readiness::Failed("crash".into())),
            Failed,
            &rollback("PrimaryFailed", false),
        ),
        row(
            "weight 0: pre-rollout hooks pass, first weight step",
            Scenario::running(Progressing, 0).spec(|s| hooks(s, &["pre-rollout"])).report(pre_rollout_pass),
            Progressing,
            &["SetRoutes(90,10)", ADVANCE],
        )
        .weight(10)
        .failed(0),
        row(
            "weight 0: pre-rollout hook fails -> failedChecks++",
            Scenario::running(Progressing, 0).spec(|s| hooks(s, &["pre-rollout"])).report(pre_rollout_fail),
            Progressing,
            &["Event(Warning,CheckFailed)"],
        )
        .weight(0)
        .failed(1),
        row(
            "metrics pass -> weight += stepWeight",
            Scenario::running(Progressing, 10),
            Progressing,
            &["SetRoutes(80,20)", ADVANCE],
        )
        .weight(20),
        row(
            "stepWeights schedule",
            Scenario::running(Progressing, 5).spec(|s| {
                analysis(s, json!({"stepWeight": null, "maxWeight": null, "stepWeights": [5, 25, 50]}))
            }),
            Progressing,
            &["SetRoutes(75,25)", ADVANCE],
        )
        .weight(25),
        row(
            "a step never passes maxWeight",
            Scenario::running(Progressing, 20).spec(|s| analysis(s, json!({"maxWeight": 25}))),
            Progressing,
            &["SetRoutes(75,25)", ADVANCE],
        )
        .weight(25),
        row(
            "metric fails below threshold: halt, failedChecks++",
            Scenario::running(Progressing, 10).report(metric(Verdict::Fail)),
            Progressing,
            &["Event(Warning,CheckFailed)"],
        )
        .weight(10)
        .failed(1),
        row(
            "metric fails reaching threshold -> rollback, Git revert",
            Scenario::running(Progressing, 20)
                .spec(gitops)
                .status(|s| s.failed_checks = Some(1))
                .report(metric(Verdict::Fail)),
            Failed,
            &with_rollback(&["Event(Warning,CheckFailed)"], "FailedChecksThresholdReached", true),
        )
        .weight(0)
        .failed(2),
        row(
            "failedChecks already at threshold -> rollback before anything else",
            Scenario::running(Progressing, 20)
                .status(|s| s.failed_checks = Some(2))
                .observed(|o| o.canary = Readiness::NotReady("restarting".into())),
            Failed,
            &rollback("FailedChecksThresholdReached", false),
        ),
        row(
            "rollout webhook fails -> failedChecks++",
            Scenario::running(Progressing, 10).spec(|s| hooks(s, &["rollout"])).report(hook_fail),
            Progressing,
            &["Event(Warning,CheckFailed)"],
        )
        .failed(1),
        row(
            "metric backend error counts as a failed check",
            Scenario::running(Progressing, 10).report(metric(Verdict::Error)),
            Progressing,
            &["Event(Warning,CheckFailed)"],
        )
        .failed(1),
        row(
            "a configured metric without a result counts as a failed check",
            Scenario::running(Progressing, 10).report(AnalysisReport::default()),
            Progressing,
            &["Event(Warning,CheckFailed)"],
        )
        .failed(1),
        row(
            "no data (hold): no advance, noDataChecks++, no failure",
            Scenario::running(Progressing, 10).report(metric(Verdict::NoData)),
            Progressing,
            &["Event(Warning,NoData)"],
        )
        .weight(10)
        .failed(0)
        .no_data(1),
        row(
            "no data past the deadline -> rollback",
            Scenario::running(Progressing, 10)
                .status(waiting(WaitReason::NoData, 0))
                .report(metric(Verdict::NoData))
                .at(601),
            Failed,
            &with_rollback(&["Event(Warning,NoData)"], "NoDataDeadlineExceeded", false),
        ),
        row(
            "no data with onNoData: fail counts as a failed check",
            Scenario::running(Progressing, 10).spec(on_no_data("fail")).report(metric(Verdict::NoData)),
            Progressing,
            &["Event(Warning,CheckFailed)"],
        )
        .failed(1)
        .no_data(0),
        row(
            "no data with onNoData: pass-with-warning advances with a Warning",
            Scenario::running(Progressing, 10)
                .spec(on_no_data("pass-with-warning"))
                .report(metric(Verdict::NoData)),
            Progressing,
            &["Event(Warning,NoDataPassed)", "SetRoutes(80,20)", ADVANCE],
        )
        .weight(20),
        row(
            "confirm-traffic-increase closed: halt, no count",
            Scenario::running(Progressing, 10).spec(|s| hooks(s, &["confirm-traffic-increase"])),
            Progressing,
            WAIT_APPROVAL,
        )
        .weight(10)
        .failed(0),
        row(
            "confirm-traffic-increase open: advance",
            Scenario::running(Progressing, 10)
                .spec(|s| hooks(s, &["confirm-traffic-increase"]))
                .gates(|g| g.confirm_traffic_increase = Some(true)),
            Progressing,
            &["SetRoutes(80,20)", ADVANCE],
        ),
        row(
            "a gate found closed late gets its own full deadline",
            Scenario::running(Progressing, 10)
                .spec(|s| hooks(s, &["confirm-traffic-increase"]))
                .status(waiting(WaitReason::CanaryNotReady, 0))
                .at(900),
            Progressing,
            WAIT_APPROVAL,
        )
        .weight(10),
        row(
            "confirm-traffic-increase closed past the deadline -> Failed, no quarantine",
            Scenario::running(Progressing, 10)
                .spec(|s| hooks(s, &["confirm-traffic-increase"]))
                .status(waiting(WaitReason::ConfirmTrafficIncrease, 0))
                .at(601),
            Failed,
            &rollback("ApprovalDeadlineExceeded", false),
        ),
        row(
            "maxWeight reached -> promote (copy spec to primary)",
            Scenario::running(Progressing, 30),
            Promoting,
            PROMOTE,
        )
        .weight(30),
        row(
            "confirm-promotion closed -> WaitingPromotion",
            Scenario::running(Progressing, 30).spec(|s| hooks(s, &["confirm-promotion"])),
            WaitingPromotion,
            WAIT_APPROVAL,
        ),
        row(
            "WaitingPromotion keeps analysing: a failure counts",
            Scenario::running(WaitingPromotion, 30)
                .spec(|s| hooks(s, &["confirm-promotion"]))
                .report(metric(Verdict::Fail)),
            WaitingPromotion,
            &["Event(Warning,CheckFailed)"],
        )
        .failed(1),
        row(
            "WaitingPromotion -> Promoting when the gate opens",
            Scenario::running(WaitingPromotion, 30)
                .spec(|s| hooks(s, &["confirm-promotion"]))
                .gates(|g| g.confirm_promotion = Some(true)),
            Promoting,
            PROMOTE,
        ),
        row(
            "WaitingPromotion past the deadline -> Failed",
            Scenario::running(WaitingPromotion, 30)
                .spec(|s| hooks(s, &["confirm-promotion"]))
                .status(waiting(WaitReason::ConfirmPromotion, 0))
                .at(601),
            Failed,
            &rollback("ApprovalDeadlineExceeded", false),
        ),
        row(
            "rollback webhook 2xx -> rollback",
            Scenario::running(Progressing, 10)
                .spec(|s| hooks(s, &["rollback"]))
                .report(AnalysisReport { rollback_requested: true, ..metric(Verdict::Pass) }),
            Failed,
            &rollback("RollbackWebhook", false),
        ),
        row(
            "rollback webhook also applies in WaitingPromotion",
            Scenario::running(WaitingPromotion, 30)
                .spec(|s| hooks(s, &["rollback"]))
                .report(AnalysisReport { rollback_requested: true, ..metric(Verdict::Pass) }),
            Failed,
            &rollback("RollbackWebhook", false),
        ),
        row(
            "mirror: one mirrored step before the first weight",
            Scenario::running(Progressing, 0).spec(|s| analysis(s, json!({"mirror": true}))),
            Progressing,
            &["SetRoutes(100,0,mirrored)", "Event(Normal,Mirroring)"],
        )
        .weight(0),
        row(
            "mirror: after mirroring, the first weight step",
            Scenario::running(Progressing, 0)
                .spec(|s| analysis(s, json!({"mirror": true})))
                .status(|s| s.mirrored = Some(true))
                .observed(|o| o.routes = Some(Routes { primary: 100, canary: 0, mirrored: true })),
            Progressing,
            &["SetRoutes(90,10)", ADVANCE],
        )
        .weight(10),
        row(
            "revision changed mid-run: 100% primary, counters reset, restart",
            Scenario::running(Progressing, 20)
                .status(|s| s.failed_checks = Some(1))
                .observed(|o| o.revision = "r3".into()),
            Progressing,
            &["SetRoutes(100,0)", "Event(Normal,NewRevision)", "Notify(Info,NewRevision)"],
        )
        .weight(0)
        .failed(0)
        .iterations(0),
        row(
            "revision changed mid-run to the promoted one: back to stable",
            Scenario::running(Progressing, 20).observed(|o| o.revision = "r1".into()),
            Initialized,
            &[
                "SetRoutes(100,0)",
                "ScaleTargetToZero",
                "Event(Normal,BackToStable)",
                "Notify(Info,BackToStable)",
            ],
        )
        .weight(0),
        row(
            "revision changed mid-run to a quarantined one: refused",
            Scenario::running(Progressing, 20)
                .status(|s| quarantine(s, "r3"))
                .observed(|o| o.revision = "r3".into()),
            Failed,
            &[
                "SetRoutes(100,0)",
                "ScaleTargetToZero",
                "Event(Warning,RevisionQuarantined)",
                "Notify(Error,Quarantined)",
            ],
        ),
        row(
            "skipAnalysis: promote as soon as the canary is ready",
            Scenario::running(Progressing, 0)
                .spec(|s| {
                    let mut v = serde_json::to_value(&*s).expect("serializes");
                    v["skipAnalysis"] = json!(true);
                    *s = spec_from(v);
                })
                .report(metric(Verdict::Fail)),
            Promoting,
            PROMOTE,
        ),
        row(
            "skipAnalysis: the progress deadline still applies",
            Scenario::running(Progressing, 0)
                .spec(|s| {
                    let mut v = serde_json::to_value(&*s).expect("serializes");
                    v["skipAnalysis"] = json!(true);
                    *s = spec_from(v);
                })
                .observed(|o| o.canary = Readiness::NotReady("0/1".into()))
                .at(601),
            Failed,
            &rollback("CanaryProgressDeadlineExceeded", false),
        ),
    ]);
}

#[test]
fn ab_testing_and_blue_green() {
    check_rows(vec![
        row(
            "A/B: iteration routes matched traffic to the canary",
            Scenario::running(Progressing, 0).spec(ab).status(|s| s.iterations = Some(1)),
            Progressing,
            &["SetRoutes(0,100)", ADVANCE],
        )
        .iterations(2),
        row(
            "A/B: iterations done -> promote",
            Scenario::running(Progressing, 0).spec(ab).status(|s| s.iterations = Some(3)),
            Promoting,
            PROMOTE,
        ),
        row(
            "A/B: confirm-promotion closed keeps iterations (Flagger #1141)",
            Scenario::running(Progressing, 0)
                .spec(ab)
                .spec(|s| hooks(s, &["confirm-promotion"]))
                .status(|s| s.iterations = Some(3)),
            WaitingPromotion,
            WAIT_APPROVAL,
        )
        .iterations(3),
        row(
            "B/G: iteration without traffic",
            Scenario::running(Progressing, 0).spec(blue_green).status(|s| s.iterations = Some(1)),
            Progressing,
            &[ADVANCE],
        )
        .iterations(2),
        row(
            "B/G with mirror: mirrored during every iteration",
            Scenario::running(Progressing, 0)
                .spec(blue_green)
                .spec(|s| analysis(s, json!({"mirror": true})))
                .status(|s| s.iterations = Some(1)),
            Progressing,
            &["SetRoutes(100,0,mirrored)", ADVANCE],
        )
        .iterations(2),
        row(
            "B/G: iterations done -> all traffic to the canary",
            Scenario::running(Progressing, 0).spec(blue_green).status(|s| s.iterations = Some(3)),
            Progressing,
            &["SetRoutes(0,100)", ADVANCE],
        )
        .iterations(4)
        .weight(100),
        row(
            "B/G: checked at 100% -> promote",
            Scenario::running(Progressing, 100).spec(blue_green).status(|s| s.iterations = Some(4)),
            Promoting,
            PROMOTE,
        ),
        row(
            "B/G: confirm-promotion closed keeps iterations (Flagger #1141)",
            Scenario::running(Progressing, 0)
                .spec(blue_green)
                .spec(|s| hooks(s, &["confirm-promotion"]))
                .status(|s| s.iterations = Some(3)),
            WaitingPromotion,
            WAIT_APPROVAL,
        )
        .iterations(3),
        row(
            "kubernetes router forces blue/green on a weighted spec",
            Scenario::running(Progressing, 0)
                .observed(|o| o.provider = Provider::Kubernetes)
                .status(|s| s.iterations = Some(1)),
            Progressing,
            &[ADVANCE],
        )
        .iterations(2)
        .weight(0),
        row(
            "kubernetes router: a forced blue/green run starts with a Warning",
            Scenario::new_revision(Succeeded).observed(|o| o.provider = Provider::Kubernetes),
            Progressing,
            &["ScaleTargetUp", "Event(Warning,BlueGreenForced)", NEW_RUN[1], NEW_RUN[2]],
        ),
        row(
            "mirror is skipped on a router that cannot mirror",
            Scenario::running(Progressing, 0)
                .spec(|s| analysis(s, json!({"mirror": true})))
                .observed(|o| o.provider = Provider::Nginx),
            Progressing,
            &["SetRoutes(90,10)", ADVANCE],
        )
        .weight(10),
        row(
            "B/G: gate opens in WaitingPromotion -> switch, back to Progressing",
            Scenario::running(WaitingPromotion, 0)
                .spec(blue_green)
                .spec(|s| hooks(s, &["confirm-promotion"]))
                .status(|s| s.iterations = Some(3))
                .gates(|g| g.confirm_promotion = Some(true)),
            Progressing,
            &["SetRoutes(0,100)", ADVANCE],
        )
        .iterations(4),
    ]);
}

#[test]
fn promotion() {
    let step_promotion = |s: &mut CanarySpec| analysis(s, json!({"stepWeightPromotion": 20}));
    check_rows(vec![
        row(
            "Promoting: all traffic back to the primary -> Finalising",
            Scenario::running(Promoting, 30),
            Finalising,
            &["SetRoutes(100,0)", "Event(Normal,Finalising)"],
        )
        .weight(0),
        row(
            "Promoting with stepWeightPromotion: one step",
            Scenario::running(Promoting, 30).spec(step_promotion),
            Promoting,
            &["SetRoutes(90,10)", ADVANCE],
        )
        .weight(10),
        row(
            "Promoting with stepWeightPromotion: last step -> Finalising",
            Scenario::running(Promoting, 10).spec(step_promotion),
            Finalising,
            &["SetRoutes(100,0)", "Event(Normal,Finalising)"],
        )
        .weight(0),
        row(
            "Promoting waits for the primary rollout",
            Scenario::running(Promoting, 30).observed(|o| o.primary = Readiness::NotReady("1/3".into())),
            Promoting,
            &[],
        )
        .weight(30),
        row(
            "Promoting: primary fails -> all traffic to the canary, Failed (#1931)",
            Scenario::running(Promoting, 30).observed(|o| o.primary = Readiness::Failed("crash".into())),
            Failed,
            &["SetRoutes(0,100)", "Event(Warning,PromotionFailed)", "Notify(Error,PromotionFailed)"],
        )
        .weight(100),
        row(
            "Promoting: primary misses the deadline -> traffic to the canary, Failed",
            Scenario::running(Promoting, 30)
                .status(waiting(WaitReason::PrimaryNotReady, 0))
                .observed(|o| o.primary = Readiness::NotReady("1/3".into()))
                .at(601),
            Failed,
            &["SetRoutes(0,100)", "Event(Warning,PromotionFailed)", "Notify(Error,PromotionFailed)"],
        ),
        row(
            "Finalising -> Succeeded: scale down, post-rollout hooks, alert",
            Scenario::running(Finalising, 0),
            Succeeded,
            &[
                "ScaleTargetToZero",
                "PostRollout(Succeeded)",
                "Event(Normal,Succeeded)",
                "Notify(Info,Promoted)",
            ],
        ),
        row(
            "Finalising: primary fails -> traffic to the canary, Failed",
            Scenario::running(Finalising, 0).observed(|o| o.primary = Readiness::Failed("crash".into())),
            Failed,
            &["SetRoutes(0,100)", "Event(Warning,PromotionFailed)", "Notify(Error,PromotionFailed)"],
        ),
    ]);
}

#[test]
fn operations_suspend_and_deletion() {
    let deletion = |revert: bool| {
        move |s: &mut CanarySpec| {
            let mut v = serde_json::to_value(&*s).expect("serializes");
            v["revertOnDeletion"] = json!(revert);
            *s = spec_from(v);
        }
    };
    check_rows(vec![
        row(
            "pause: frozen, annotation acknowledged",
            Scenario::running(Progressing, 10).observed(|o| o.operations.pause = true),
            Progressing,
            &["Clear(Pause)", "Event(Normal,Paused)"],
        )
        .weight(10),
        row(
            "paused: nothing happens",
            Scenario::running(Progressing, 10).status(|s| s.paused = Some(true)),
            Progressing,
            &[],
        )
        .weight(10),
        row(
            "resume: the run continues in the same tick",
            Scenario::running(Progressing, 10)
                .status(|s| s.paused = Some(true))
                .observed(|o| o.operations.resume = true),
            Progressing,
            &["Clear(Resume)", "Event(Normal,Resumed)", "SetRoutes(80,20)", ADVANCE],
        )
        .weight(20),
        row(
            "abort -> rollback",
            Scenario::running(Progressing, 20).observed(|o| o.operations.abort = true),
            Failed,
            &with_rollback(&["Clear(Abort)"], "Aborted", false),
        ),
        row(
            "promote: promote after this tick's checks pass",
            Scenario::running(Progressing, 10).observed(|o| o.operations.promote = true),
            Promoting,
            &["Clear(Promote)", PROMOTE[0], PROMOTE[1]],
        ),
        row(
            "promote at weight 0 waits for the first analysis tick",
            Scenario::running(Progressing, 0).observed(|o| o.operations.promote = true),
            Progressing,
            &["SetRoutes(90,10)", ADVANCE],
        )
        .weight(10),
        row(
            "a missing primary or route is recreated mid-run",
            Scenario::running(Progressing, 10).observed(|o| {
                o.initialized = false;
                o.primary = Readiness::NotReady("recreating".into());
            }),
            Progressing,
            &["Initialize"],
        )
        .weight(10),
        row(
            "promote never overrides a failing check",
            Scenario::running(Progressing, 10)
                .observed(|o| o.operations.promote = true)
                .report(metric(Verdict::Fail)),
            Progressing,
            &["Event(Warning,CheckFailed)"],
        )
        .failed(1),
        row(
            "promote with nothing in progress: acknowledged",
            Scenario::settled(Succeeded).observed(|o| o.operations.promote = true),
            Succeeded,
            &["Clear(Promote)", "Event(Normal,NothingToPromote)"],
        ),
        row(
            "deletion with revertOnDeletion: restore, then drop the finalizer",
            Scenario::running(Succeeded, 0).spec(deletion(true)).observed(|o| o.deleting = true),
            Terminated,
            &["Event(Normal,Terminating)", "RestoreOnDeletion", "RemoveFinalizer"],
        ),
        row(
            "deletion without revertOnDeletion: nothing to restore",
            Scenario::running(Succeeded, 0).spec(deletion(false)).observed(|o| o.deleting = true),
            Succeeded,
            &[],
        ),
    ]);
}

#[test]
fn suspend_changes_nothing() {
    let scenario = Scenario::running(Progressing, 10).spec(|s| {
        let mut v = serde_json::to_value(&*s).expect("serializes");
        v["suspend"] = json!(true);
        *s = spec_from(v);
    });
    let plan = scenario.decide();
    assert_eq!(plan.status, scenario.status);
    assert!(plan.effects.is_empty());
    assert_eq!(needs(&scenario.spec, &scenario.status, &scenario.observed), Needs::default());
}

#[test]
fn rollback_records_quarantine_and_revert_exactly_once() {
    let scenario = Scenario::running(Progressing, 20)
        .spec(gitops)
        .status(|s| s.failed_checks = Some(1))
        .report(metric(Verdict::Fail))
        .at(120);
    let plan = scenario.decide();
    let revert = plan.effects.iter().find_map(|e| match e {
        Effect::RevertGit { revision, stable_revision, reason, failed_checks } => {
            Some((revision.clone(), stable_revision.clone(), reason.clone(), failed_checks.clone()))
        }
        _ => None,
    });
    assert_eq!(
        revert,
        Some((
            "r2".into(),
            Some("r1".into()),
            "failed checks threshold reached 2".into(),
            vec![METRIC.to_string()]
        ))
    );
    let fields = plan.effects.iter().find_map(|e| match e {
        Effect::Notify { fields, .. } => Some(fields.clone()),
        _ => None,
    });
    let fields = fields.expect("rollback alert");
    assert_eq!(fields.get("checks").map(String::as_str), Some("request-success-rate failed"));
    assert_eq!(fields.get("reason").map(String::as_str), Some("FailedChecksThresholdReached"));
    assert_eq!(fields.get("revision").map(String::as_str), Some("r2"));
    let gitops = plan.status.gitops.clone().expect("revert recorded");
    assert_eq!((gitops.revision.as_str(), gitops.state), ("r2", GitRevertState::Pending));
    let failed = plan.status.failed_revisions.clone().expect("quarantined");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].revision, "r2");
    assert_eq!(failed[0].failed_at, Some(time(120)));

    // The controller records the revert's outcome; deciding again does nothing at all.
    let mut after = plan.status.clone();
    if let Some(g) = after.gitops.as_mut() {
        g.state = GitRevertState::Pushed;
    }
    let again = decide(&scenario.spec, &after, &scenario.observed, &metric(Verdict::Fail), at(180));
    assert_eq!(shapes(&again), Vec::<String>::new());
    assert_eq!(again.status.phase, Some(Failed));
}

#[test]
fn promotion_happens_once() {
    let scenario = Scenario::running(Finalising, 0);
    let plan = scenario.decide();
    assert_eq!(plan.status.last_promoted_spec.as_deref(), Some("r2"));
    let again = decide(&scenario.spec, &plan.status, &scenario.observed, &scenario.report, at(120));
    assert!(again.effects.is_empty(), "{:?}", shapes(&again));
    assert_eq!(again.status.phase, Some(Succeeded));
}

#[test]
fn conditions_follow_the_phase() {
    let find = |plan: &Plan, type_: &str| {
        plan.status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == type_)
            .map(|c| (c.status.clone(), c.reason.clone(), c.observed_generation))
            .expect("condition present")
    };
    let progressing = Scenario::new_revision(Succeeded).observed(|o| o.generation = Some(7)).decide();
    assert_eq!(
        find(&progressing, condition_types::PROMOTED),
        ("Unknown".into(), "Progressing".into(), Some(7))
    );
    assert_eq!(find(&progressing, condition_types::READY).0, "False");
    assert_eq!(find(&progressing, condition_types::RECONCILING).0, "True");
    assert_eq!(find(&progressing, condition_types::STALLED).0, "False");
    assert_eq!(progressing.status.observed_generation, Some(7));
    assert_eq!(progressing.status.last_transition_time, Some(time(60)));

    let failed = Scenario::running(Progressing, 20)
        .status(|s| s.failed_checks = Some(1))
        .report(metric(Verdict::Fail))
        .decide();
    assert_eq!(find(&failed, condition_types::PROMOTED), ("False".into(), "Failed".into(), Some(1)));
    assert_eq!(find(&failed, condition_types::STALLED).1, "FailedChecksThresholdReached");
    assert_eq!(find(&failed, condition_types::RECONCILING).0, "False");

    let stable = Scenario::running(Failed, 0).observed(|o| o.revision = "r1".into()).decide();
    assert_eq!(find(&stable, condition_types::PROMOTED), ("True".into(), "Initialized".into(), Some(1)));
    assert_eq!(find(&stable, condition_types::READY), ("True".into(), "BackToStable".into(), Some(1)));

    // A tick without a phase change keeps the transition time and the reason.
    let later =
        decide(&Scenario::fresh().spec, &failed.status, &observed("r2"), &AnalysisReport::default(), at(600));
    assert_eq!(later.status.conditions, failed.status.conditions);
    assert_eq!(later.status.last_transition_time, failed.status.last_transition_time);
}

#[test]
fn needs_asks_only_for_what_the_tick_consults() {
    let all_hooks = |s: &mut CanarySpec| {
        hooks(
            s,
            &[
                "confirm-rollout",
                "pre-rollout",
                "rollout",
                "confirm-traffic-increase",
                "confirm-promotion",
                "rollback",
            ],
        )
    };
    let needs_of = |s: &Scenario| needs(&s.spec, &s.status, &s.observed);

    let waiting = Scenario::new_revision(Succeeded).spec(all_hooks);
    assert_eq!(needs_of(&waiting), Needs { confirm_rollout: true, ..Needs::default() });

    let first_step = Scenario::running(Progressing, 0).spec(all_hooks);
    assert_eq!(
        needs_of(&first_step),
        Needs {
            pre_rollout_hooks: true,
            confirm_traffic_increase: true,
            rollback_hooks: true,
            ..Needs::default()
        }
    );

    let middle = Scenario::running(Progressing, 10).spec(all_hooks);
    assert_eq!(
        needs_of(&middle),
        Needs { analysis: true, confirm_traffic_increase: true, rollback_hooks: true, ..Needs::default() }
    );

    let at_max = Scenario::running(WaitingPromotion, 30).spec(all_hooks);
    assert_eq!(
        needs_of(&at_max),
        Needs { analysis: true, confirm_promotion: true, rollback_hooks: true, ..Needs::default() }
    );

    let not_ready = Scenario::running(Progressing, 10)
        .spec(all_hooks)
        .observed(|o| o.canary = Readiness::NotReady("0/1".into()));
    assert_eq!(needs_of(&not_ready), Needs { rollback_hooks: true, ..Needs::default() });

    let promoting = Scenario::running(Promoting, 30).spec(all_hooks);
    assert!(needs_of(&promoting).is_empty());
    assert!(needs_of(&Scenario::settled(Succeeded).spec(all_hooks)).is_empty());
}

/// Walks a whole release tick by tick, feeding each plan's status into the next decision.
#[test]
fn full_canary_release() {
    let spec = spec_from(spec_json());
    let report = metric(Verdict::Pass);
    let mut world = observed("r1");
    world.initialized = false;
    let mut status = CanaryStatus::default();
    let mut trace = Vec::new();
    for tick in 0..12 {
        if tick == 1 {
            world.initialized = true;
        }
        if tick == 3 {
            world.revision = "r2".into();
        }
        let plan = decide(&spec, &status, &world, &report, at(tick * 60));
        trace.push(format!(
            "{} w={} {}",
            plan.status.phase.map_or("-", |p| p.as_str()),
            plan.status.canary_weight.unwrap_or(0),
            shapes(&plan).join(" ")
        ));
        status = plan.status;
    }
    let want = [
        "Initializing w=0 Event(Normal,Initializing) Initialize",
        "Initialized w=0 ScaleTargetToZero Event(Normal,Initialized) Notify(Info,Initialized)",
        "Initialized w=0 ",
        "Progressing w=0 ScaleTargetUp Event(Normal,NewRevision) Notify(Info,NewRevision)",
        "Progressing w=10 SetRoutes(90,10) Event(Normal,Advance)",
        "Progressing w=20 SetRoutes(80,20) Event(Normal,Advance)",
        "Progressing w=30 SetRoutes(70,30) Event(Normal,Advance)",
        "Promoting w=30 Event(Normal,Promoting) PromotePrimary(r2)",
        "Finalising w=0 SetRoutes(100,0) Event(Normal,Finalising)",
        "Succeeded w=0 ScaleTargetToZero PostRollout(Succeeded) Event(Normal,Succeeded) Notify(Info,Promoted)",
        "Succeeded w=0 ",
        "Succeeded w=0 ",
    ];
    assert_eq!(trace, want);
    assert_eq!(status.last_promoted_spec.as_deref(), Some("r2"));
}

#[test]
fn analysis_results_are_recorded() {
    let mut report = metric(Verdict::Fail);
    report.checks[0].result.value = Some(97.5);
    report.checks[0].result.threshold_min = Some(99.0);
    let plan = Scenario::running(Progressing, 10).report(report).decide();
    let analysis = plan.status.analysis.expect("analysis recorded");
    assert_eq!(analysis.len(), 1);
    assert_eq!(analysis[0].value, Some(97.5));
    assert_eq!(analysis[0].time, Some(time(60)));
    let message = plan.effects.iter().find_map(|e| match e {
        Effect::Event { message, .. } => Some(message.clone()),
        _ => None,
    });
    assert_eq!(
        message.as_deref(),
        Some("Halt advancement: metric request-success-rate = 97.5 (accepted [99, ..]) failed")
    );
}

#[test]
fn steps_never_pass_the_maximum() {
    let mut spec = spec_from(spec_json());
    analysis(&mut spec, json!({"stepWeight": 7, "maxWeight": 30}));
    let mut weight = 0;
    let mut seen = Vec::new();
    while let Some(next) = super::next_weight(&spec, weight) {
        seen.push(next);
        weight = next;
    }
    assert_eq!(seen, vec![7, 14, 21, 28, 30]);
    assert_eq!(super::max_weight(&spec), 30);
    let _ = result(METRIC, Verdict::Pass);
}

/// The controller is killed mid-run: everything it knew is the stored status (JSON). Deciding
/// from the stored status continues from the same step, and the release promotes once.
#[test]
fn restart_mid_run_continues_from_the_same_step() {
    let spec = spec_from(spec_json());
    let world = observed("r2");
    let report = metric(Verdict::Pass);
    let mut status = settled(Succeeded, "r1");
    for tick in 1..=3 {
        status = decide(&spec, &status, &world, &report, at(tick * 60)).status;
    }
    assert_eq!((status.phase, status.canary_weight), (Some(Progressing), Some(20)));

    let stored = serde_json::to_string(&status).expect("serializes");
    let mut restored: CanaryStatus = serde_json::from_str(&stored).expect("deserializes");
    assert_eq!(
        decide(&spec, &restored, &world, &report, at(240)),
        decide(&spec, &status, &world, &report, at(240))
    );
    let mut promotions = 0;
    for tick in 4..12 {
        let plan = decide(&spec, &restored, &world, &report, at(tick * 60));
        promotions += plan.effects.iter().filter(|e| matches!(e, Effect::PromotePrimary { .. })).count();
        let stored = serde_json::to_string(&plan.status).expect("serializes");
        restored = serde_json::from_str(&stored).expect("deserializes");
    }
    assert_eq!(restored.phase, Some(Succeeded));
    assert_eq!(promotions, 1);
}

/// The status write after a plan was lost (the controller died after applying the effects):
/// the next tick decides from the old status and emits the same idempotent effects, never
/// different ones.
#[test]
fn a_lost_status_write_repeats_the_same_effects() {
    let scenario = Scenario::running(Progressing, 20)
        .spec(gitops)
        .status(|s| s.failed_checks = Some(1))
        .report(metric(Verdict::Fail));
    let first = scenario.decide();
    let retried = scenario.clone().at(scenario.now + 5).decide();
    assert_eq!(shapes(&first), shapes(&retried));
    assert_eq!(first.status.phase, retried.status.phase);
}
