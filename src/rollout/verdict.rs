//! Turns this tick's check results into one outcome: fail, hold (no data) or pass. Failures
//! dominate, then holds; a configured check without a result is an error, never a pass.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::crd::canary::{CanarySpec, OnNoData, WebhookType};
use crate::crd::status::{MetricResult, Verdict};

use super::report::{AnalysisReport, CheckKind};

/// Which checks a tick runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stage {
    /// `pre-rollout` webhooks, at weight 0 and iteration 0.
    PreRollout,
    /// `rollout` webhooks, then metric checks.
    Analysis,
}

/// The combined outcome of a tick's checks.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Outcome {
    /// Every check passed; the strings are no-data warnings (`onNoData: pass-with-warning`).
    Pass(Vec<String>),
    /// No failure, but some checks had no data and hold (`onNoData: hold`).
    Hold(Vec<String>),
    /// At least one check failed, errored or had no data with `onNoData: fail`.
    Fail(Vec<String>),
}

/// The outcome plus the per-check results to show in `status.analysis`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Judged {
    pub outcome: Outcome,
    pub results: Vec<MetricResult>,
}

/// The checks the spec configures for a stage, in the order they run.
pub(crate) fn expected(spec: &CanarySpec, stage: Stage) -> Vec<(CheckKind, String)> {
    let hooks = |wanted: WebhookType, kind: CheckKind| -> Vec<(CheckKind, String)> {
        spec.analysis
            .webhooks
            .iter()
            .flatten()
            .filter(|h| h.type_.unwrap_or(WebhookType::Unset).effective() == wanted)
            .map(|h| (kind, h.name.clone()))
            .collect()
    };
    match stage {
        Stage::PreRollout => hooks(WebhookType::PreRollout, CheckKind::PreRolloutHook),
        Stage::Analysis => {
            let mut checks = hooks(WebhookType::Rollout, CheckKind::RolloutHook);
            checks
                .extend(spec.analysis.metrics.iter().flatten().map(|m| (CheckKind::Metric, m.name.clone())));
            checks
        }
    }
}

fn on_no_data(spec: &CanarySpec, name: &str) -> OnNoData {
    spec.analysis
        .metrics
        .iter()
        .flatten()
        .find(|m| m.name == name)
        .and_then(|m| m.on_no_data)
        .unwrap_or(OnNoData::Hold)
}

fn kind_label(kind: CheckKind) -> &'static str {
    match kind {
        CheckKind::Metric => "metric",
        CheckKind::PreRolloutHook => "pre-rollout webhook",
        CheckKind::RolloutHook => "rollout webhook",
    }
}

/// One line describing a result, e.g. `metric error-rate = 7.2 (accepted [.., 5]) failed`.
pub(crate) fn describe(kind: CheckKind, result: &MetricResult) -> String {
    format!("{} {}", kind_label(kind), summary(result))
}

/// A result in words without its kind, e.g. `error-rate = 7.2 (accepted [.., 5]) failed`.
pub(crate) fn summary(result: &MetricResult) -> String {
    let mut text = result.name.clone();
    if let Some(value) = result.value {
        text.push_str(&format!(" = {value}"));
        if result.threshold_min.is_some() || result.threshold_max.is_some() {
            let bound = |b: Option<f64>| b.map_or("..".to_string(), |v| v.to_string());
            text.push_str(&format!(
                " (accepted [{}, {}])",
                bound(result.threshold_min),
                bound(result.threshold_max)
            ));
        }
    }
    let verdict = match result.verdict {
        Verdict::Pass => "passed",
        Verdict::Fail => "failed",
        Verdict::NoData => "returned no data",
        Verdict::Error => "errored",
    };
    text.push_str(&format!(" {verdict}"));
    if let Some(message) = &result.message {
        text.push_str(&format!(": {message}"));
    }
    text
}

/// Judges a stage. With `report == None` (used by `needs`) every check passes.
pub(crate) fn judge(spec: &CanarySpec, stage: Stage, report: Option<&AnalysisReport>, now: &Time) -> Judged {
    let mut failures = Vec::new();
    let mut holds = Vec::new();
    let mut warnings = Vec::new();
    let mut results = Vec::new();
    for (kind, name) in expected(spec, stage) {
        let mut result = match report {
            None => MetricResult {
                name: name.clone(),
                value: None,
                threshold_min: None,
                threshold_max: None,
                verdict: Verdict::Pass,
                query: None,
                message: None,
                time: None,
            },
            Some(report) => report
                .checks
                .iter()
                .find(|c| c.kind == kind && c.result.name == name)
                .map(|c| c.result.clone())
                .unwrap_or_else(|| MetricResult {
                    name: name.clone(),
                    value: None,
                    threshold_min: None,
                    threshold_max: None,
                    verdict: Verdict::Error,
                    query: None,
                    message: Some("no result was reported for this check".to_string()),
                    time: None,
                }),
        };
        result.time = Some(now.clone());
        let line = describe(kind, &result);
        match (result.verdict, kind) {
            (Verdict::Pass, _) => {}
            (Verdict::NoData, CheckKind::Metric) => match on_no_data(spec, &name) {
                OnNoData::Hold => holds.push(line),
                OnNoData::Fail => failures.push(line),
                OnNoData::PassWithWarning => warnings.push(line),
            },
            _ => failures.push(line),
        }
        results.push(result);
    }
    let outcome = if !failures.is_empty() {
        Outcome::Fail(failures)
    } else if !holds.is_empty() {
        Outcome::Hold(holds)
    } else {
        Outcome::Pass(warnings)
    };
    Judged { outcome, results }
}
