//! The `Notify` effect: turns the rollout core's notification into a message and hands it to
//! every AlertProvider of the canary whose severity filter lets it through. Delivery is
//! asynchronous (the dispatcher); nothing here waits on a chat service.

use std::collections::BTreeMap;

use super::context::{AlertProviderKey, Context};
use super::secrets::secret_strings;
use crate::crd::Canary;
use crate::crd::canary::AlertSeverity;
use crate::crd::status::GitOpsStatus;
use crate::notify::Destination;
use crate::notify::formats::Sender;
use crate::notify::message::Notification;
use crate::rollout::NotificationKind;

/// Headline of each kind of notification.
pub fn title(kind: NotificationKind) -> &'static str {
    match kind {
        NotificationKind::Initialized => "Initialized",
        NotificationKind::NewRevision => "New revision",
        NotificationKind::WaitingApproval => "Waiting for approval",
        NotificationKind::Rollback => "Rolled back",
        NotificationKind::Promoted => "Promoted",
        NotificationKind::PromotionFailed => "Promotion failed",
        NotificationKind::Quarantined => "Quarantined revision refused",
        NotificationKind::BackToStable => "Back to the promoted revision",
        NotificationKind::Stalled => "Stalled",
    }
}

/// The Git revert's result as alert fields: commit, pull request, or what a human must do.
pub fn revert_fields(gitops: &GitOpsStatus) -> BTreeMap<String, String> {
    let mut fields = BTreeMap::new();
    if let Some(sha) = &gitops.revert_commit {
        fields.insert("Revert commit".into(), sha.clone());
    }
    if let Some(url) = &gitops.pull_request_url {
        fields.insert("Pull request".into(), url.clone());
    }
    if let Some(message) = &gitops.message {
        fields.insert("Git".into(), format!("{:?}: {message}", gitops.state));
    }
    fields
}

/// Where a canary's alerts go: its `analysis.alerts` (provider namespace defaulting to the
/// canary's), or, when it has none, the controller's `--default-alert-provider` with severity
/// `info` (everything, as Flagger's global notifier).
pub fn targets(
    canary: &Canary,
    default: Option<&AlertProviderKey>,
) -> Vec<(Option<AlertSeverity>, AlertProviderKey)> {
    let namespace = canary.metadata.namespace.as_deref().unwrap_or_default();
    let own: Vec<_> = canary
        .spec
        .analysis
        .alerts
        .iter()
        .flatten()
        .map(|alert| {
            let provider = AlertProviderKey {
                namespace: alert.provider_ref.namespace.clone().unwrap_or_else(|| namespace.to_string()),
                name: alert.provider_ref.name.clone(),
            };
            (alert.severity, provider)
        })
        .collect();
    match default {
        Some(default) if own.is_empty() => vec![(Some(AlertSeverity::Info), default.clone())],
        _ => own,
    }
}

/// Sends one notification to the canary's alert providers.
pub fn send(ctx: &Context, canary: &Canary, note: Notification) {
    for (severity, provider) in targets(canary, ctx.settings.default_alert_provider.as_ref()) {
        if !note.passes(severity) {
            continue;
        }
        let (provider_ns, provider_name) = (provider.namespace.as_str(), &provider.name);
        let key = format!("{provider_ns}/{provider_name}");
        let Some(provider) = ctx.stores.alert_provider(provider_ns, provider_name) else {
            tracing::warn!(provider = %key, "alert provider not found; alert not sent");
            continue;
        };
        let secret = match &provider.spec.secret_ref {
            Some(secret) => match secret_strings(&ctx.stores, provider_ns, &secret.name) {
                Ok(data) => data,
                Err(e) => {
                    tracing::warn!(provider = %key, error = %e, "alert provider secret missing; alert not sent");
                    continue;
                }
            },
            None => BTreeMap::new(),
        };
        let Some(address) = secret.get("address").cloned().or_else(|| provider.spec.address.clone()) else {
            tracing::warn!(provider = %key, "alert provider has no address; alert not sent");
            continue;
        };
        let defaults = Sender::default();
        let destination = Destination {
            kind: provider.spec.type_,
            address,
            token: secret.get("token").cloned(),
            proxy: provider.spec.proxy.clone(),
            sender: Sender {
                channel: provider.spec.channel.clone().unwrap_or(defaults.channel),
                username: provider.spec.username.clone().unwrap_or(defaults.username),
            },
        };
        match ctx.notifiers.notifier(destination) {
            Ok(notifier) => ctx.alerts.send(&key, notifier, note.clone()),
            Err(e) => tracing::warn!(provider = %key, error = %e, "alert provider unusable; alert not sent"),
        }
    }
}

/// The message for a `Notify` effect.
pub fn notification(
    ctx: &Context,
    canary: &Canary,
    severity: AlertSeverity,
    kind: NotificationKind,
    message: &str,
    mut fields: BTreeMap<String, String>,
    gitops: Option<&GitOpsStatus>,
) -> Notification {
    if matches!(kind, NotificationKind::Rollback)
        && let Some(gitops) = gitops
    {
        fields.extend(revert_fields(gitops));
    }
    fields
        .entry("Target".into())
        .or_insert_with(|| format!("{}/{}", canary.spec.target_ref.kind_name(), canary.spec.target_ref.name));
    Notification {
        name: canary.metadata.name.clone().unwrap_or_default(),
        namespace: canary.metadata.namespace.clone().unwrap_or_default(),
        severity,
        title: title(kind).to_string(),
        message: message.to_string(),
        fields,
        cluster: ctx.settings.cluster_name.clone(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn canary(alerts: serde_json::Value) -> Canary {
        serde_json::from_value(json!({
            "apiVersion": "serin.dev/v1alpha1", "kind": "Canary",
            "metadata": {"name": "podinfo", "namespace": "test"},
            "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                "service": {"port": 80},
                "analysis": {"interval": "1m", "threshold": 2, "iterations": 2, "alerts": alerts}}
        }))
        .expect("canary")
    }

    fn key(namespace: &str, name: &str) -> AlertProviderKey {
        AlertProviderKey { namespace: namespace.into(), name: name.into() }
    }

    #[test]
    fn the_default_provider_gets_everything_of_canaries_without_alerts() {
        let default = key("serin-system", "ops-slack");
        assert_eq!(
            targets(&canary(json!([])), Some(&default)),
            vec![(Some(AlertSeverity::Info), default.clone())]
        );
        assert_eq!(targets(&canary(json!([])), None), vec![]);
    }

    #[test]
    fn a_canary_with_alerts_uses_its_own_only() {
        let default = key("serin-system", "ops-slack");
        let own = canary(json!([
            {"name": "team", "severity": "error", "providerRef": {"name": "team-slack"}},
            {"name": "central", "providerRef": {"name": "teams", "namespace": "ops"}},
        ]));
        assert_eq!(
            targets(&own, Some(&default)),
            vec![(Some(AlertSeverity::Error), key("test", "team-slack")), (None, key("ops", "teams"))]
        );
    }

    #[test]
    fn provider_keys_parse_as_namespace_slash_name() {
        assert_eq!("serin-system/slack".parse(), Ok(key("serin-system", "slack")));
        for bad in ["slack", "/slack", "ns/", "a/b/c"] {
            assert!(bad.parse::<AlertProviderKey>().is_err(), "{bad}");
        }
    }
}
