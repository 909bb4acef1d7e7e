//! The JSON body of every webhook call: Flagger's `CanaryWebhookPayload`, field for field, so an
//! existing flagger-loadtester or any receiver written for Flagger keeps working.
//!
//! Shape: `{"name","namespace","phase","checksum","metadata"}` in that order; `metadata` is
//! left out when empty (Go's `omitempty`), its keys sorted (Go marshals maps sorted).
//! Event hooks carry `eventMessage`, `eventType` and `timestamp` (milliseconds since the epoch,
//! as a string) in `metadata`; the hook's own metadata is added without overriding those keys.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::crd::CanaryPhase;
use crate::crd::canary::Webhook;

/// Metadata key of an event hook's message.
pub const EVENT_MESSAGE: &str = "eventMessage";
/// Metadata key of an event hook's event type (`Normal` or `Warning`).
pub const EVENT_TYPE: &str = "eventType";
/// Metadata key of an event hook's time, milliseconds since the Unix epoch.
pub const EVENT_TIMESTAMP: &str = "timestamp";

/// The body POSTed to a webhook (Flagger's `CanaryWebhookPayload`).
///
/// Decoding is lenient (missing fields default to empty) because the load tester reads it from
/// callers that are not always Serin or Flagger.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct CanaryWebhookPayload {
    /// Canary name.
    #[serde(default)]
    pub name: String,
    /// Canary namespace.
    #[serde(default)]
    pub namespace: String,
    /// Canary phase (Flagger's strings, e.g. `Progressing`).
    #[serde(default)]
    pub phase: String,
    /// Identifies the revision under test.
    #[serde(default)]
    pub checksum: String,
    /// The hook's metadata (plus event fields for event hooks).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

/// Which canary and revision a hook call is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CanaryRef<'a> {
    /// Canary name.
    pub name: &'a str,
    /// Canary namespace.
    pub namespace: &'a str,
    /// Revision checksum (`status.lastAppliedSpec` plus tracked configs).
    pub checksum: &'a str,
}

/// Kind of a Kubernetes Event forwarded to event hooks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// `Normal`.
    Normal,
    /// `Warning`.
    Warning,
}

impl EventType {
    /// The Kubernetes spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

impl CanaryWebhookPayload {
    /// The payload of a non-event hook: the hook's metadata as is.
    pub fn for_hook(canary: &CanaryRef<'_>, phase: CanaryPhase, hook: &Webhook) -> Self {
        Self {
            name: canary.name.to_string(),
            namespace: canary.namespace.to_string(),
            phase: phase.as_str().to_string(),
            checksum: canary.checksum.to_string(),
            metadata: hook.metadata.clone().unwrap_or_default(),
        }
    }

    /// The payload of an event hook: event message, type and time in `metadata`, then the
    /// hook's own metadata for keys not already set.
    pub fn for_event(
        canary: &CanaryRef<'_>,
        phase: CanaryPhase,
        hook_metadata: Option<&BTreeMap<String, String>>,
        message: &str,
        event_type: EventType,
        at: SystemTime,
    ) -> Self {
        let millis = at.duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
        let mut metadata = BTreeMap::from([
            (EVENT_MESSAGE.to_string(), message.to_string()),
            (EVENT_TYPE.to_string(), event_type.as_str().to_string()),
            (EVENT_TIMESTAMP.to_string(), millis.to_string()),
        ]);
        for (key, value) in hook_metadata.into_iter().flatten() {
            metadata.entry(key.clone()).or_insert_with(|| value.clone());
        }
        Self {
            name: canary.name.to_string(),
            namespace: canary.namespace.to_string(),
            phase: phase.as_str().to_string(),
            checksum: canary.checksum.to_string(),
            metadata,
        }
    }

    /// The gate key Flagger's load tester uses: `<name>.<namespace>`.
    pub fn gate_key(&self) -> String {
        format!("{}.{}", self.name, self.namespace)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const PODINFO: CanaryRef<'static> =
        CanaryRef { name: "podinfo", namespace: "test", checksum: "85d557f47b" };

    fn hook(metadata: &[(&str, &str)]) -> Webhook {
        serde_json::from_value(serde_json::json!({
            "name": "load-test",
            "url": "http://flagger-loadtester.test/",
            "metadata": metadata.iter().map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        }))
        .expect("webhook")
    }

    #[test]
    fn hook_payload_is_flaggers_json_byte_for_byte() {
        // The fixture from FLAGGER.md §3.1.
        let payload = CanaryWebhookPayload::for_hook(
            &PODINFO,
            CanaryPhase::Progressing,
            &hook(&[("<user key>", "<value>")]),
        );
        assert_eq!(
            serde_json::to_string(&payload).expect("json"),
            r#"{"name":"podinfo","namespace":"test","phase":"Progressing","checksum":"85d557f47b","metadata":{"<user key>":"<value>"}}"#
        );
    }

    #[test]
    fn metadata_keys_are_sorted_and_empty_metadata_is_omitted() {
        let payload = CanaryWebhookPayload::for_hook(
            &PODINFO,
            CanaryPhase::Progressing,
            &hook(&[("type", "cmd"), ("cmd", "hey -z 1m -q 10 -c 2 http://podinfo-canary.test:9898/")]),
        );
        assert_eq!(
            serde_json::to_string(&payload).expect("json"),
            r#"{"name":"podinfo","namespace":"test","phase":"Progressing","checksum":"85d557f47b","metadata":{"cmd":"hey -z 1m -q 10 -c 2 http://podinfo-canary.test:9898/","type":"cmd"}}"#
        );
        let bare = CanaryWebhookPayload::for_hook(&PODINFO, CanaryPhase::Succeeded, &hook(&[]));
        assert_eq!(
            serde_json::to_string(&bare).expect("json"),
            r#"{"name":"podinfo","namespace":"test","phase":"Succeeded","checksum":"85d557f47b"}"#
        );
        let none: Webhook =
            serde_json::from_value(serde_json::json!({"name": "x", "url": "http://x/"})).expect("webhook");
        assert!(CanaryWebhookPayload::for_hook(&PODINFO, CanaryPhase::Waiting, &none).metadata.is_empty());
    }

    #[test]
    fn event_payload_adds_message_type_and_millisecond_timestamp() {
        let at = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let user = BTreeMap::from([
            ("eventType".to_string(), "user value must not win".to_string()),
            ("team".to_string(), "payments".to_string()),
        ]);
        let payload = CanaryWebhookPayload::for_event(
            &PODINFO,
            CanaryPhase::Progressing,
            Some(&user),
            "Advance podinfo.test canary weight 10",
            EventType::Normal,
            at,
        );
        assert_eq!(
            serde_json::to_string(&payload).expect("json"),
            r#"{"name":"podinfo","namespace":"test","phase":"Progressing","checksum":"85d557f47b","metadata":{"eventMessage":"Advance podinfo.test canary weight 10","eventType":"Normal","team":"payments","timestamp":"1700000000123"}}"#
        );
    }

    #[test]
    fn decodes_leniently_and_names_the_gate() {
        let payload: CanaryWebhookPayload =
            serde_json::from_str(r#"{"name":"podinfo","namespace":"test"}"#).expect("decodes");
        assert_eq!(payload.gate_key(), "podinfo.test");
        assert!(payload.metadata.is_empty() && payload.phase.is_empty() && payload.checksum.is_empty());
    }
}
