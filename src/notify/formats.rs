//! The JSON body each platform expects, built from a [`Notification`]. Pure, so the exact
//! bodies are unit-tested.

use serde_json::{Value, json};

use super::message::Notification;
use crate::crd::AlertProviderType;
use crate::crd::canary::AlertSeverity;

/// Where a body goes and who posts it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sender {
    /// Channel (Slack, Discord, Rocket.Chat); default `general`.
    pub channel: String,
    /// Bot user name; default `serin`.
    pub username: String,
}

impl Default for Sender {
    fn default() -> Self {
        Self { channel: "general".into(), username: "serin".into() }
    }
}

fn color(note: &Notification) -> &'static str {
    match note.level() {
        AlertSeverity::Error => "danger",
        AlertSeverity::Warn => "warning",
        AlertSeverity::Info | AlertSeverity::Unset => "good",
    }
}

fn hex_color(note: &Notification) -> &'static str {
    match note.level() {
        AlertSeverity::Error => "#d32f2f",
        AlertSeverity::Warn => "#f9a825",
        AlertSeverity::Info | AlertSeverity::Unset => "#2e7d32",
    }
}

/// The body for `kind`.
pub fn body(kind: AlertProviderType, sender: &Sender, note: &Notification) -> Value {
    match kind {
        AlertProviderType::Slack => slack(sender, note),
        AlertProviderType::Discord | AlertProviderType::Rocket => slack_attachments(sender, note),
        AlertProviderType::Msteams => teams(note),
        AlertProviderType::Gchat => gchat(note),
        AlertProviderType::Webhook => generic(note),
    }
}

/// Slack: Block Kit (header, message, fields) with a coloured attachment fallback.
fn slack(sender: &Sender, note: &Notification) -> Value {
    let fields: Vec<Value> =
        note.facts().iter().map(|(k, v)| json!({"type": "mrkdwn", "text": format!("*{k}*\n{v}")})).collect();
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": format!("{}: {}", note.subject(), note.title)}}),
        json!({"type": "section", "text": {"type": "mrkdwn", "text": note.message}}),
    ];
    for chunk in fields.chunks(10) {
        blocks.push(json!({"type": "section", "fields": chunk}));
    }
    json!({
        "channel": sender.channel,
        "username": sender.username,
        "icon_emoji": ":bird:",
        "text": format!("{}: {}", note.subject(), note.message),
        "blocks": blocks,
        "attachments": [{"color": color(note), "fallback": note.message}],
    })
}

/// Discord's Slack-compatible endpoint and Rocket.Chat: Flagger's attachment format.
fn slack_attachments(sender: &Sender, note: &Notification) -> Value {
    let fields: Vec<Value> =
        note.facts().iter().map(|(k, v)| json!({"title": k, "value": v, "short": false})).collect();
    json!({
        "channel": sender.channel,
        "username": sender.username,
        "icon_emoji": ":bird:",
        "attachments": [{
            "color": color(note),
            "author_name": note.subject(),
            "title": note.title,
            "text": note.message,
            "mrkdwn_in": ["text"],
            "fields": fields,
        }],
    })
}

/// Microsoft Teams (Workflows webhook): an Adaptive Card with a fact set.
fn teams(note: &Notification) -> Value {
    let facts: Vec<Value> = note.facts().iter().map(|(k, v)| json!({"title": k, "value": v})).collect();
    let style = match note.level() {
        AlertSeverity::Error => "attention",
        AlertSeverity::Warn => "warning",
        AlertSeverity::Info | AlertSeverity::Unset => "good",
    };
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": [
                    {"type": "TextBlock", "size": "Medium", "weight": "Bolder", "color": style,
                     "text": format!("{}: {}", note.subject(), note.title)},
                    {"type": "TextBlock", "wrap": true, "text": note.message},
                    {"type": "FactSet", "facts": facts},
                ],
            },
        }],
    })
}

/// Google Chat: a card with the facts as decorated text.
fn gchat(note: &Notification) -> Value {
    let widgets: Vec<Value> =
        note.facts().iter().map(|(k, v)| json!({"decoratedText": {"topLabel": k, "text": v}})).collect();
    json!({
        "text": format!("{}: {}", note.subject(), note.message),
        "cardsV2": [{
            "cardId": "serin",
            "card": {
                "header": {"title": format!("{}: {}", note.subject(), note.title), "subtitle": note.message},
                "sections": [{"widgets": widgets}],
            },
        }],
    })
}

/// Serin's generic webhook body: everything as plain JSON for any receiver.
fn generic(note: &Notification) -> Value {
    json!({
        "name": note.name,
        "namespace": note.namespace,
        "severity": match note.level() {
            AlertSeverity::Error => "error",
            AlertSeverity::Warn => "warn",
            AlertSeverity::Info | AlertSeverity::Unset => "info",
        },
        "title": note.title,
        "message": note.message,
        "fields": note.fields,
        "cluster": note.cluster,
        "color": hex_color(note),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn rollback() -> Notification {
        Notification {
            name: "podinfo".into(),
            namespace: "test".into(),
            severity: AlertSeverity::Error,
            title: "Rolled back".into(),
            message: "Rolling back podinfo.test failed checks threshold reached 2".into(),
            fields: BTreeMap::from([
                ("Failed checks".into(), "request-success-rate 80.5 < 99".into()),
                ("Revert commit".into(), "0a1b2c3".into()),
            ]),
            cluster: Some("prod-eu".into()),
        }
    }

    #[test]
    fn slack_body() {
        assert_eq!(
            body(AlertProviderType::Slack, &Sender::default(), &rollback()),
            json!({
                "channel": "general", "username": "serin", "icon_emoji": ":bird:",
                "text": "podinfo.test: Rolling back podinfo.test failed checks threshold reached 2",
                "blocks": [
                    {"type": "header", "text": {"type": "plain_text", "text": "podinfo.test: Rolled back"}},
                    {"type": "section", "text": {"type": "mrkdwn", "text": "Rolling back podinfo.test failed checks threshold reached 2"}},
                    {"type": "section", "fields": [
                        {"type": "mrkdwn", "text": "*Failed checks*\nrequest-success-rate 80.5 < 99"},
                        {"type": "mrkdwn", "text": "*Revert commit*\n0a1b2c3"},
                        {"type": "mrkdwn", "text": "*Cluster*\nprod-eu"}
                    ]}
                ],
                "attachments": [{"color": "danger", "fallback": "Rolling back podinfo.test failed checks threshold reached 2"}]
            })
        );
    }

    #[test]
    fn discord_and_rocket_bodies_use_attachments() {
        let sender = Sender { channel: "alerts".into(), username: "bot".into() };
        let want = json!({
            "channel": "alerts", "username": "bot", "icon_emoji": ":bird:",
            "attachments": [{
                "color": "danger", "author_name": "podinfo.test", "title": "Rolled back",
                "text": "Rolling back podinfo.test failed checks threshold reached 2", "mrkdwn_in": ["text"],
                "fields": [
                    {"title": "Failed checks", "value": "request-success-rate 80.5 < 99", "short": false},
                    {"title": "Revert commit", "value": "0a1b2c3", "short": false},
                    {"title": "Cluster", "value": "prod-eu", "short": false}
                ]
            }]
        });
        assert_eq!(body(AlertProviderType::Discord, &sender, &rollback()), want);
        assert_eq!(body(AlertProviderType::Rocket, &sender, &rollback()), want);
    }

    #[test]
    fn teams_gchat_and_generic_bodies() {
        let teams = body(AlertProviderType::Msteams, &Sender::default(), &rollback());
        let card = &teams["attachments"][0]["content"];
        assert_eq!(card["type"], "AdaptiveCard");
        assert_eq!(card["body"][0]["text"], "podinfo.test: Rolled back");
        assert_eq!(card["body"][0]["color"], "attention");
        assert_eq!(card["body"][2]["facts"][1], json!({"title": "Revert commit", "value": "0a1b2c3"}));

        let chat = body(AlertProviderType::Gchat, &Sender::default(), &rollback());
        assert_eq!(chat["cardsV2"][0]["card"]["header"]["title"], "podinfo.test: Rolled back");
        assert_eq!(
            chat["cardsV2"][0]["card"]["sections"][0]["widgets"][2],
            json!({"decoratedText": {"topLabel": "Cluster", "text": "prod-eu"}})
        );

        assert_eq!(
            body(AlertProviderType::Webhook, &Sender::default(), &rollback()),
            json!({
                "name": "podinfo", "namespace": "test", "severity": "error", "title": "Rolled back",
                "message": "Rolling back podinfo.test failed checks threshold reached 2",
                "fields": {"Failed checks": "request-success-rate 80.5 < 99", "Revert commit": "0a1b2c3"},
                "cluster": "prod-eu", "color": "#d32f2f"
            })
        );
    }
}
