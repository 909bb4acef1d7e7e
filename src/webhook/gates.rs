//! Running all hooks of one kind and reading their answers with Flagger's semantics
//! (FLAGGER.md §3.1). The state machine lives elsewhere; this module hands it plain data.
//!
//! | kind | answer |
//! |---|---|
//! | `confirm-rollout`, `confirm-traffic-increase`, `confirm-promotion` | [`GateAnswer`]: open when every hook answered 2xx |
//! | `pre-rollout`, `rollout` (and the empty type) | [`CheckAnswer`]: a failure of any hook is one failed check for the tick, as in Flagger |
//! | `rollback` | [`RollbackAnswer`]: a 2xx from any hook means "roll back"; errors and non-2xx mean "keep going" |
//! | `post-rollout`, `event` | [`KindAnswer::Logged`]: failures are logged only |
//!
//! The controller's entry points are [`run_kind`] (the Canary's hooks of one kind, payloads built)
//! and [`run_event`] (event hooks); both end in [`run_all`]. [`check_results`] turns check hooks'
//! outcomes into the state machine's `CheckResult`s; `gate(..).open` and `rollback(..).roll_back`
//! fill its `Gates` and `rollback_requested`.
//!
//! Hooks of one kind run concurrently under one deadline ([`run_all`]), so their timeouts do not
//! add up and stretch the analysis interval. A hook still running at the deadline gets
//! [`HookError::BudgetExceeded`], which counts as a failure (a closed gate, a failed check).

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use futures::future::join_all;

use crate::crd::CanaryPhase;
use crate::crd::canary::{Webhook, WebhookType};
use crate::crd::status::Verdict;
use crate::rollout::{CheckKind, CheckResult};
use crate::webhook::caller::{CallReport, HookCall, HookError, SecretHeaders, WebhookCaller};
use crate::webhook::payload::{CanaryRef, CanaryWebhookPayload, EventType};

/// Condition reason when a confirm-rollout gate stays closed past its deadline.
pub const CONFIRM_ROLLOUT_EXPIRED_REASON: &str = "ConfirmRolloutExpired";

/// What one hook said.
#[derive(Clone, Debug, PartialEq)]
pub struct HookOutcome {
    /// The hook's name.
    pub name: String,
    /// Its effective type.
    pub kind: WebhookType,
    /// No alert for its failures.
    pub mute_alert: bool,
    /// The call's result.
    pub report: CallReport,
}

impl HookOutcome {
    /// A 2xx answer.
    pub fn succeeded(&self) -> bool {
        self.report.succeeded()
    }

    /// One line for an Event or a log: `webhook NAME: HTTP 500: <body>` (no secrets: the caller
    /// already redacted them).
    pub fn detail(&self) -> String {
        let tries = if self.report.attempts > 1 {
            format!(" after {} attempts", self.report.attempts)
        } else {
            String::new()
        };
        match &self.report.result {
            Ok(response) => format!("webhook {}: HTTP {}{tries}", self.name, response.status),
            Err(err) => format!("webhook {}: {err}{tries}", self.name),
        }
    }
}

/// Calls every hook concurrently; the whole batch takes at most `budget`. Outcomes are in the
/// order of `calls`.
pub async fn run_all(caller: &dyn WebhookCaller, calls: &[HookCall], budget: Duration) -> Vec<HookOutcome> {
    let deadline = tokio::time::Instant::now() + budget;
    let started = Instant::now();
    join_all(calls.iter().map(|call| async move {
        let report = match tokio::time::timeout_at(deadline, caller.call(call)).await {
            Ok(report) => report,
            Err(_) => CallReport {
                attempts: 0,
                elapsed: started.elapsed(),
                result: Err(HookError::BudgetExceeded(budget)),
            },
        };
        HookOutcome { name: call.name.clone(), kind: call.kind, mute_alert: call.mute_alert, report }
    }))
    .await
}

/// Runs the Canary's hooks of `kind` (by effective type; not `event`, see [`run_event`]) with
/// Flagger's payload for `phase`, under one `budget`. `secrets` holds the resolved secret
/// headers by hook name. A hook that cannot be called as written (bad timeout) is an outcome
/// with [`HookError::Invalid`] and 0 attempts, so it fails its gate or check like any failure.
pub async fn run_kind(
    caller: &dyn WebhookCaller,
    kind: WebhookType,
    hooks: &[Webhook],
    canary: &CanaryRef<'_>,
    phase: CanaryPhase,
    secrets: &BTreeMap<String, SecretHeaders>,
    budget: Duration,
) -> Vec<HookOutcome> {
    let kind = kind.effective();
    let selected = hooks.iter().filter(|hook| hook.type_.unwrap_or(WebhookType::Unset).effective() == kind);
    let built = selected.map(|hook| {
        let payload = CanaryWebhookPayload::for_hook(canary, phase, hook);
        HookCall::from_webhook(hook, payload, secrets.get(&hook.name).cloned().unwrap_or_default())
            .map_err(|err| invalid(hook, kind, err))
    });
    run_built(caller, built.collect(), budget).await
}

/// Sends one Kubernetes Event to the Canary's `event` hooks (their failures are to be logged
/// only), under one `budget`.
#[allow(clippy::too_many_arguments)]
pub async fn run_event(
    caller: &dyn WebhookCaller,
    hooks: &[Webhook],
    canary: &CanaryRef<'_>,
    phase: CanaryPhase,
    message: &str,
    event_type: EventType,
    secrets: &BTreeMap<String, SecretHeaders>,
    budget: Duration,
) -> Vec<HookOutcome> {
    let now = SystemTime::now();
    let built = hooks.iter().filter(|hook| hook.type_ == Some(WebhookType::Event)).map(|hook| {
        let payload =
            CanaryWebhookPayload::for_event(canary, phase, hook.metadata.as_ref(), message, event_type, now);
        HookCall::from_webhook(hook, payload, secrets.get(&hook.name).cloned().unwrap_or_default())
            .map_err(|err| invalid(hook, WebhookType::Event, err))
    });
    run_built(caller, built.collect(), budget).await
}

fn invalid(hook: &Webhook, kind: WebhookType, err: HookError) -> HookOutcome {
    HookOutcome {
        name: hook.name.clone(),
        kind,
        mute_alert: hook.mute_alert.unwrap_or(false),
        report: CallReport { attempts: 0, elapsed: Duration::ZERO, result: Err(err) },
    }
}

async fn run_built(
    caller: &dyn WebhookCaller,
    built: Vec<Result<HookCall, HookOutcome>>,
    budget: Duration,
) -> Vec<HookOutcome> {
    let calls: Vec<HookCall> = built.iter().filter_map(|b| b.as_ref().ok().cloned()).collect();
    let mut ran = run_all(caller, &calls, budget).await.into_iter();
    built.into_iter().filter_map(|b| b.err().or_else(|| ran.next())).collect()
}

/// A time bound for one kind's batch inside an analysis `interval`: 80% of it, at least 1 s,
/// leaving room for the metric queries of the same tick.
pub fn budget_within(interval: Duration) -> Duration {
    interval.mul_f64(0.8).max(Duration::from_secs(1))
}

/// The answer of the gate hooks of one kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GateAnswer {
    /// Every hook answered 2xx (also true when there are no hooks).
    pub open: bool,
    /// Why it is closed (one line per closed hook), or empty.
    pub detail: String,
    /// Some closed hook is not muted: send a warn alert.
    pub alert: bool,
}

/// The answer of `pre-rollout` or `rollout` hooks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckAnswer {
    /// Every hook answered 2xx (also true when there are no hooks).
    pub passed: bool,
    /// One line per failed hook, for Events.
    pub failures: Vec<String>,
    /// Some failed hook is not muted.
    pub alert: bool,
}

/// The answer of `rollback` hooks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RollbackAnswer {
    /// Some hook answered 2xx: roll back now.
    pub roll_back: bool,
    /// The hooks that asked for it.
    pub requested_by: Vec<String>,
}

/// The answer of a batch, by kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KindAnswer {
    /// confirm-rollout, confirm-traffic-increase, confirm-promotion.
    Gate(GateAnswer),
    /// pre-rollout, rollout.
    Check(CheckAnswer),
    /// rollback.
    Rollback(RollbackAnswer),
    /// post-rollout, event: failures to log, nothing else.
    Logged(Vec<String>),
}

/// Reads a batch of `kind` with that kind's semantics.
pub fn answer(kind: WebhookType, outcomes: &[HookOutcome]) -> KindAnswer {
    match kind.effective() {
        WebhookType::ConfirmRollout | WebhookType::ConfirmTrafficIncrease | WebhookType::ConfirmPromotion => {
            KindAnswer::Gate(gate(outcomes))
        }
        WebhookType::PreRollout | WebhookType::Rollout | WebhookType::Unset => {
            KindAnswer::Check(check(outcomes))
        }
        WebhookType::Rollback => KindAnswer::Rollback(rollback(outcomes)),
        WebhookType::PostRollout | WebhookType::Event => {
            KindAnswer::Logged(outcomes.iter().filter(|o| !o.succeeded()).map(HookOutcome::detail).collect())
        }
    }
}

/// Gate semantics: open only when every hook answered 2xx.
pub fn gate(outcomes: &[HookOutcome]) -> GateAnswer {
    let closed: Vec<&HookOutcome> = outcomes.iter().filter(|o| !o.succeeded()).collect();
    GateAnswer {
        open: closed.is_empty(),
        detail: closed.iter().map(|o| o.detail()).collect::<Vec<_>>().join("; "),
        alert: closed.iter().any(|o| !o.mute_alert),
    }
}

/// Check semantics: passed only when every hook answered 2xx.
pub fn check(outcomes: &[HookOutcome]) -> CheckAnswer {
    let failed: Vec<&HookOutcome> = outcomes.iter().filter(|o| !o.succeeded()).collect();
    CheckAnswer {
        passed: failed.is_empty(),
        failures: failed.iter().map(|o| o.detail()).collect(),
        alert: failed.iter().any(|o| !o.mute_alert),
    }
}

/// Rollback semantics: any 2xx asks for a rollback.
pub fn rollback(outcomes: &[HookOutcome]) -> RollbackAnswer {
    let requested_by: Vec<String> =
        outcomes.iter().filter(|o| o.succeeded()).map(|o| o.name.clone()).collect();
    RollbackAnswer { roll_back: !requested_by.is_empty(), requested_by }
}

/// The outcomes of `pre-rollout` or `rollout` hooks as the state machine's check results
/// ([`crate::rollout::AnalysisReport::checks`]): 2xx → `Pass`, another status → `Fail`, no
/// answer (unreachable, timeout, budget, invalid hook) → `Error`; the message is
/// [`HookOutcome::detail`].
pub fn check_results(kind: CheckKind, outcomes: &[HookOutcome]) -> Vec<CheckResult> {
    outcomes
        .iter()
        .map(|outcome| {
            let verdict = match &outcome.report.result {
                Ok(_) => Verdict::Pass,
                Err(HookError::Status { .. }) => Verdict::Fail,
                Err(_) => Verdict::Error,
            };
            let detail = outcome.detail();
            CheckResult::new(kind, &outcome.name, verdict, Some(&detail))
        })
        .collect()
}

/// Limits on how long a confirm-rollout gate may stay closed (Flagger waits forever, #738).
/// The state machine on main already fails a gate past `progressDeadlineSeconds`
/// (`Cause::GateDeadline`); this pure helper adds a count of closed answers for callers that
/// want one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConfirmRolloutBudget {
    /// Longest wait, usually `progressDeadlineSeconds`; `None`: no deadline.
    pub deadline: Option<Duration>,
    /// Most closed answers in a row; `None`: no limit.
    pub max_closed: Option<u32>,
}

/// Where a confirm-rollout wait stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfirmRolloutState {
    /// The gate is open: start the rollout.
    Proceed,
    /// Closed; ask again next tick. `remaining` is the time left before the deadline, if any.
    Wait {
        /// Time left.
        remaining: Option<Duration>,
    },
    /// Closed for too long: set a condition (reason [`CONFIRM_ROLLOUT_EXPIRED_REASON`]) with
    /// `message`, alert, and stop asking until a new revision or a `serin retry`.
    Expired {
        /// Human-readable reason.
        message: String,
    },
}

/// Pure: the confirm-rollout state after `answer`, given how long the revision has waited and
/// how many closed answers came in a row before this one.
pub fn confirm_rollout_state(
    answer: &GateAnswer,
    waited: Duration,
    closed_before: u32,
    budget: &ConfirmRolloutBudget,
) -> ConfirmRolloutState {
    if answer.open {
        return ConfirmRolloutState::Proceed;
    }
    let closed = closed_before.saturating_add(1);
    if let Some(max) = budget.max_closed.filter(|max| closed >= *max) {
        return ConfirmRolloutState::Expired {
            message: format!(
                "confirm-rollout gate closed {closed} times in a row (limit {max}): {}",
                answer.detail
            ),
        };
    }
    match budget.deadline {
        Some(deadline) if waited >= deadline => ConfirmRolloutState::Expired {
            message: format!(
                "confirm-rollout gate still closed after {}s (deadline {}s): {}",
                waited.as_secs(),
                deadline.as_secs(),
                answer.detail
            ),
        },
        Some(deadline) => ConfirmRolloutState::Wait { remaining: Some(deadline - waited) },
        None => ConfirmRolloutState::Wait { remaining: None },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::caller::HookResponse;

    fn outcome(name: &str, kind: WebhookType, result: Result<u16, HookError>) -> HookOutcome {
        let result = match result {
            Ok(status) if (200..300).contains(&status) => Ok(HookResponse { status, body: String::new() }),
            Ok(status) => Err(HookError::Status { status, body: "nope".into() }),
            Err(err) => Err(err),
        };
        HookOutcome {
            name: name.into(),
            kind,
            mute_alert: false,
            report: CallReport { attempts: 1, elapsed: Duration::ZERO, result },
        }
    }

    /// Each type × success, non-2xx, timeout, connection refused, budget exceeded.
    #[test]
    fn semantics_per_type_and_result() {
        let results: [(&str, Result<u16, HookError>); 6] = [
            ("200", Ok(200)),
            ("203", Ok(203)),
            ("500", Ok(500)),
            ("timeout", Err(HookError::Timeout(Duration::from_secs(1)))),
            ("refused", Err(HookError::Connect("Connection refused".into()))),
            ("budget", Err(HookError::BudgetExceeded(Duration::from_secs(1)))),
        ];
        for (label, result) in results {
            let ok = matches!(result, Ok(s) if s < 300);
            for kind in [
                WebhookType::ConfirmRollout,
                WebhookType::ConfirmTrafficIncrease,
                WebhookType::ConfirmPromotion,
                WebhookType::PreRollout,
                WebhookType::Rollout,
                WebhookType::Unset,
                WebhookType::Rollback,
                WebhookType::PostRollout,
                WebhookType::Event,
            ] {
                let outcomes = [outcome("h", kind.effective(), result.clone())];
                let got = answer(kind, &outcomes);
                let want_ok = match &got {
                    KindAnswer::Gate(g) => g.open,
                    KindAnswer::Check(c) => c.passed,
                    KindAnswer::Rollback(r) => r.roll_back,
                    KindAnswer::Logged(failures) => failures.is_empty(),
                };
                assert_eq!(want_ok, ok, "{kind:?} with {label}: {got:?}");
                let expected_variant = match kind.effective() {
                    WebhookType::ConfirmRollout
                    | WebhookType::ConfirmTrafficIncrease
                    | WebhookType::ConfirmPromotion => matches!(got, KindAnswer::Gate(_)),
                    WebhookType::PreRollout | WebhookType::Rollout => matches!(got, KindAnswer::Check(_)),
                    WebhookType::Rollback => matches!(got, KindAnswer::Rollback(_)),
                    _ => matches!(got, KindAnswer::Logged(_)),
                };
                assert!(expected_variant, "{kind:?}: {got:?}");
            }
        }
    }

    #[test]
    fn empty_batches_open_pass_and_do_not_roll_back() {
        assert!(gate(&[]).open);
        assert!(check(&[]).passed);
        assert!(!rollback(&[]).roll_back);
    }

    #[test]
    fn one_closed_hook_closes_the_gate_and_muted_hooks_do_not_alert() {
        let mut muted = outcome("approval", WebhookType::ConfirmPromotion, Ok(403));
        muted.mute_alert = true;
        let open = outcome("smoke", WebhookType::ConfirmPromotion, Ok(200));
        let answer = gate(&[open.clone(), muted.clone()]);
        assert_eq!(
            answer,
            GateAnswer { open: false, detail: "webhook approval: HTTP 403: nope".into(), alert: false }
        );
        let mut loud = muted;
        loud.mute_alert = false;
        loud.report.attempts = 3;
        let answer = gate(&[open, loud]);
        assert!(answer.alert);
        assert_eq!(answer.detail, "webhook approval: HTTP 403: nope after 3 attempts");
    }

    #[test]
    fn rollback_names_the_hooks_that_asked() {
        let answer = rollback(&[
            outcome("a", WebhookType::Rollback, Ok(403)),
            outcome("b", WebhookType::Rollback, Ok(200)),
            outcome("c", WebhookType::Rollback, Err(HookError::Connect("refused".into()))),
        ]);
        assert_eq!(answer, RollbackAnswer { roll_back: true, requested_by: vec!["b".into()] });
    }

    #[test]
    fn confirm_rollout_waits_then_expires() {
        let closed = GateAnswer { open: false, detail: "webhook gate: HTTP 403: closed".into(), alert: true };
        let open = GateAnswer { open: true, detail: String::new(), alert: false };
        let budget = ConfirmRolloutBudget { deadline: Some(Duration::from_secs(600)), max_closed: None };
        assert_eq!(
            confirm_rollout_state(&open, Duration::from_secs(9999), 99, &budget),
            ConfirmRolloutState::Proceed
        );
        assert_eq!(
            confirm_rollout_state(&closed, Duration::from_secs(60), 1, &budget),
            ConfirmRolloutState::Wait { remaining: Some(Duration::from_secs(540)) }
        );
        assert_eq!(
            confirm_rollout_state(&closed, Duration::from_secs(600), 10, &budget),
            ConfirmRolloutState::Expired {
                message: "confirm-rollout gate still closed after 600s (deadline 600s): webhook gate: HTTP 403: closed"
                    .into()
            }
        );
        let count = ConfirmRolloutBudget { deadline: None, max_closed: Some(3) };
        assert_eq!(
            confirm_rollout_state(&closed, Duration::ZERO, 1, &count),
            ConfirmRolloutState::Wait { remaining: None }
        );
        assert!(matches!(
            confirm_rollout_state(&closed, Duration::ZERO, 2, &count),
            ConfirmRolloutState::Expired { .. }
        ));
        assert_eq!(
            confirm_rollout_state(
                &closed,
                Duration::from_secs(1 << 30),
                1 << 30,
                &ConfirmRolloutBudget::default()
            ),
            ConfirmRolloutState::Wait { remaining: None }
        );
    }

    fn hooks() -> Vec<Webhook> {
        serde_json::from_value(serde_json::json!([
            {"name": "load", "url": "http://lt/", "metadata": {"cmd": "hey -z 1m http://x/"}},
            {"name": "smoke", "type": "rollout", "url": "http://lt/"},
            {"name": "approval", "type": "confirm-promotion", "url": "http://lt/gate/check"},
            {"name": "broken", "type": "rollout", "url": "http://lt/", "timeout": "soon"},
            {"name": "events", "type": "event", "url": "http://events/", "metadata": {"team": "a"}},
        ]))
        .expect("hooks")
    }

    const CANARY: CanaryRef<'static> = CanaryRef { name: "podinfo", namespace: "test", checksum: "abc" };

    #[tokio::test]
    async fn run_kind_selects_by_effective_type_and_fails_invalid_hooks() {
        let caller = crate::webhook::FakeCaller::new();
        caller.answer("smoke", Ok(500));
        let secrets = BTreeMap::from([(
            "load".to_string(),
            SecretHeaders::new(BTreeMap::from([("Authorization".into(), "Bearer t".into())])),
        )]);
        let outcomes = run_kind(
            &caller,
            WebhookType::Rollout,
            &hooks(),
            &CANARY,
            CanaryPhase::Progressing,
            &secrets,
            Duration::from_secs(1),
        )
        .await;
        let names: Vec<_> = outcomes.iter().map(|o| (o.name.as_str(), o.succeeded())).collect();
        assert_eq!(names, [("load", true), ("smoke", false), ("broken", false)]);
        assert!(matches!(outcomes[2].report.result, Err(HookError::Invalid(_))));
        let calls = caller.calls();
        assert_eq!(calls.len(), 2, "the invalid hook is not called");
        assert_eq!(calls[0].payload.metadata["cmd"], "hey -z 1m http://x/");
        assert_eq!(
            (calls[0].payload.phase.as_str(), calls[0].payload.checksum.as_str()),
            ("Progressing", "abc")
        );
        assert_eq!(calls[0].secret_headers.names().collect::<Vec<_>>(), ["Authorization"]);
        let KindAnswer::Check(check) = answer(WebhookType::Rollout, &outcomes) else { panic!() };
        assert_eq!(check.failures.len(), 2);

        let events = run_event(
            &caller,
            &hooks(),
            &CANARY,
            CanaryPhase::Progressing,
            "Advance podinfo.test canary weight 10",
            EventType::Normal,
            &BTreeMap::new(),
            Duration::from_secs(1),
        )
        .await;
        assert_eq!(events.len(), 1);
        let event = caller.calls().pop().expect("event call");
        assert_eq!(event.payload.metadata["eventMessage"], "Advance podinfo.test canary weight 10");
        assert_eq!(event.payload.metadata["team"], "a");
    }

    #[test]
    fn outcomes_become_check_results() {
        let results = check_results(
            CheckKind::RolloutHook,
            &[
                outcome("ok", WebhookType::Rollout, Ok(200)),
                outcome("bad", WebhookType::Rollout, Ok(500)),
                outcome("down", WebhookType::Rollout, Err(HookError::Connect("refused".into()))),
            ],
        );
        let got: Vec<_> =
            results.iter().map(|r| (r.kind, r.result.name.as_str(), r.result.verdict)).collect();
        assert_eq!(
            got,
            [
                (CheckKind::RolloutHook, "ok", Verdict::Pass),
                (CheckKind::RolloutHook, "bad", Verdict::Fail),
                (CheckKind::RolloutHook, "down", Verdict::Error),
            ]
        );
        assert_eq!(results[1].result.message.as_deref(), Some("webhook bad: HTTP 500: nope"));
    }

    #[test]
    fn callers_are_dyn_compatible() {
        let fake: std::sync::Arc<dyn WebhookCaller> = std::sync::Arc::new(crate::webhook::FakeCaller::new());
        let http: std::sync::Arc<dyn WebhookCaller> =
            std::sync::Arc::new(crate::webhook::HttpCaller::new().expect("client"));
        drop((fake, http));
    }

    #[test]
    fn budget_is_most_of_the_interval() {
        assert_eq!(budget_within(Duration::from_secs(60)), Duration::from_secs(48));
        assert_eq!(budget_within(Duration::from_millis(100)), Duration::from_secs(1));
    }
}
