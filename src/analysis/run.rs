//! Runs a canary's metric checks for one tick: resolves each check to a query (builtin,
//! MetricTemplate or inline), renders it, asks the right backend, and judges the answer. The
//! result is the metric part of the rollout core's `AnalysisReport`.
//!
//! Resolution and rendering are pure ([`prepare`]); only [`run_metrics`] does I/O, through the
//! [`Backends`] trait, so the reconciler's tests use in-memory providers.
//!
//! Comparative checks (`judge: comparative`) render the template twice — with `{{ target }}`
//! the canary workload and with `{{ target }}` the primary (`<target>-primary`) — run both as
//! range queries over the metric's interval, and compare the two samples (Mann–Whitney U and
//! mean ratio, see `comparative`). Write such a template with `{{ target }}`, not a fixed name.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::join_all;
use thiserror::Error;

use super::builtin::{self, GatewayMetrics};
use super::comparative::{ComparativeConfig, compare};
use super::provider::{MetricProvider, ProviderError, RangeOutcome, RangeWindow};
use super::template::{self, TemplateContext, TemplateError};
use super::verdict::{Measured, judge_threshold};
use crate::crd::Provider;
use crate::crd::canary::{CanarySpec, Judge, MetricCheck};
use crate::crd::duration::parse_duration;
use crate::crd::metric_template::{MetricProviderSpec, MetricProviderType, MetricTemplate};
use crate::crd::status::{MetricResult, Verdict};
use crate::rollout::{CheckKind, CheckResult};

/// Default query window, Flagger's.
pub const DEFAULT_METRIC_INTERVAL: &str = "1m";

/// The canary whose checks run.
#[derive(Clone, Copy, Debug)]
pub struct CanaryRef<'a> {
    /// Namespace of the Canary.
    pub namespace: &'a str,
    /// Name of the Canary.
    pub name: &'a str,
    /// Its spec.
    pub spec: &'a CanarySpec,
    /// The traffic router in effect (picks the builtin queries).
    pub provider: Provider,
    /// Which metrics a Gateway API canary's builtins read.
    pub gateway: GatewayMetrics,
}

/// Which backend a query goes to.
#[derive(Clone, Debug, PartialEq)]
pub enum Backend {
    /// The global Prometheus: `spec.metricsServer`, else the controller's `--metrics-server`.
    Default {
        /// `spec.metricsServer`, when set.
        address: Option<String>,
    },
    /// The backend of a MetricTemplate.
    Template {
        /// The template's namespace (where its `secretRef` lives).
        namespace: String,
        /// The template's provider settings.
        provider: MetricProviderSpec,
    },
}

/// A check ready to run: rendered queries and where they go.
#[derive(Clone, Debug, PartialEq)]
pub struct PreparedCheck {
    /// The check.
    pub check: MetricCheck,
    /// The rendered query (the canary's side for a comparative check).
    pub query: String,
    /// Comparative checks: the same query for the primary.
    pub primary_query: Option<String>,
    /// The request-count query for `minRequests`, when one is known.
    pub request_query: Option<String>,
    /// Where the queries go.
    pub backend: Backend,
    /// The query window.
    pub window: Duration,
}

/// Why a check cannot be turned into a query.
#[derive(Debug, Error, PartialEq)]
pub enum PrepareError {
    /// The referenced MetricTemplate does not exist.
    #[error("MetricTemplate {namespace}/{name} not found")]
    TemplateNotFound {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// No builtin of this name exists for the router.
    #[error("no builtin metric {name:?} for provider {provider}; use a MetricTemplate")]
    NoBuiltin {
        /// The check name.
        name: String,
        /// The router.
        provider: Provider,
    },
    /// The template names a backend Serin cannot query.
    #[error("metrics backend {0:?} is not supported; use prometheus")]
    UnsupportedBackend(String),
    /// The template could not be rendered.
    #[error("rendering the query: {0}")]
    Template(#[from] TemplateError),
    /// The check's interval is not a duration.
    #[error("interval: {0}")]
    Interval(String),
}

/// Values for the template placeholders of `check` on `canary`, with `target` as given.
fn context(canary: &CanaryRef<'_>, check: &MetricCheck, target: &str) -> TemplateContext {
    let spec = canary.spec;
    let target_name = spec.target_ref.name.as_str();
    TemplateContext {
        name: canary.name.to_string(),
        namespace: canary.namespace.to_string(),
        target: target.to_string(),
        service: spec.service_name().to_string(),
        ingress: spec.ingress_ref.as_ref().map_or(target_name, |r| r.name.as_str()).to_string(),
        route: spec.route_ref.as_ref().map_or(target_name, |r| r.name.as_str()).to_string(),
        interval: check.interval.clone().unwrap_or_else(|| DEFAULT_METRIC_INTERVAL.into()),
        primary: format!("{target_name}-primary"),
        variables: check.template_variables.clone().unwrap_or_default(),
    }
}

/// Resolves and renders one check. `lookup(namespace, name)` finds MetricTemplates.
pub fn prepare(
    canary: &CanaryRef<'_>,
    check: &MetricCheck,
    lookup: &(dyn Fn(&str, &str) -> Option<MetricTemplate> + Sync),
) -> Result<PreparedCheck, PrepareError> {
    let window_text = check.interval.as_deref().unwrap_or(DEFAULT_METRIC_INTERVAL);
    let window = parse_duration(window_text).map_err(|e| PrepareError::Interval(e.to_string()))?;
    let target = canary.spec.target_ref.name.as_str();
    let default_backend = Backend::Default { address: canary.spec.metrics_server.clone() };
    let metrics_provider = builtin::provider_for(canary.provider, canary.gateway);

    // The query and, for `minRequests`, the request-count query: a builtin's comes from the
    // router's `request-count` builtin, a MetricTemplate's from its `requestCountQuery`.
    let (template_query, count_query, backend) = if let Some(reference) = &check.template_ref {
        let namespace = reference.namespace.as_deref().unwrap_or(canary.namespace);
        let template = lookup(namespace, &reference.name).ok_or_else(|| PrepareError::TemplateNotFound {
            namespace: namespace.to_string(),
            name: reference.name.clone(),
        })?;
        if template.spec.provider.type_ != MetricProviderType::Prometheus {
            return Err(PrepareError::UnsupportedBackend(template.spec.provider.type_.as_str().into()));
        }
        let backend =
            Backend::Template { namespace: namespace.to_string(), provider: template.spec.provider.clone() };
        (template.spec.query, template.spec.request_count_query, backend)
    } else if let Some(query) = &check.query {
        (query.clone(), None, default_backend.clone())
    } else {
        let template = metrics_provider
            .and_then(|p| builtin::builtin(p, &check.name))
            .ok_or_else(|| PrepareError::NoBuiltin { name: check.name.clone(), provider: canary.provider })?;
        let count = metrics_provider.and_then(|p| builtin::builtin(p, builtin::REQUEST_COUNT));
        (template.spec.query.clone(), count.map(|t| t.spec.query.clone()), default_backend.clone())
    };

    let query = template::render(&template_query, &context(canary, check, target))?;
    let primary_query = match check.judge {
        Some(Judge::Comparative) => {
            Some(template::render(&template_query, &context(canary, check, &format!("{target}-primary")))?)
        }
        _ => None,
    };
    // Without a request-count query `judge_threshold` reports minRequests as an error.
    let request_query = match count_query {
        Some(count) if check.min_requests.unwrap_or(0) > 0 => {
            Some(template::render(&count, &context(canary, check, target))?)
        }
        _ => None,
    };
    Ok(PreparedCheck { check: check.clone(), query, primary_query, request_query, backend, window })
}

/// Turns backend settings into a provider (reading Secrets is I/O, hence async).
#[async_trait]
pub trait Backends: Send + Sync {
    /// The provider for `backend`.
    async fn provider(&self, backend: &Backend) -> Result<Arc<dyn MetricProvider>, ProviderError>;
}

fn error_result(check: &MetricCheck, query: Option<String>, message: String) -> CheckResult {
    let mut result = CheckResult::new(CheckKind::Metric, &check.name, Verdict::Error, Some(&message));
    result.result.query = query;
    result
}

/// When a check is evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum At {
    /// Now: instant queries use the backend's clock; range windows (comparative checks) end at
    /// this local Unix time.
    Now(i64),
    /// A past moment (Unix seconds), for every query: how `serin replay` re-evaluates history.
    Past(i64),
}

impl At {
    /// The Unix time range windows end at.
    pub fn unix(self) -> i64 {
        match self {
            At::Now(t) | At::Past(t) => t,
        }
    }

    /// The evaluation time to send with instant queries (`None`: the backend's now).
    fn pinned(self) -> Option<i64> {
        match self {
            At::Now(_) => None,
            At::Past(t) => Some(t),
        }
    }
}

/// Runs one prepared check at `at` and judges it. Never fails: a backend that cannot be
/// reached, a rejected query or several series is an `Error` result.
pub async fn measure(prepared: PreparedCheck, backends: &dyn Backends, at: At) -> CheckResult {
    let check = &prepared.check;
    let provider = match backends.provider(&prepared.backend).await {
        Ok(provider) => provider,
        Err(e) => return error_result(check, Some(prepared.query.clone()), format!("metrics backend: {e}")),
    };
    let judgement = match &prepared.primary_query {
        None => {
            let value = Measured::from_query(&provider.query_at(&prepared.query, at.pinned()).await);
            let requests = match &prepared.request_query {
                Some(q) => Some(Measured::from_query(&provider.query_at(q, at.pinned()).await)),
                None => None,
            };
            judge_threshold(check, &prepared.query, &value, requests.as_ref())
        }
        Some(primary_query) => {
            let config = ComparativeConfig::from_settings(check.comparative.as_ref());
            if let Err(e) = config.validate() {
                return error_result(check, Some(prepared.query.clone()), format!("comparative: {e}"));
            }
            let now_unix = at.unix();
            let window = RangeWindow {
                start: now_unix - prepared.window.as_secs() as i64,
                end: now_unix,
                step: (prepared.window / 60).max(Duration::from_secs(1)),
            };
            let (canary, primary) = futures::join!(
                provider.query_range(&prepared.query, window),
                provider.query_range(primary_query, window)
            );
            let samples = |outcome: Result<RangeOutcome, ProviderError>, side: &str| match outcome {
                Ok(RangeOutcome::Samples(values)) => Ok(values),
                Ok(RangeOutcome::NoData) => Ok(Vec::new()),
                Ok(RangeOutcome::MultipleSeries(series)) => {
                    Err(format!("the {side} query returned {} series instead of one", series.len()))
                }
                Err(e) => Err(format!("the {side} query failed: {e}")),
            };
            match (samples(canary, "canary"), samples(primary, "primary")) {
                (Ok(canary), Ok(primary)) => match compare(&canary, &primary, &config) {
                    Ok(comparison) => {
                        comparison.judgement(&check.name, &prepared.query, &config, check.on_no_data)
                    }
                    Err(e) => return error_result(check, Some(prepared.query.clone()), e.to_string()),
                },
                (Err(e), _) | (_, Err(e)) => return error_result(check, Some(prepared.query.clone()), e),
            }
        }
    };
    CheckResult { kind: CheckKind::Metric, result: judgement.result }
}

/// Runs every metric check of the canary concurrently and returns one result per check, in
/// spec order. Nothing here fails the whole analysis: a check that cannot run is an `Error`
/// result, which the rollout core counts as a failed check (never a pass).
pub async fn run_metrics(
    canary: &CanaryRef<'_>,
    lookup: &(dyn Fn(&str, &str) -> Option<MetricTemplate> + Sync),
    backends: &dyn Backends,
    now_unix: i64,
) -> Vec<CheckResult> {
    let checks = canary.spec.analysis.metrics.as_deref().unwrap_or_default();
    let runs = checks.iter().map(|check| async move {
        match prepare(canary, check, lookup) {
            Ok(prepared) => measure(prepared, backends, At::Now(now_unix)).await,
            Err(e) => error_result(check, None, e.to_string()),
        }
    });
    join_all(runs).await
}

/// The results as they go into `status.analysis`.
pub fn status_results(results: &[CheckResult]) -> Vec<MetricResult> {
    results.iter().map(|r| r.result.clone()).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use serde_json::json;

    use super::*;
    use crate::analysis::provider::{NoData, QueryOutcome};

    fn spec(metrics: serde_json::Value) -> CanarySpec {
        serde_json::from_value(json!({
            "provider": "istio",
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 80, "name": "podinfo-svc"},
            "analysis": {"stepWeight": 10, "metrics": metrics}
        }))
        .expect("spec")
    }

    fn canary(spec: &CanarySpec) -> CanaryRef<'_> {
        CanaryRef {
            namespace: "test",
            name: "podinfo",
            spec,
            provider: Provider::Istio,
            gateway: GatewayMetrics::Envoy,
        }
    }

    fn template(query: &str) -> MetricTemplate {
        serde_json::from_value(json!({
            "apiVersion": "serin.dev/v1alpha1", "kind": "MetricTemplate",
            "metadata": {"name": "errors", "namespace": "shared"},
            "spec": {"provider": {"type": "prometheus", "address": "http://prom.shared:9090"}, "query": query}
        }))
        .expect("template")
    }

    fn lookup(namespace: &str, name: &str) -> Option<MetricTemplate> {
        match (namespace, name) {
            ("shared", "errors") => Some(template(
                "sum(errors{ns=\"{{ namespace }}\",app=\"{{ target }}\",d=\"{{ variables.dir }}\"}[{{ interval }}])",
            )),
            ("shared", "counted") => {
                let mut t = template("sum(rate(errs{app=\"{{ target }}\"}[{{ interval }}]))");
                t.spec.request_count_query =
                    Some("sum(increase(reqs{app=\"{{ target }}\"}[{{ interval }}]))".into());
                Some(t)
            }
            _ => None,
        }
    }

    #[test]
    fn template_request_count_query_is_rendered_only_with_min_requests() {
        let s = spec(json!([
            {"name": "a", "templateRef": {"name": "counted", "namespace": "shared"}, "thresholdRange": {"max": 1}, "minRequests": 50, "interval": "2m"},
            {"name": "b", "templateRef": {"name": "counted", "namespace": "shared"}, "thresholdRange": {"max": 1}},
            {"name": "c", "templateRef": {"name": "errors", "namespace": "shared"}, "templateVariables": {"dir": "in"}, "thresholdRange": {"max": 1}, "minRequests": 50},
            {"name": "d", "query": "up", "thresholdRange": {"max": 1}, "minRequests": 50}
        ]));
        let c = canary(&s);
        let checks = s.analysis.metrics.clone().unwrap_or_default();
        let requests: Vec<Option<String>> =
            checks.iter().map(|check| prepare(&c, check, &lookup).expect("prepares").request_query).collect();
        assert_eq!(
            requests,
            vec![Some("sum(increase(reqs{app=\"podinfo\"}[2m]))".to_string()), None, None, None]
        );
    }

    #[test]
    fn prepares_builtins_templates_and_inline_queries() {
        let s = spec(json!([
            {"name": "request-success-rate", "thresholdRange": {"min": 99}, "minRequests": 10},
            {"name": "errors", "templateRef": {"name": "errors", "namespace": "shared"}, "templateVariables": {"dir": "in"},
             "interval": "30s", "thresholdRange": {"max": 1}},
            {"name": "inline", "query": "up{job=\"{{ service }}\"}", "thresholdRange": {"min": 1}},
            {"name": "cmp", "templateRef": {"name": "errors", "namespace": "shared"}, "templateVariables": {"dir": "in"}, "judge": "comparative"}
        ]));
        let c = canary(&s);
        let checks = s.analysis.metrics.clone().unwrap_or_default();

        let builtin = prepare(&c, &checks[0], &lookup).expect("builtin");
        assert!(builtin.query.contains("destination_workload_namespace=\"test\""), "{}", builtin.query);
        assert!(builtin.query.contains("[1m]"));
        assert_eq!(builtin.backend, Backend::Default { address: None });
        assert!(builtin.request_query.as_deref().is_some_and(|q| q.contains("istio_requests_total")));

        let templated = prepare(&c, &checks[1], &lookup).expect("template");
        assert_eq!(templated.query, "sum(errors{ns=\"test\",app=\"podinfo\",d=\"in\"}[30s])");
        assert_eq!(templated.window, Duration::from_secs(30));
        assert!(matches!(&templated.backend, Backend::Template { namespace, .. } if namespace == "shared"));
        assert_eq!(templated.request_query, None);

        let inline = prepare(&c, &checks[2], &lookup).expect("inline");
        assert_eq!(inline.query, "up{job=\"podinfo-svc\"}");

        let comparative = prepare(&c, &checks[3], &lookup).expect("comparative");
        assert_eq!(
            comparative.primary_query.as_deref(),
            Some("sum(errors{ns=\"test\",app=\"podinfo-primary\",d=\"in\"}[1m])")
        );
    }

    #[test]
    fn preparation_errors_name_the_problem() {
        let s = spec(json!([
            {"name": "missing", "templateRef": {"name": "nope"}, "thresholdRange": {"max": 1}},
            {"name": "not-a-builtin", "thresholdRange": {"max": 1}},
            {"name": "vars", "templateRef": {"name": "errors", "namespace": "shared"}, "thresholdRange": {"max": 1}}
        ]));
        let c = canary(&s);
        let checks = s.analysis.metrics.clone().unwrap_or_default();
        assert_eq!(
            prepare(&c, &checks[0], &lookup),
            Err(PrepareError::TemplateNotFound { namespace: "test".into(), name: "nope".into() })
        );
        assert_eq!(
            prepare(&c, &checks[1], &lookup),
            Err(PrepareError::NoBuiltin { name: "not-a-builtin".into(), provider: Provider::Istio })
        );
        assert_eq!(
            prepare(&c, &checks[2], &lookup),
            Err(PrepareError::Template(TemplateError::MissingVariable("dir".into())))
        );
    }

    /// Answers instant queries from a table; counts calls.
    struct Fake {
        answers: BTreeMap<String, QueryOutcome>,
        ranges: BTreeMap<String, Vec<f64>>,
        calls: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl MetricProvider for Fake {
        async fn query_at(&self, query: &str, _: Option<i64>) -> Result<QueryOutcome, ProviderError> {
            self.calls.lock().expect("lock").push(query.to_string());
            self.answers
                .get(query)
                .cloned()
                .ok_or_else(|| ProviderError::Unreachable { address: "fake".into(), reason: "down".into() })
        }
        async fn query_range(&self, query: &str, _: RangeWindow) -> Result<RangeOutcome, ProviderError> {
            Ok(self.ranges.get(query).map_or(RangeOutcome::NoData, |v| RangeOutcome::Samples(v.clone())))
        }
        async fn health(&self) -> Result<(), ProviderError> {
            Ok(())
        }
    }

    struct FakeBackends(Arc<Fake>, bool);

    #[async_trait]
    impl Backends for FakeBackends {
        async fn provider(&self, _: &Backend) -> Result<Arc<dyn MetricProvider>, ProviderError> {
            if self.1 { Ok(self.0.clone()) } else { Err(ProviderError::Config("no --metrics-server".into())) }
        }
    }

    #[tokio::test]
    async fn judges_every_check_and_never_passes_on_errors() {
        let s = spec(json!([
            {"name": "inline-pass", "query": "pass", "thresholdRange": {"min": 99}},
            {"name": "inline-fail", "query": "fail", "thresholdRange": {"min": 99}},
            {"name": "inline-empty", "query": "empty", "thresholdRange": {"min": 99}},
            {"name": "inline-down", "query": "down", "thresholdRange": {"min": 99}},
            {"name": "missing", "templateRef": {"name": "nope"}, "thresholdRange": {"max": 1}},
            {"name": "cmp", "query": "lat{app=\"{{ target }}\"}", "judge": "comparative"}
        ]));
        let fake = Arc::new(Fake {
            answers: BTreeMap::from([
                ("pass".into(), QueryOutcome::Value(99.5)),
                ("fail".into(), QueryOutcome::Value(80.0)),
                ("empty".into(), QueryOutcome::NoData(NoData::Empty)),
            ]),
            ranges: BTreeMap::from([
                ("lat{app=\"podinfo\"}".into(), (0..30).map(|i| 200.0 + f64::from(i)).collect()),
                ("lat{app=\"podinfo-primary\"}".into(), (0..30).map(|i| 100.0 + f64::from(i)).collect()),
            ]),
            calls: Mutex::new(Vec::new()),
        });
        let results = run_metrics(&canary(&s), &lookup, &FakeBackends(fake.clone(), true), 1_000_000).await;
        let verdicts: Vec<(String, Verdict)> =
            results.iter().map(|r| (r.result.name.clone(), r.result.verdict)).collect();
        assert_eq!(
            verdicts,
            vec![
                ("inline-pass".into(), Verdict::Pass),
                ("inline-fail".into(), Verdict::Fail),
                ("inline-empty".into(), Verdict::NoData),
                ("inline-down".into(), Verdict::Error),
                ("missing".into(), Verdict::Error),
                ("cmp".into(), Verdict::Fail),
            ]
        );
        assert_eq!(results[1].result.value, Some(80.0));
        assert_eq!(results[1].result.threshold_min, Some(99.0));
        assert_eq!(results[4].result.message.as_deref(), Some("MetricTemplate test/nope not found"));

        let unreachable = run_metrics(&canary(&s), &lookup, &FakeBackends(fake, false), 0).await;
        assert!(unreachable.iter().all(|r| r.result.verdict == Verdict::Error), "{unreachable:?}");
    }
}
