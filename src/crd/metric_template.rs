//! The `MetricTemplate` custom resource: a reusable query and the backend that runs it, with
//! Flagger's field names so existing templates apply unchanged.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::SecretReference;

/// A query template and the metrics backend it runs against.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "serin.dev",
    version = "v1alpha1",
    kind = "MetricTemplate",
    plural = "metrictemplates",
    singular = "metrictemplate",
    category = "all",
    namespaced,
    status = "MetricTemplateStatus",
    printcolumn(name = "Provider", type_ = "string", json_path = ".spec.provider.type")
)]
#[serde(rename_all = "camelCase")]
pub struct MetricTemplateSpec {
    /// The metrics backend.
    pub provider: MetricProviderSpec,
    /// The query, with `{{ name }}`, `{{ namespace }}`, `{{ target }}`, `{{ service }}`,
    /// `{{ ingress }}`, `{{ route }}`, `{{ interval }}`, `{{ variables.KEY }}` and
    /// `{{ primary }}` placeholders.
    #[schemars(length(min = 1))]
    pub query: String,
    /// Serin: a query with the same placeholders that counts the canary's requests in the
    /// window, run against the same backend; a check with `minRequests` that uses this template
    /// compares its value with `minRequests` (empty or NaN counts as 0). Without it such a
    /// check is an error, never a silent pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_count_query: Option<String>,
}

/// Metrics backends, with Flagger's type strings. Serin runs `prometheus` (and any
/// Prometheus-compatible API); the others parse so migrated manifests are understood, and
/// `validate` reports them as unsupported.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MetricProviderType {
    /// Prometheus HTTP API (also Thanos, Mimir, Cortex, VictoriaMetrics).
    Prometheus,
    /// InfluxDB (not supported by Serin).
    Influxdb,
    /// Datadog (not supported by Serin).
    Datadog,
    /// Kubernetes external metrics API (not supported by Serin).
    Externalmetrics,
    /// Google Cloud Monitoring (not supported by Serin).
    Stackdriver,
    /// AWS CloudWatch (not supported by Serin).
    Cloudwatch,
    /// New Relic (not supported by Serin).
    Newrelic,
    /// Graphite (not supported by Serin).
    Graphite,
    /// Dynatrace (not supported by Serin).
    Dynatrace,
    /// Keptn (not supported by Serin).
    Keptn,
    /// Splunk (not supported by Serin).
    Splunk,
}

impl MetricProviderType {
    /// Whether Serin can run queries against this backend.
    pub fn is_supported(self) -> bool {
        self == MetricProviderType::Prometheus
    }

    /// The type string as written in a manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricProviderType::Prometheus => "prometheus",
            MetricProviderType::Influxdb => "influxdb",
            MetricProviderType::Datadog => "datadog",
            MetricProviderType::Externalmetrics => "externalmetrics",
            MetricProviderType::Stackdriver => "stackdriver",
            MetricProviderType::Cloudwatch => "cloudwatch",
            MetricProviderType::Newrelic => "newrelic",
            MetricProviderType::Graphite => "graphite",
            MetricProviderType::Dynatrace => "dynatrace",
            MetricProviderType::Keptn => "keptn",
            MetricProviderType::Splunk => "splunk",
        }
    }
}

/// The backend a MetricTemplate's query runs against.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricProviderSpec {
    /// Backend type (default `prometheus`).
    #[serde(rename = "type")]
    pub type_: MetricProviderType,
    /// API address; defaults to the controller's `--metrics-server`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Extra HTTP headers, e.g. `X-Scope-OrgID` for Mimir (Go `http.Header` shape).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, Vec<String>>>,
    /// Secret with credentials: `token` (bearer) or `username` and `password`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretReference>,
    /// Region (CloudWatch; accepted for compatibility).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Skip TLS certificate verification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_verify: Option<bool>,
}

/// Observed state of a MetricTemplate.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct MetricTemplateStatus {
    /// Conditions of the template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
}
