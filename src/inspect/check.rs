//! `serin check`: runs every metric check of a Canary against Prometheus now, through the
//! controller's own analysis code (`analysis::run::prepare` and `measure`), and explains empty
//! results with the labels that do exist (see `hint`).

use std::time::Duration;

use futures::future::join_all;
use tracing::{debug, warn};

use super::backends::CliBackends;
use super::hint::{self, Evidence, Selector};
use super::source::Loaded;
use super::table::CheckRow;
use crate::analysis::builtin::GatewayMetrics;
use crate::analysis::prometheus::PrometheusProvider;
use crate::analysis::provider::{MetricProvider, NoData, QueryOutcome};
use crate::analysis::run::{At, CanaryRef, PreparedCheck, measure, prepare};
use crate::crd::Provider;
use crate::crd::canary::{Judge, MetricCheck};
use crate::crd::status::{MetricResult, Verdict};

/// How far back the hints look for series of a metric.
pub const HINT_LOOKBACK: Duration = Duration::from_secs(3600);

/// Settings shared by `serin check` and `serin replay`.
#[derive(Clone, Debug)]
pub struct Options {
    /// Send every query here (overrides `spec.metricsServer` and template addresses).
    pub prometheus: Option<String>,
    /// Router for a Canary without `spec.provider` (the controller's `--provider`).
    pub default_provider: Provider,
    /// Which metrics Gateway API builtins read.
    pub gateway: GatewayMetrics,
}

/// The router a Canary's builtins follow.
pub fn provider_of(loaded: &Loaded, options: &Options) -> Provider {
    loaded.canary.spec.provider.unwrap_or(options.default_provider)
}

/// The analysis' view of the loaded Canary.
pub fn canary_ref<'a>(loaded: &'a Loaded, options: &Options) -> CanaryRef<'a> {
    CanaryRef {
        namespace: loaded.namespace(),
        name: loaded.name(),
        spec: &loaded.canary.spec,
        provider: provider_of(loaded, options),
        gateway: options.gateway,
    }
}

/// The checks of the Canary, each prepared (rendered) or with the reason it cannot be.
pub fn prepare_all(loaded: &Loaded, options: &Options) -> Vec<(MetricCheck, Result<PreparedCheck, String>)> {
    let canary = canary_ref(loaded, options);
    let lookup = |ns: &str, name: &str| loaded.template(ns, name);
    loaded
        .canary
        .spec
        .analysis
        .metrics
        .iter()
        .flatten()
        .map(|check| (check.clone(), prepare(&canary, check, &lookup).map_err(|e| e.to_string())))
        .collect()
}

/// A result for a check that could not be prepared.
pub fn unprepared(check: &MetricCheck, reason: &str) -> MetricResult {
    MetricResult {
        name: check.name.clone(),
        value: None,
        threshold_min: None,
        threshold_max: None,
        verdict: Verdict::Error,
        query: None,
        message: Some(reason.to_string()),
        time: None,
    }
}

async fn evidence(
    provider: &PrometheusProvider,
    selector: &Selector,
    start: i64,
    end: i64,
) -> Result<Evidence, String> {
    let metric = selector.metric.as_str();
    let label_names = provider.label_names(metric, start, end).await.map_err(|e| e.to_string())?;
    let mut evidence = Evidence { label_names, ..Evidence::default() };
    if evidence.label_names.is_empty() {
        return Ok(evidence);
    }
    for matcher in &selector.matchers {
        if evidence.values.contains_key(&matcher.label) || !evidence.label_names.contains(&matcher.label) {
            continue;
        }
        let values =
            provider.label_values(&matcher.label, metric, start, end).await.map_err(|e| e.to_string())?;
        evidence.values.insert(matcher.label.clone(), values);
    }
    let matching =
        provider.label_names(&selector.to_string(), start, end).await.map_err(|e| e.to_string())?;
    evidence.selector_matches = !matching.is_empty();
    Ok(evidence)
}

/// Why `query` gives nothing now, if it does: the labels that exist for its metrics when it
/// returns no series, the 0/0 explanation for NaN. `None` when it returns a value (the
/// check's message already says why it is "no data", e.g. too few requests).
pub async fn hint_for(provider: &PrometheusProvider, query: &str, now_unix: i64) -> Option<String> {
    match provider.query(query).await {
        Ok(QueryOutcome::NoData(NoData::NaN)) => Some(hint::nan_hint().to_string()),
        Ok(QueryOutcome::NoData(NoData::Empty)) => {
            let selectors = hint::selectors(query);
            let start = now_unix - HINT_LOOKBACK.as_secs() as i64;
            let mut found = Vec::new();
            for selector in &selectors {
                match evidence(provider, selector, start, now_unix).await {
                    Ok(e) => found.push(e),
                    Err(e) => {
                        warn!(error = %e, "label lookup failed");
                        return Some(format!(
                            "no series match; looking up the labels of {} failed: {e}",
                            selector.metric
                        ));
                    }
                }
            }
            Some(hint::empty_hint(&selectors, &found, "1h"))
        }
        Ok(_) | Err(_) => None,
    }
}

/// Runs every check of the Canary now; one row per check, in spec order.
pub async fn check(loaded: &Loaded, options: &Options, now_unix: i64) -> Vec<CheckRow> {
    let backends = CliBackends::new(options.prometheus.clone(), loaded.secrets.clone());
    let prepared = prepare_all(loaded, options);
    let rows = prepared.into_iter().map(|(check, prepared)| {
        let backends = &backends;
        async move {
            let comparative = check.judge == Some(Judge::Comparative);
            let prepared = match prepared {
                Ok(p) => p,
                Err(reason) => {
                    return CheckRow { result: unprepared(&check, &reason), comparative, hint: None };
                }
            };
            let backend = prepared.backend.clone();
            let query = prepared.query.clone();
            let result = measure(prepared, backends, At::Now(now_unix)).await.result;
            debug!(metric = %result.name, verdict = ?result.verdict, value = ?result.value, "checked");
            let hint = match (result.verdict, backends.prometheus(&backend)) {
                (Verdict::NoData, Ok(provider)) => hint_for(&provider, &query, now_unix).await,
                _ => None,
            };
            CheckRow { result, comparative, hint }
        }
    });
    join_all(rows).await
}
