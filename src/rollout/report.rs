//! The answers of this tick's checks and gates, gathered by the controller (metric queries and
//! webhook calls are I/O), and [`Needs`], which tells the controller which of them to gather.

use crate::crd::status::{MetricResult, Verdict};

/// Which group a check belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckKind {
    /// A metric check from `analysis.metrics`.
    Metric,
    /// A `pre-rollout` webhook (once per run, before any traffic reaches the canary).
    PreRolloutHook,
    /// A `rollout` webhook (every analysis tick, before the metrics).
    RolloutHook,
}

/// One check's outcome. `result.name` is the metric or webhook name; a webhook reports
/// `Pass` or `Fail` (or `Error` when unreachable), never `NoData`.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckResult {
    /// Metric or webhook.
    pub kind: CheckKind,
    /// Verdict, value, thresholds and message, as shown in `status.analysis`.
    pub result: MetricResult,
}

impl CheckResult {
    /// A result with only a verdict and a message; handy for webhooks and tests.
    pub fn new(kind: CheckKind, name: &str, verdict: Verdict, message: Option<&str>) -> Self {
        CheckResult {
            kind,
            result: MetricResult {
                name: name.to_string(),
                value: None,
                threshold_min: None,
                threshold_max: None,
                verdict,
                query: None,
                message: message.map(str::to_string),
                time: None,
            },
        }
    }
}

/// Answers of the confirm gates. `None` means "not asked"; a gate that has webhooks configured
/// and was not asked counts as closed (fail safe). A gate without webhooks is always open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Gates {
    /// Every `confirm-rollout` webhook answered 2xx.
    pub confirm_rollout: Option<bool>,
    /// Every `confirm-traffic-increase` webhook answered 2xx.
    pub confirm_traffic_increase: Option<bool>,
    /// Every `confirm-promotion` webhook answered 2xx.
    pub confirm_promotion: Option<bool>,
}

/// Everything the controller measured or asked this tick.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AnalysisReport {
    /// Results of the checks [`Needs`] asked for. A configured check with no result here counts
    /// as an `Error` verdict (never as a pass).
    pub checks: Vec<CheckResult>,
    /// Confirm-gate answers.
    pub gates: Gates,
    /// A `rollback` webhook answered 2xx (Flagger's inverted semantics: roll back now).
    pub rollback_requested: bool,
}

/// Which checks and gates the controller must evaluate before calling
/// [`crate::rollout::decide`] this tick. Only I/O that the state machine will actually consult is
/// requested: a Canary that is waiting for its primary does not hit Prometheus.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Needs {
    /// Run the `pre-rollout` webhooks.
    pub pre_rollout_hooks: bool,
    /// Run the `rollout` webhooks and the metric checks.
    pub analysis: bool,
    /// Ask the `confirm-rollout` gates.
    pub confirm_rollout: bool,
    /// Ask the `confirm-traffic-increase` gates.
    pub confirm_traffic_increase: bool,
    /// Ask the `confirm-promotion` gates.
    pub confirm_promotion: bool,
    /// Call the `rollback` webhooks.
    pub rollback_hooks: bool,
}

impl Needs {
    /// Whether nothing needs evaluating.
    pub fn is_empty(&self) -> bool {
        *self == Needs::default()
    }
}
