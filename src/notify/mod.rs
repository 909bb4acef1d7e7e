//! Alerts: where they go (`AlertProvider`), what they say (`message`), each platform's format
//! (`formats`), and delivery that never blocks or delays a rollback (`dispatch`).

pub mod dispatch;
pub mod formats;
pub mod message;

use std::time::Duration;

use async_trait::async_trait;
use thiserror::Error;

use crate::crd::AlertProviderType;
use formats::Sender;
use message::Notification;

/// Why an alert could not be delivered.
#[derive(Debug, Error)]
pub enum NotifyError {
    /// The destination URL or proxy is unusable.
    #[error("invalid {what}: {detail}")]
    Config {
        /// Which setting.
        what: &'static str,
        /// Why.
        detail: String,
    },
    /// The request failed (connection, timeout, TLS).
    #[error("sending to {host}: {detail}")]
    Transport {
        /// Destination host (never the full URL: webhook URLs carry secrets).
        host: String,
        /// What went wrong.
        detail: String,
    },
    /// The destination answered with an error status.
    #[error("{host} answered {status}: {body}")]
    Rejected {
        /// Destination host.
        host: String,
        /// HTTP status.
        status: u16,
        /// Start of the response body.
        body: String,
    },
}

/// Sends one alert somewhere.
#[async_trait]
pub trait Notifier: Send + Sync {
    /// Delivers `note` once (retries are the dispatcher's job).
    async fn send(&self, note: &Notification) -> Result<(), NotifyError>;
}

/// A resolved destination: the AlertProvider's type and address (after reading its Secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destination {
    /// Platform.
    pub kind: AlertProviderType,
    /// Webhook URL.
    pub address: String,
    /// Bearer token (Slack `chat.postMessage`), from the Secret's `token` key.
    pub token: Option<String>,
    /// HTTP(S) proxy URL.
    pub proxy: Option<String>,
    /// Channel and user name.
    pub sender: Sender,
}

/// Posts JSON bodies over HTTP.
pub struct HttpNotifier {
    client: reqwest::Client,
    destination: Destination,
    url: reqwest::Url,
}

impl HttpNotifier {
    /// A notifier for `destination`, with a request timeout.
    pub fn new(destination: Destination, timeout: Duration) -> Result<Self, NotifyError> {
        let mut address = destination.address.clone();
        // Discord speaks Slack's format on its `/slack` endpoint (Flagger does the same).
        if destination.kind == AlertProviderType::Discord
            && !address.trim_end_matches('/').ends_with("/slack")
        {
            address = format!("{}/slack", address.trim_end_matches('/'));
        }
        let url = reqwest::Url::parse(&address)
            .map_err(|e| NotifyError::Config { what: "alert address", detail: e.to_string() })?;
        let mut builder = reqwest::Client::builder().timeout(timeout);
        if let Some(proxy) = &destination.proxy {
            let proxy = reqwest::Proxy::all(proxy)
                .map_err(|e| NotifyError::Config { what: "proxy", detail: e.to_string() })?;
            builder = builder.proxy(proxy);
        }
        let client = builder
            .build()
            .map_err(|e| NotifyError::Config { what: "HTTP client", detail: e.to_string() })?;
        Ok(Self { client, destination, url })
    }

    fn host(&self) -> String {
        self.url.host_str().unwrap_or("destination").to_string()
    }
}

#[async_trait]
impl Notifier for HttpNotifier {
    async fn send(&self, note: &Notification) -> Result<(), NotifyError> {
        let body = formats::body(self.destination.kind, &self.destination.sender, note);
        let mut request = self.client.post(self.url.clone()).json(&body);
        if let Some(token) = &self.destination.token {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .map_err(|e| NotifyError::Transport { host: self.host(), detail: e.without_url().to_string() })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let text = response.text().await.unwrap_or_default();
        Err(NotifyError::Rejected {
            host: self.host(),
            status: status.as_u16(),
            body: text.chars().take(300).collect(),
        })
    }
}
