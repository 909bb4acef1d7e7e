//! The `AlertProvider` custom resource: where alerts go, with Flagger's field names.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::SecretReference;

/// A chat or webhook destination for alerts.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "serin.dev",
    version = "v1alpha1",
    kind = "AlertProvider",
    plural = "alertproviders",
    singular = "alertprovider",
    category = "all",
    namespaced,
    status = "AlertProviderStatus",
    printcolumn(name = "Type", type_ = "string", json_path = ".spec.type")
)]
#[x_kube(
    cel,
    validation = Rule::new("has(self.address) || has(self.secretRef)")
        .message("set address, or secretRef to a Secret with an address key")
        .field_path(".address")
)]
#[serde(rename_all = "camelCase")]
pub struct AlertProviderSpec {
    /// Kind of destination.
    #[serde(rename = "type")]
    pub type_: AlertProviderType,
    /// Channel to post to (default `general`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Bot user name (default `serin`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Webhook URL; the Secret's `address` key overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// HTTP(S) proxy URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
    /// Secret with `address` and optional `token` (sent as a bearer token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretReference>,
}

/// Alert destinations.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AlertProviderType {
    /// Slack incoming webhook or `chat.postMessage`.
    Slack,
    /// Microsoft Teams webhook.
    Msteams,
    /// Discord (Slack-compatible webhook).
    Discord,
    /// Rocket.Chat.
    Rocket,
    /// Google Chat.
    Gchat,
    /// Serin: a generic JSON body POSTed to any URL.
    Webhook,
}

/// Observed state of an AlertProvider.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct AlertProviderStatus {
    /// Conditions of the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
}
