//! Calling one webhook: the [`WebhookCaller`] seam the reconciler depends on, and
//! [`HttpCaller`], its reqwest implementation (rustls with aws-lc-rs).
//!
//! Behaviour: POST the payload as JSON with the hook's `headers` and its secret headers, each
//! attempt bounded by the hook's `timeout` (default 10 s, event hooks 5 s as in Flagger);
//! connection errors, timeouts, 429 and 5xx except 501 are retried `retries` times with
//! exponential backoff; any 2xx is success (Flagger's `<= 202` is a bug). A failure keeps the
//! status code and the first [`BODY_LIMIT`] bytes of the response body for the Event.
//! Secret header values never reach logs, errors or Events: they are only put on the request,
//! and any echo of them in a response body or error text is replaced by `[redacted]`.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use thiserror::Error;

use crate::crd::canary::{Webhook, WebhookType};
use crate::crd::duration::parse_duration;
use crate::telemetry::metrics::{CategoryLabels, Metrics};
use crate::webhook::payload::CanaryWebhookPayload;

/// Per-attempt timeout when a hook sets none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Per-attempt timeout of event hooks that set none (Flagger's value).
pub const DEFAULT_EVENT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes of a failed response's body kept for the Event.
pub const BODY_LIMIT: usize = 512;
/// Highest `retries` honoured (the CRD allows 10).
pub const MAX_RETRIES: u32 = 10;

const REDACTED: &str = "[redacted]";

/// Header values read from the hook's `secretRef` Secret (header name → value). Resolving the
/// Secret is the caller's job. `Debug` shows the names only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretHeaders(BTreeMap<String, String>);

impl SecretHeaders {
    /// Wraps resolved header values.
    pub fn new(values: BTreeMap<String, String>) -> Self {
        Self(values)
    }

    /// The header names (safe to log).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// Replaces every secret value found in `text` by `[redacted]`.
    pub fn redact(&self, text: &str) -> String {
        let mut text = text.to_string();
        for value in self.0.values().filter(|v| !v.is_empty()) {
            if text.contains(value.as_str()) {
                text = text.replace(value.as_str(), REDACTED);
            }
        }
        text
    }
}

impl fmt::Debug for SecretHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.0.keys().map(|k| (k, REDACTED))).finish()
    }
}

/// One resolved webhook call: where, how, and what to send.
#[derive(Clone, Debug, PartialEq)]
pub struct HookCall {
    /// The hook's name (for logs and Events).
    pub name: String,
    /// The effective hook type.
    pub kind: WebhookType,
    /// Where to POST.
    pub url: String,
    /// Bound of each attempt.
    pub timeout: Duration,
    /// Attempts after the first one.
    pub retries: u32,
    /// Plain extra headers.
    pub headers: BTreeMap<String, String>,
    /// Headers from the Secret; never logged.
    pub secret_headers: SecretHeaders,
    /// Skip TLS certificate and host name verification.
    pub disable_tls: bool,
    /// Send no alert when this hook fails.
    pub mute_alert: bool,
    /// The body.
    pub payload: CanaryWebhookPayload,
}

impl HookCall {
    /// Builds a call from the Canary's webhook, the payload and the resolved secret headers.
    pub fn from_webhook(
        hook: &Webhook,
        payload: CanaryWebhookPayload,
        secret_headers: SecretHeaders,
    ) -> Result<Self, HookError> {
        let kind = hook.type_.unwrap_or(WebhookType::Unset).effective();
        let timeout = match hook.timeout.as_deref() {
            Some(text) => parse_duration(text)
                .map_err(|err| HookError::Invalid(format!("timeout: {err}")))?
                .max(Duration::from_millis(1)),
            None if kind == WebhookType::Event => DEFAULT_EVENT_TIMEOUT,
            None => DEFAULT_TIMEOUT,
        };
        let retries = u32::try_from(hook.retries.unwrap_or(0)).unwrap_or(0).min(MAX_RETRIES);
        Ok(Self {
            name: hook.name.clone(),
            kind,
            url: hook.url.clone(),
            timeout,
            retries,
            headers: hook.headers.clone().unwrap_or_default(),
            secret_headers,
            disable_tls: hook.disable_tls.unwrap_or(false),
            mute_alert: hook.mute_alert.unwrap_or(false),
            payload,
        })
    }
}

/// A response, 2xx or not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookResponse {
    /// HTTP status code.
    pub status: u16,
    /// The first [`BODY_LIMIT`] bytes of the body (lossy UTF-8, secrets redacted).
    pub body: String,
}

/// Why a webhook call did not succeed. Texts never contain secret header values.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum HookError {
    /// The hook cannot be called as written (URL, header, timeout).
    #[error("invalid webhook: {0}")]
    Invalid(String),
    /// The receiver answered with a non-2xx status.
    #[error("HTTP {status}: {body}")]
    Status {
        /// Status code.
        status: u16,
        /// Truncated body.
        body: String,
    },
    /// No answer within the hook's timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The receiver could not be reached.
    #[error("connection failed: {0}")]
    Connect(String),
    /// Any other transport failure.
    #[error("request failed: {0}")]
    Request(String),
    /// The bounded time for all hooks of this kind ran out first.
    #[error("not answered within the {0:?} allowed for all hooks of this kind")]
    BudgetExceeded(Duration),
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Client(String),
}

/// What happened to one call, over all its attempts.
#[derive(Clone, Debug, PartialEq)]
pub struct CallReport {
    /// Attempts made (0 when the call could not be made at all).
    pub attempts: u32,
    /// Time spent, including backoff.
    pub elapsed: Duration,
    /// The 2xx response, or why there was none.
    pub result: Result<HookResponse, HookError>,
}

impl CallReport {
    /// Whether the call got a 2xx answer.
    pub fn succeeded(&self) -> bool {
        self.result.is_ok()
    }

    /// The status code of the last answer, if any.
    pub fn status(&self) -> Option<u16> {
        match &self.result {
            Ok(response) => Some(response.status),
            Err(HookError::Status { status, .. }) => Some(*status),
            Err(_) => None,
        }
    }
}

/// Calls a webhook. The reconciler holds an `Arc<dyn WebhookCaller>`, so tests use fakes.
#[async_trait]
pub trait WebhookCaller: Send + Sync {
    /// Makes the call with its retries and returns what happened; never panics.
    async fn call(&self, call: &HookCall) -> CallReport;
}

/// Delay before retry `n` (1-based): `base * 2^(n-1)`, at most `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// First delay.
    pub base: Duration,
    /// Largest delay.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { base: Duration::from_millis(500), max: Duration::from_secs(8) }
    }
}

impl Backoff {
    /// The delay before retry `retry` (1 for the first retry).
    pub fn delay(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.saturating_sub(1).min(20));
        self.base.saturating_mul(factor).min(self.max)
    }
}

type DurationFamily = Family<CategoryLabels, Histogram, fn() -> Histogram>;

/// The HTTP implementation of [`WebhookCaller`].
#[derive(Clone, Debug)]
pub struct HttpCaller {
    verified: reqwest::Client,
    unverified: reqwest::Client,
    backoff: Backoff,
    durations: Option<DurationFamily>,
}

impl HttpCaller {
    /// Builds the two clients (verifying TLS, and `disableTLS`).
    pub fn new() -> Result<Self, HookError> {
        let build = |insecure: bool| {
            reqwest::Client::builder()
                .tls_danger_accept_invalid_certs(insecure)
                .tls_danger_accept_invalid_hostnames(insecure)
                .user_agent(concat!("serin/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|err| HookError::Client(error_chain(&err)))
        };
        Ok(Self {
            verified: build(false)?,
            unverified: build(true)?,
            backoff: Backoff::default(),
            durations: None,
        })
    }

    /// Uses another retry backoff (tests use milliseconds).
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Records every attempt's latency in `serin_webhook_duration_seconds{category=<type>}`.
    pub fn with_metrics(mut self, metrics: &Metrics) -> Self {
        self.durations = Some(metrics.webhook_duration.clone());
        self
    }

    fn headers(call: &HookCall) -> Result<HeaderMap, HookError> {
        let mut map = HeaderMap::new();
        map.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (name, value) in &call.headers {
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| HookError::Invalid(format!("header name {name:?}")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| HookError::Invalid(format!("value of header {name:?}")))?;
            map.insert(header, value);
        }
        for (name, value) in &call.secret_headers.0 {
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| HookError::Invalid(format!("secret header name {name:?}")))?;
            let mut value = HeaderValue::from_str(value)
                .map_err(|_| HookError::Invalid(format!("value of secret header {name:?}")))?;
            value.set_sensitive(true);
            map.insert(header, value);
        }
        Ok(map)
    }

    async fn attempt(
        &self,
        call: &HookCall,
        url: &reqwest::Url,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<HookResponse, HookError> {
        let client = if call.disable_tls { &self.unverified } else { &self.verified };
        let response = client
            .post(url.clone())
            .headers(headers.clone())
            .timeout(call.timeout)
            .body(body.to_vec())
            .send()
            .await
            .map_err(|err| transport_error(&err, call))?;
        let status = response.status().as_u16();
        let body = read_prefix(response).await;
        let body = call.secret_headers.redact(&body);
        if (200..300).contains(&status) {
            Ok(HookResponse { status, body })
        } else {
            Err(HookError::Status { status, body })
        }
    }
}

/// Reads at most [`BODY_LIMIT`] bytes of the body, cut at a character boundary.
async fn read_prefix(mut response: reqwest::Response) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < BODY_LIMIT {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    truncate_utf8(&String::from_utf8_lossy(&bytes), BODY_LIMIT)
}

/// `text` cut to at most `limit` bytes at a character boundary, with `…` when cut.
pub fn truncate_utf8(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_string();
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut parts = Vec::new();
    let mut source = err.source();
    while let Some(cause) = source {
        parts.push(cause.to_string());
        source = cause.source();
    }
    if parts.is_empty() { "unknown error".to_string() } else { parts.join(": ") }
}

fn transport_error(err: &reqwest::Error, call: &HookCall) -> HookError {
    // reqwest's own Display names the URL; the causes below it do not.
    let text = call.secret_headers.redact(&error_chain(err));
    if err.is_timeout() {
        HookError::Timeout(call.timeout)
    } else if err.is_connect() {
        HookError::Connect(text)
    } else {
        HookError::Request(text)
    }
}

fn retryable(err: &HookError) -> bool {
    match err {
        HookError::Status { status, .. } => *status == 429 || (*status >= 500 && *status != 501),
        HookError::Timeout(_) | HookError::Connect(_) | HookError::Request(_) => true,
        HookError::Invalid(_) | HookError::BudgetExceeded(_) | HookError::Client(_) => false,
    }
}

#[async_trait]
impl WebhookCaller for HttpCaller {
    async fn call(&self, call: &HookCall) -> CallReport {
        let started = Instant::now();
        let prepared = reqwest::Url::parse(&call.url)
            .map_err(|err| HookError::Invalid(format!("url {:?}: {err}", call.url)))
            .and_then(|url| Ok((url, Self::headers(call)?)))
            .and_then(|(url, headers)| {
                let body = serde_json::to_vec(&call.payload)
                    .map_err(|err| HookError::Invalid(format!("payload: {err}")))?;
                Ok((url, headers, body))
            });
        let (url, headers, body) = match prepared {
            Ok(parts) => parts,
            Err(err) => return CallReport { attempts: 0, elapsed: started.elapsed(), result: Err(err) },
        };
        let kind = call.kind.as_str();
        // Logged without user info and query, which may carry tokens.
        let port = url.port().map(|port| format!(":{port}")).unwrap_or_default();
        let shown = format!("{}://{}{port}{}", url.scheme(), url.host_str().unwrap_or(""), url.path());
        let mut attempts = 0;
        loop {
            attempts += 1;
            let attempt_started = Instant::now();
            let result = self.attempt(call, &url, &headers, &body).await;
            if let Some(durations) = &self.durations {
                durations
                    .get_or_create(&CategoryLabels { category: kind.to_string() })
                    .observe(attempt_started.elapsed().as_secs_f64());
            }
            match &result {
                Ok(response) => {
                    tracing::debug!(hook = %call.name, kind, url = %shown, attempts, status = response.status, "webhook succeeded");
                }
                Err(err) => {
                    tracing::debug!(hook = %call.name, kind, url = %shown, attempts, error = %err, "webhook attempt failed");
                }
            }
            match result {
                Err(err) if retryable(&err) && attempts <= call.retries => {
                    tokio::time::sleep(self.backoff.delay(attempts)).await;
                }
                result => return CallReport { attempts, elapsed: started.elapsed(), result },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let backoff = Backoff { base: Duration::from_millis(100), max: Duration::from_millis(350) };
        let delays: Vec<_> = (1..=4).map(|n| backoff.delay(n).as_millis()).collect();
        assert_eq!(delays, [100, 200, 350, 350]);
        assert_eq!(Backoff::default().delay(40), Duration::from_secs(8));
    }

    #[test]
    fn secret_headers_debug_and_redaction_hide_values() {
        let secrets = SecretHeaders::new(BTreeMap::from([("Authorization".into(), "Bearer s3cr3t".into())]));
        assert_eq!(format!("{secrets:?}"), r#"{"Authorization": "[redacted]"}"#);
        assert_eq!(secrets.redact("you sent Bearer s3cr3t"), "you sent [redacted]");
        assert_eq!(secrets.names().collect::<Vec<_>>(), ["Authorization"]);
    }

    #[test]
    fn truncates_at_character_boundaries() {
        assert_eq!(truncate_utf8("abc", 3), "abc");
        assert_eq!(truncate_utf8("abcd", 3), "abc…");
        assert_eq!(truncate_utf8("aé", 2), "a…");
    }

    #[test]
    fn call_from_webhook_applies_flagger_defaults() {
        let hook: Webhook = serde_json::from_value(serde_json::json!({
            "name": "gate", "type": "confirm-rollout", "url": "http://x/", "retries": 3, "timeout": "2s",
        }))
        .expect("hook");
        let call = HookCall::from_webhook(&hook, CanaryWebhookPayload::default(), SecretHeaders::default())
            .expect("call");
        assert_eq!(
            (call.kind, call.timeout, call.retries),
            (WebhookType::ConfirmRollout, Duration::from_secs(2), 3)
        );

        let defaults: Webhook =
            serde_json::from_value(serde_json::json!({"name": "t", "type": "", "url": "http://x/"}))
                .expect("hook");
        let call =
            HookCall::from_webhook(&defaults, CanaryWebhookPayload::default(), SecretHeaders::default())
                .expect("call");
        assert_eq!((call.kind, call.timeout, call.retries), (WebhookType::Rollout, DEFAULT_TIMEOUT, 0));

        let event: Webhook =
            serde_json::from_value(serde_json::json!({"name": "e", "type": "event", "url": "http://x/"}))
                .expect("hook");
        let call = HookCall::from_webhook(&event, CanaryWebhookPayload::default(), SecretHeaders::default())
            .expect("call");
        assert_eq!(call.timeout, DEFAULT_EVENT_TIMEOUT);

        let bad: Webhook =
            serde_json::from_value(serde_json::json!({"name": "b", "url": "http://x/", "timeout": "soon"}))
                .expect("hook");
        assert!(matches!(
            HookCall::from_webhook(&bad, CanaryWebhookPayload::default(), SecretHeaders::default()),
            Err(HookError::Invalid(_))
        ));
    }

    #[test]
    fn retries_transport_failures_429_and_5xx_but_not_501_or_4xx() {
        let status = |status| HookError::Status { status, body: String::new() };
        assert!(retryable(&status(500)) && retryable(&status(503)) && retryable(&status(429)));
        assert!(!retryable(&status(501)) && !retryable(&status(403)) && !retryable(&status(404)));
        assert!(retryable(&HookError::Connect("refused".into())));
        assert!(!retryable(&HookError::Invalid("url".into())));
    }
}
