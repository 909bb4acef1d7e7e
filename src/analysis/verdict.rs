//! The threshold judge, pure: one measured value against a check's `thresholdRange` (or the
//! deprecated `threshold`, a maximum), with three outcomes — pass, fail, no data — plus error
//! when nothing trustworthy was measured. The result carries the value, the bounds, the
//! rendered query and a sentence saying why, for `status.analysis` and Events.
//!
//! # What counts as no data
//! An empty result, NaN, or fewer requests than the check's `minRequests`. No data is never a
//! pass: `onNoData` says what it does (`hold`, the default: do not advance; `fail`: count a
//! failed check; `pass-with-warning`: advance, with a warning). The verdict in the
//! [`MetricResult`] stays `noData` either way, so users see what happened; the [`Effect`] says
//! what the rollout should do about it.
//!
//! # Where the request count comes from
//! `minRequests` needs a second number: how many requests the canary got in the metric's
//! window. The caller runs a *request-count query* and passes its outcome as `requests`:
//! for builtin metrics that is the provider's `analysis/<provider>/request-count.yaml`
//! (rendered with the same context), for a MetricTemplate its `spec.requestCountQuery`
//! (rendered with the same context, sent to the template's backend). An inline `query`, or a
//! template without `requestCountQuery`, gets `requests: None`, which is reported as an error
//! rather than silently ignoring the guard. An empty or NaN count means zero requests.

use crate::crd::canary::{MetricCheck, OnNoData};
use crate::crd::status::{MetricResult, Verdict};

use super::provider::{ProviderError, QueryOutcome};

/// What a provider's answer amounts to for judging, without transport detail. Built from a
/// query result with [`Measured::from_query`], or directly by in-memory tests.
#[derive(Clone, Debug, PartialEq)]
pub enum Measured {
    /// One number (NaN is treated as no data).
    Value(f64),
    /// Nothing to judge, and why.
    NoData(String),
    /// The query failed or was ambiguous, and why.
    Error(String),
}

impl Measured {
    /// Reduces a provider's answer: several series become an error listing them.
    pub fn from_query(result: &Result<QueryOutcome, ProviderError>) -> Self {
        match result {
            Ok(QueryOutcome::Value(v)) if v.is_nan() => Measured::NoData("the query returned NaN".into()),
            Ok(QueryOutcome::Value(v)) => Measured::Value(*v),
            Ok(QueryOutcome::NoData(why)) => Measured::NoData(why.to_string()),
            Ok(QueryOutcome::MultipleSeries(series)) => {
                let listed: Vec<String> = series.iter().map(ToString::to_string).collect();
                Measured::Error(format!(
                    "the query returned {} series instead of one (aggregate them, e.g. with sum()): {}",
                    series.len(),
                    listed.join(", ")
                ))
            }
            Err(e) => Measured::Error(e.to_string()),
        }
    }
}

/// What the rollout should do with a check's result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// The check passed.
    Advance,
    /// No data, and `onNoData: pass-with-warning`: advance, and emit a warning Event.
    AdvanceWithWarning,
    /// No data, and `onNoData: hold` (the default): do not advance; counts against the no-data
    /// budget, not the failure budget.
    Hold,
    /// The check failed, errored (backend unreachable, several series…), or had no data with
    /// `onNoData: fail`: counts as a failed check.
    CountFailure,
}

/// A check's result and what to do about it.
#[derive(Clone, Debug, PartialEq)]
pub struct Judgement {
    /// Value, bounds, verdict, rendered query and message; `time` is left for the caller.
    pub result: MetricResult,
    /// What the rollout should do.
    pub effect: Effect,
}

/// The accepted range of a value; either side may be open.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Bounds {
    /// Lowest accepted value.
    pub min: Option<f64>,
    /// Highest accepted value.
    pub max: Option<f64>,
}

impl Bounds {
    /// The check's bounds: `thresholdRange`, else the deprecated `threshold` as a maximum
    /// (Flagger: `value > threshold` fails).
    pub fn of(check: &MetricCheck) -> Self {
        match (&check.threshold_range, check.threshold) {
            (Some(range), _) => Bounds { min: range.min, max: range.max },
            (None, Some(max)) => Bounds { min: None, max: Some(max) },
            (None, None) => Bounds::default(),
        }
    }

    fn describe(self) -> String {
        match (self.min, self.max) {
            (Some(min), Some(max)) => format!("min {min}, max {max}"),
            (Some(min), None) => format!("min {min}"),
            (None, Some(max)) => format!("max {max}"),
            (None, None) => "no bounds".into(),
        }
    }

    /// A configuration problem with the bounds themselves, if any.
    fn problem(self) -> Option<String> {
        match (self.min, self.max) {
            (None, None) => Some("no thresholdRange or threshold to judge the value against".into()),
            (Some(min), _) if min.is_nan() => Some("thresholdRange.min is NaN".into()),
            (_, Some(max)) if max.is_nan() => Some("thresholdRange.max (or threshold) is NaN".into()),
            (Some(min), Some(max)) if min > max => {
                Some(format!("thresholdRange.min {min} exceeds max {max}"))
            }
            _ => None,
        }
    }
}

/// What no data does under a check's `onNoData` (default `hold`).
pub fn no_data_effect(on_no_data: Option<OnNoData>) -> Effect {
    match on_no_data.unwrap_or(OnNoData::Hold) {
        OnNoData::Hold => Effect::Hold,
        OnNoData::Fail => Effect::CountFailure,
        OnNoData::PassWithWarning => Effect::AdvanceWithWarning,
    }
}

/// The effect of a verdict under a check's `onNoData`. Errors count as failures: an
/// unreachable backend is never a pass.
pub fn effect_of(verdict: Verdict, on_no_data: Option<OnNoData>) -> Effect {
    match verdict {
        Verdict::Pass => Effect::Advance,
        Verdict::Fail | Verdict::Error => Effect::CountFailure,
        Verdict::NoData => no_data_effect(on_no_data),
    }
}

fn no_data_suffix(on_no_data: Option<OnNoData>) -> &'static str {
    match on_no_data.unwrap_or(OnNoData::Hold) {
        OnNoData::Hold => "holding (onNoData: hold)",
        OnNoData::Fail => "counted as a failed check (onNoData: fail)",
        OnNoData::PassWithWarning => "passing with a warning (onNoData: pass-with-warning)",
    }
}

/// Why the request guard turns this check into "no data" or an error, if it does.
fn request_guard(min_requests: i64, requests: Option<&Measured>) -> Option<(Verdict, String)> {
    if min_requests <= 0 {
        return None;
    }
    let count = match requests {
        None => {
            return Some((
                Verdict::Error,
                format!(
                    "minRequests is {min_requests} but no request-count query is known for this metric \
                     (builtins have one; give the MetricTemplate a spec.requestCountQuery)"
                ),
            ));
        }
        Some(Measured::Error(e)) => return Some((Verdict::Error, format!("counting requests failed: {e}"))),
        Some(Measured::NoData(_)) => 0.0,
        Some(Measured::Value(n)) if n.is_nan() => 0.0,
        Some(Measured::Value(n)) => *n,
    };
    // i64 → f64 is exact for any realistic minRequests.
    let min = min_requests as f64;
    (count < min).then(|| {
        (Verdict::NoData, format!("only {count} requests in the window, fewer than minRequests {min}"))
    })
}

/// Judges one measured value of a threshold check (`judge: threshold`, the default).
///
/// `query` is the rendered query (recorded in the result); `requests` is the outcome of the
/// request-count query, when there is one (see the module docs).
pub fn judge_threshold(
    check: &MetricCheck,
    query: &str,
    value: &Measured,
    requests: Option<&Measured>,
) -> Judgement {
    let bounds = Bounds::of(check);
    let number = match value {
        Measured::Value(v) => Some(*v),
        _ => None,
    };
    let guard = || request_guard(check.min_requests.unwrap_or(0), requests);
    let (verdict, message) = match value {
        Measured::Error(e) => (Verdict::Error, e.clone()),
        Measured::NoData(why) => guard().unwrap_or_else(|| (Verdict::NoData, why.clone())),
        Measured::Value(v) => match guard() {
            Some(guarded) => guarded,
            None if v.is_nan() => (Verdict::NoData, "the query returned NaN".into()),
            None => match bounds.problem() {
                Some(problem) => (Verdict::Error, problem),
                None => judge_value(*v, bounds),
            },
        },
    };
    let message = if verdict == Verdict::NoData {
        format!("no data: {message}; {}", no_data_suffix(check.on_no_data))
    } else {
        message
    };
    Judgement {
        effect: effect_of(verdict, check.on_no_data),
        result: MetricResult {
            name: check.name.clone(),
            value: number.filter(|v| !v.is_nan()),
            threshold_min: bounds.min,
            threshold_max: bounds.max,
            verdict,
            query: Some(query.to_string()),
            message: Some(message),
            time: None,
        },
    }
}

fn judge_value(value: f64, bounds: Bounds) -> (Verdict, String) {
    if let Some(min) = bounds.min
        && value < min
    {
        return (Verdict::Fail, format!("{value} is below the minimum {min}"));
    }
    if let Some(max) = bounds.max
        && value > max
    {
        return (Verdict::Fail, format!("{value} is above the maximum {max}"));
    }
    (Verdict::Pass, format!("{value} is within {}", bounds.describe()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::provider::{NoData, SeriesLabels};
    use crate::crd::canary::ThresholdRange;
    use std::collections::BTreeMap;

    fn check(min: Option<f64>, max: Option<f64>, threshold: Option<f64>) -> MetricCheck {
        MetricCheck {
            name: "m".into(),
            interval: None,
            threshold_range: (min.is_some() || max.is_some()).then_some(ThresholdRange { min, max }),
            threshold,
            query: None,
            template_ref: None,
            template_variables: None,
            on_no_data: None,
            min_requests: None,
            judge: None,
            comparative: None,
        }
    }

    const INF: f64 = f64::INFINITY;

    /// name, min, max, deprecated threshold, value → verdict, effect, message fragment.
    type ThresholdCase =
        (&'static str, Option<f64>, Option<f64>, Option<f64>, Measured, Verdict, Effect, &'static str);
    /// minRequests, value, request count → verdict, message fragment.
    type RequestCase = (Option<i64>, Measured, Option<Measured>, Verdict, &'static str);

    #[test]
    fn threshold_table() {
        use Effect::*;
        use Verdict::*;
        let v = Measured::Value;
        let none = Measured::NoData("the query returned no series".into());
        #[rustfmt::skip]
        let cases: Vec<ThresholdCase> = vec![
            // name, min, max, deprecated threshold, value → verdict, effect, message contains
            ("inside range", Some(99.0), Some(100.0), None, v(99.5), Pass, Advance, "99.5 is within min 99, max 100"),
            ("equal to min passes", Some(99.0), None, None, v(99.0), Pass, Advance, "within min 99"),
            ("equal to max passes", None, Some(500.0), None, v(500.0), Pass, Advance, "within max 500"),
            ("below min", Some(99.0), None, None, v(98.9), Fail, CountFailure, "98.9 is below the minimum 99"),
            ("above max", None, Some(500.0), None, v(500.1), Fail, CountFailure, "500.1 is above the maximum 500"),
            ("min equals max, equal", Some(1.0), Some(1.0), None, v(1.0), Pass, Advance, "within"),
            ("min equals max, off", Some(1.0), Some(1.0), None, v(1.0000001), Fail, CountFailure, "above"),
            ("deprecated threshold is a max", None, None, Some(5.0), v(5.0), Pass, Advance, "within max 5"),
            ("deprecated threshold exceeded", None, None, Some(5.0), v(5.5), Fail, CountFailure, "above the maximum 5"),
            ("range wins over threshold", Some(1.0), None, Some(0.5), v(2.0), Pass, Advance, "within min 1"),
            ("+inf above max", None, Some(500.0), None, v(INF), Fail, CountFailure, "inf is above"),
            ("+inf with only min", Some(99.0), None, None, v(INF), Pass, Advance, "inf is within"),
            ("-inf below min", Some(0.0), None, None, v(-INF), Fail, CountFailure, "-inf is below"),
            ("-inf with only max", None, Some(1.0), None, v(-INF), Pass, Advance, "within"),
            ("negative values", Some(-10.0), Some(-1.0), None, v(-5.0), Pass, Advance, "within"),
            ("NaN value is no data", Some(99.0), None, None, v(f64::NAN), NoData, Hold, "no data: the query returned NaN"),
            ("empty is no data", Some(99.0), None, None, none.clone(), NoData, Hold, "no data: the query returned no series; holding"),
            ("no bounds is an error", None, None, None, v(1.0), Error, CountFailure, "no thresholdRange or threshold"),
            ("NaN min is an error", Some(f64::NAN), None, None, v(1.0), Error, CountFailure, "min is NaN"),
            ("NaN max is an error", None, Some(f64::NAN), None, v(1.0), Error, CountFailure, "max (or threshold) is NaN"),
            ("min above max is an error", Some(2.0), Some(1.0), None, v(1.5), Error, CountFailure, "exceeds max"),
            ("no data beats missing bounds", None, None, None, none, NoData, Hold, "no data"),
            ("backend error", Some(99.0), None, None, Measured::Error("unreachable".into()), Error, CountFailure, "unreachable"),
        ];
        for (name, min, max, threshold, value, verdict, effect, message) in cases {
            let c = check(min, max, threshold);
            let j = judge_threshold(&c, "q", &value, None);
            assert_eq!(j.result.verdict, verdict, "{name}: {:?}", j.result.message);
            assert_eq!(j.effect, effect, "{name}");
            let text = j.result.message.clone().unwrap_or_default();
            assert!(text.contains(message), "{name}: {text:?} lacks {message:?}");
            assert_eq!(j.result.query.as_deref(), Some("q"), "{name}");
            assert_eq!(j.result.name, "m");
            assert_eq!(j.result.time, None);
        }
    }

    #[test]
    fn result_records_value_and_bounds() {
        let j = judge_threshold(&check(Some(99.0), None, None), "sum(x)", &Measured::Value(98.0), None);
        assert_eq!(
            j.result,
            MetricResult {
                name: "m".into(),
                value: Some(98.0),
                threshold_min: Some(99.0),
                threshold_max: None,
                verdict: Verdict::Fail,
                query: Some("sum(x)".into()),
                message: Some("98 is below the minimum 99".into()),
                time: None,
            }
        );
        let j = judge_threshold(&check(None, None, Some(500.0)), "q", &Measured::Value(f64::NAN), None);
        assert_eq!((j.result.value, j.result.threshold_max), (None, Some(500.0)));
    }

    #[test]
    fn on_no_data_table() {
        let cases = [
            (None, Effect::Hold, "holding (onNoData: hold)"),
            (Some(OnNoData::Hold), Effect::Hold, "holding"),
            (Some(OnNoData::Fail), Effect::CountFailure, "counted as a failed check (onNoData: fail)"),
            (Some(OnNoData::PassWithWarning), Effect::AdvanceWithWarning, "passing with a warning"),
        ];
        for (on_no_data, effect, text) in cases {
            let mut c = check(Some(99.0), None, None);
            c.on_no_data = on_no_data;
            let j = judge_threshold(&c, "q", &Measured::NoData("empty".into()), None);
            assert_eq!(j.result.verdict, Verdict::NoData, "{on_no_data:?}: no data stays visible as such");
            assert_eq!(j.effect, effect, "{on_no_data:?}");
            assert!(j.result.message.as_deref().unwrap_or_default().contains(text), "{:?}", j.result.message);
            // onNoData never touches real verdicts.
            let pass = judge_threshold(&c, "q", &Measured::Value(100.0), None);
            assert_eq!(pass.effect, Effect::Advance);
            let fail = judge_threshold(&c, "q", &Measured::Value(1.0), None);
            assert_eq!(fail.effect, Effect::CountFailure);
            let error = judge_threshold(&c, "q", &Measured::Error("down".into()), None);
            assert_eq!(error.effect, Effect::CountFailure);
        }
    }

    #[test]
    fn min_requests_table() {
        let v = Measured::Value;
        #[rustfmt::skip]
        let cases: Vec<RequestCase> = vec![
            // minRequests, value, request count → verdict, message contains
            (Some(100), v(50.0), Some(v(99.0)), Verdict::NoData, "only 99 requests in the window, fewer than minRequests 100"),
            (Some(100), v(50.0), Some(v(100.0)), Verdict::Fail, "below the minimum 99"),
            (Some(100), v(99.5), Some(v(1e6)), Verdict::Pass, "within"),
            (Some(100), v(99.5), Some(Measured::NoData("empty".into())), Verdict::NoData, "only 0 requests"),
            (Some(100), v(99.5), Some(v(f64::NAN)), Verdict::NoData, "only 0 requests"),
            (Some(100), v(99.5), Some(Measured::Error("timeout".into())), Verdict::Error, "counting requests failed: timeout"),
            (Some(100), v(99.5), None, Verdict::Error, "no request-count query"),
            (Some(0), v(99.5), None, Verdict::Pass, "within"),
            (Some(-1), v(99.5), None, Verdict::Pass, "within"),
            (None, v(99.5), Some(v(0.0)), Verdict::Pass, "within"),
            // A backend error on the value wins over the request guard.
            (Some(100), Measured::Error("down".into()), Some(v(0.0)), Verdict::Error, "down"),
            // Too few requests explains an empty value better than "empty".
            (Some(100), Measured::NoData("empty".into()), Some(v(3.0)), Verdict::NoData, "only 3 requests"),
        ];
        for (min_requests, value, requests, verdict, text) in cases {
            let mut c = check(Some(99.0), None, None);
            c.min_requests = min_requests;
            let j = judge_threshold(&c, "q", &value, requests.as_ref());
            assert_eq!(
                j.result.verdict, verdict,
                "{min_requests:?} {value:?} {requests:?}: {:?}",
                j.result.message
            );
            let message = j.result.message.unwrap_or_default();
            assert!(message.contains(text), "{message:?} lacks {text:?}");
        }
    }

    #[test]
    fn measured_from_provider_results() {
        assert_eq!(Measured::from_query(&Ok(QueryOutcome::Value(1.5))), Measured::Value(1.5));
        assert_eq!(
            Measured::from_query(&Ok(QueryOutcome::Value(f64::NAN))),
            Measured::NoData("the query returned NaN".into())
        );
        assert_eq!(
            Measured::from_query(&Ok(QueryOutcome::NoData(NoData::Empty))),
            Measured::NoData("the query returned no series".into())
        );
        let series = |pod: &str| SeriesLabels(BTreeMap::from([("pod".to_string(), pod.to_string())]));
        let several = Measured::from_query(&Ok(QueryOutcome::MultipleSeries(vec![series("a"), series("b")])));
        assert_eq!(
            several,
            Measured::Error(
                "the query returned 2 series instead of one (aggregate them, e.g. with sum()): {pod=\"a\"}, {pod=\"b\"}"
                    .into()
            )
        );
        let down =
            Measured::from_query(&Err(ProviderError::HttpStatus { status: 502, body: "bad gateway".into() }));
        assert_eq!(down, Measured::Error("metrics backend answered HTTP 502: bad gateway".into()));
        // Several series is judged an error, which counts as a failure.
        let j = judge_threshold(&check(Some(1.0), None, None), "q", &several, None);
        assert_eq!((j.result.verdict, j.effect), (Verdict::Error, Effect::CountFailure));
    }
}
