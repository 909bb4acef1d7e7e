//! The controller's Prometheus metrics, with Flagger's names under the `serin_` prefix so
//! existing dashboards translate, plus reconcile, Git and latency metrics. Labels are bounded:
//! canary identity, phase-free outcome and error category strings from fixed sets.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

use crate::crd::CanaryPhase;

/// Identifies one canary.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CanaryLabels {
    /// Canary name.
    pub name: String,
    /// Canary namespace.
    pub namespace: String,
}

/// A workload's traffic weight (`<target>-primary` or `<target>`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WeightLabels {
    /// Workload name.
    pub workload: String,
    /// Namespace.
    pub namespace: String,
}

/// One metric check of one canary.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AnalysisLabels {
    /// Canary name.
    pub name: String,
    /// Canary namespace.
    pub namespace: String,
    /// Metric check name.
    pub metric: String,
}

/// A finished run.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RunLabels {
    /// Canary name.
    pub name: String,
    /// Canary namespace.
    pub namespace: String,
    /// `canary`, `blue-green` or `ab-testing`.
    pub deployment_strategy: String,
    /// `completed` or `skipped`.
    pub analysis_status: String,
}

/// Outcome of a whole run.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `succeeded` or `failed`.
    pub outcome: String,
}

/// A category from a fixed set (error kind, revert result, webhook type).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CategoryLabels {
    /// The category.
    pub category: String,
}

/// Result of a Git revert.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// `pushed`, `pull_request`, `not_needed`, `conflict`, `error`.
    pub result: String,
}

/// Namespace of a count.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NamespaceLabels {
    /// Namespace.
    pub namespace: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InfoLabels {
    version: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;
type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

fn run_histogram() -> Histogram {
    Histogram::new(exponential_buckets(30.0, 2.0, 10))
}

/// Every metric the controller exports.
#[derive(Clone)]
pub struct Metrics {
    /// 0 running, 1 succeeded or idle, 2 failed (Flagger's encoding).
    pub canary_status: Family<CanaryLabels, Gauge>,
    /// Traffic weight per workload.
    pub canary_weight: Family<WeightLabels, Gauge>,
    /// Canaries per namespace.
    pub canary_total: Family<NamespaceLabels, Gauge>,
    /// Duration of whole runs, from new revision to promotion or rollback.
    pub canary_duration: HistogramFamily<OutcomeLabels>,
    /// Last value of each metric check.
    pub metric_analysis: Family<AnalysisLabels, FloatGauge>,
    /// Promoted runs.
    pub successes: Family<RunLabels, Counter>,
    /// Rolled-back runs.
    pub failures: Family<RunLabels, Counter>,
    /// Git reverts by result.
    pub git_reverts: Family<ResultLabels, Counter>,
    /// Alerts by delivery result (`sent`, `failed`, `suppressed`, `dropped`).
    pub alerts: Family<ResultLabels, Counter>,
    /// Time per reconcile.
    pub reconcile_duration: Histogram,
    /// Failed reconciles by error category.
    pub reconcile_errors: Family<CategoryLabels, Counter>,
    /// Webhook call latency by hook type.
    pub webhook_duration: HistogramFamily<CategoryLabels>,
    /// Metric query latency by provider type.
    pub query_duration: HistogramFamily<CategoryLabels>,
}

impl Metrics {
    /// Creates the metrics and registers them (prefix `serin_`).
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            canary_status: Family::default(),
            canary_weight: Family::default(),
            canary_total: Family::default(),
            canary_duration: Family::new_with_constructor(run_histogram),
            metric_analysis: Family::default(),
            successes: Family::default(),
            failures: Family::default(),
            git_reverts: Family::default(),
            alerts: Family::default(),
            reconcile_duration: latency_histogram(),
            reconcile_errors: Family::default(),
            webhook_duration: Family::new_with_constructor(latency_histogram),
            query_duration: Family::new_with_constructor(latency_histogram),
        };
        let r = registry.sub_registry_with_prefix("serin");
        r.register(
            "info",
            "Serin build information",
            Info::new(InfoLabels { version: env!("CARGO_PKG_VERSION").into() }),
        );
        r.register(
            "canary_status",
            "Canary state: 0 running, 1 succeeded or idle, 2 failed",
            metrics.canary_status.clone(),
        );
        r.register("canary_weight", "Traffic weight of a workload, percent", metrics.canary_weight.clone());
        r.register("canary_total", "Canaries per namespace", metrics.canary_total.clone());
        r.register(
            "canary_duration_seconds",
            "Duration of whole canary runs",
            metrics.canary_duration.clone(),
        );
        r.register(
            "canary_metric_analysis",
            "Last value of each metric check",
            metrics.metric_analysis.clone(),
        );
        r.register("canary_successes", "Promoted canary runs", metrics.successes.clone());
        r.register("canary_failures", "Rolled-back canary runs", metrics.failures.clone());
        r.register("git_reverts", "Git reverts of failed releases by result", metrics.git_reverts.clone());
        r.register("alerts", "Alerts by delivery result", metrics.alerts.clone());
        r.register("reconcile_duration_seconds", "Time per reconcile", metrics.reconcile_duration.clone());
        r.register(
            "reconcile_errors",
            "Failed reconciles by error category",
            metrics.reconcile_errors.clone(),
        );
        r.register(
            "webhook_duration_seconds",
            "Webhook call latency by type",
            metrics.webhook_duration.clone(),
        );
        r.register(
            "metric_query_duration_seconds",
            "Metric query latency by provider",
            metrics.query_duration.clone(),
        );
        metrics
    }

    /// Records a canary's phase and weights (`target` is the target workload's name).
    pub fn set_canary(
        &self,
        namespace: &str,
        name: &str,
        target: &str,
        phase: CanaryPhase,
        canary_weight: i32,
    ) {
        let status = match phase {
            CanaryPhase::Failed => 2,
            CanaryPhase::Initialized | CanaryPhase::Succeeded | CanaryPhase::Terminated => 1,
            _ => 0,
        };
        let canary = CanaryLabels { name: name.into(), namespace: namespace.into() };
        self.canary_status.get_or_create(&canary).set(status);
        let weight = |workload: String, value: i32| {
            self.canary_weight
                .get_or_create(&WeightLabels { workload, namespace: namespace.into() })
                .set(i64::from(value));
        };
        weight(format!("{target}-primary"), 100 - canary_weight);
        weight(target.to_string(), canary_weight);
    }

    /// Removes every series of a deleted canary, so label sets do not accumulate.
    pub fn forget_canary(&self, namespace: &str, name: &str, target: &str, metrics: &[String]) {
        self.canary_status.remove(&CanaryLabels { name: name.into(), namespace: namespace.into() });
        for workload in [format!("{target}-primary"), target.to_string()] {
            self.canary_weight.remove(&WeightLabels { workload, namespace: namespace.into() });
        }
        for metric in metrics {
            self.metric_analysis.remove(&AnalysisLabels {
                name: name.into(),
                namespace: namespace.into(),
                metric: metric.clone(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::text::encode;

    use super::*;

    #[test]
    fn exports_flagger_style_series_under_the_serin_prefix() {
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        metrics.set_canary("test", "podinfo", "podinfo", CanaryPhase::Progressing, 30);
        metrics
            .metric_analysis
            .get_or_create(&AnalysisLabels {
                name: "podinfo".into(),
                namespace: "test".into(),
                metric: "request-success-rate".into(),
            })
            .set(99.5);
        metrics.git_reverts.get_or_create(&ResultLabels { result: "pushed".into() }).inc();
        metrics.reconcile_duration.observe(0.01);

        let mut text = String::new();
        encode(&mut text, &registry).expect("encodes");
        for line in [
            "serin_info_info{version=\"0.1.0\"} 1",
            "serin_canary_status{name=\"podinfo\",namespace=\"test\"} 0",
            "serin_canary_weight{workload=\"podinfo-primary\",namespace=\"test\"} 70",
            "serin_canary_weight{workload=\"podinfo\",namespace=\"test\"} 30",
            "serin_canary_metric_analysis{name=\"podinfo\",namespace=\"test\",metric=\"request-success-rate\"} 99.5",
            "serin_git_reverts_total{result=\"pushed\"} 1",
            "serin_reconcile_duration_seconds_count 1",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }

        metrics.set_canary("test", "podinfo", "podinfo", CanaryPhase::Failed, 0);
        let mut text = String::new();
        encode(&mut text, &registry).expect("encodes");
        assert!(text.contains("serin_canary_status{name=\"podinfo\",namespace=\"test\"} 2"));

        metrics.forget_canary("test", "podinfo", "podinfo", &["request-success-rate".into()]);
        let mut text = String::new();
        encode(&mut text, &registry).expect("encodes");
        assert!(!text.contains("podinfo"), "series of a deleted canary remain:\n{text}");
    }
}
