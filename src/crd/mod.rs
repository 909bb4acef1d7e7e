//! API types of the `serin.dev/v1alpha1` group: `Canary`, `MetricTemplate`, `AlertProvider`,
//! their status types and their validation. The CRD YAML in `crds/` is generated from these
//! types (`serin crds`), so the Rust types are the single source of truth.

pub mod alert_provider;
pub mod annotations;
pub mod canary;
pub mod common;
pub mod duration;
pub mod metric_template;
pub mod reference;
pub mod schema;
pub mod status;
pub mod validation;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

pub use alert_provider::{AlertProvider, AlertProviderSpec, AlertProviderType};
pub use canary::{Canary, CanarySpec, Provider, Strategy};
pub use metric_template::{MetricProviderType, MetricTemplate, MetricTemplateSpec};
pub use status::{CanaryPhase, CanaryStatus};

/// API group of every Serin resource.
pub const GROUP: &str = "serin.dev";
/// API version of every Serin resource.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` string of every Serin resource.
pub const API_VERSION: &str = "serin.dev/v1alpha1";
/// `apiVersion` of Flagger's resources, recognised to give migrating users a clear message.
pub const FLAGGER_API_VERSION: &str = "flagger.app/v1beta1";

/// Renders one CRD as YAML, the form checked in under `crds/`.
pub fn render_crd_yaml(crd: &CustomResourceDefinition) -> Result<String, serde_norway::Error> {
    serde_norway::to_string(crd)
}

/// The three CRDs, in the order `serin crds` prints them.
pub fn all_crds() -> Vec<CustomResourceDefinition> {
    vec![Canary::crd(), MetricTemplate::crd(), AlertProvider::crd()]
}

#[cfg(test)]
mod cel_tests;
