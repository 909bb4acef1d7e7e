//! The load tester's Prometheus metrics (prefix `serin_loadtester_`): requests sent, errors and
//! latency per canary, and tasks by type and result.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::loadtester::load::LoadMetrics;
use crate::telemetry::metrics::CanaryLabels;

/// A task request's type and what became of it.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TaskLabels {
    /// `load`, `load-result`, `cmd`, `bash`, `helm`, `kubectl`, `invalid`.
    pub task_type: String,
    /// `started`, `duplicate`, `refused`, `busy`, `succeeded`, `failed`, `invalid`, `not_found`.
    pub result: String,
}

fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Every load tester metric.
#[derive(Clone, Debug)]
pub struct LoadtesterMetrics {
    /// Requests sent by loads, per canary.
    pub requests: Family<CanaryLabels, Counter>,
    /// Requests without a response or with a 5xx, per canary.
    pub errors: Family<CanaryLabels, Counter>,
    /// Request latency, per canary.
    pub latency: Family<CanaryLabels, Histogram, fn() -> Histogram>,
    /// Task requests by type and result.
    pub tasks: Family<TaskLabels, Counter>,
}

impl LoadtesterMetrics {
    /// Creates and registers the metrics.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            requests: Family::default(),
            errors: Family::default(),
            latency: Family::new_with_constructor(latency),
            tasks: Family::default(),
        };
        let r = registry.sub_registry_with_prefix("serin_loadtester");
        r.register("requests", "Requests sent by loads", metrics.requests.clone());
        r.register("errors", "Load requests without a response or with a 5xx", metrics.errors.clone());
        r.register("request_duration_seconds", "Latency of load requests", metrics.latency.clone());
        r.register("tasks", "Task requests by type and result", metrics.tasks.clone());
        metrics
    }

    /// The handles a load of `name.namespace` records into.
    pub fn for_canary(&self, name: &str, namespace: &str) -> LoadMetrics {
        let labels = CanaryLabels { name: name.to_string(), namespace: namespace.to_string() };
        LoadMetrics {
            requests: self.requests.get_or_create(&labels).clone(),
            errors: self.errors.get_or_create(&labels).clone(),
            latency: self.latency.get_or_create(&labels).clone(),
        }
    }

    /// Counts a task request.
    pub fn task(&self, kind: &str, result: &str) {
        self.tasks
            .get_or_create(&TaskLabels { task_type: kind.to_string(), result: result.to_string() })
            .inc();
    }
}
