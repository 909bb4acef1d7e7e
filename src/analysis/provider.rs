//! The `MetricProvider` trait: how the analysis asks a metrics backend for one number (or one
//! series of numbers), independent of which backend it is. The reconciler is tested with
//! in-memory implementations; `prometheus` is the real one.
//!
//! A query has three honest outcomes besides a transport error: one value, no data (empty
//! result or NaN), or several series. Several series is never resolved by picking one
//! ("last one wins" in Flagger): it is reported with every series' labels so the user can fix
//! the query's aggregation.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use thiserror::Error;

/// The labels of one returned series, sorted by name, so a "several series" error can say
/// which series came back.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct SeriesLabels(pub BTreeMap<String, String>);

impl fmt::Display for SeriesLabels {
    /// PromQL selector style: `metric{a="1", b="2"}`, `{}` for a series without labels.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(name) = self.0.get("__name__") {
            f.write_str(name)?;
        }
        f.write_str("{")?;
        let mut first = true;
        for (key, value) in self.0.iter().filter(|(k, _)| k.as_str() != "__name__") {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{key}={value:?}")?;
        }
        f.write_str("}")
    }
}

/// Why a query counts as "no data".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoData {
    /// The result had no series at all (no traffic, or labels that match nothing).
    Empty,
    /// The single value was NaN (typically 0/0: no requests in the window).
    NaN,
}

impl fmt::Display for NoData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NoData::Empty => "the query returned no series",
            NoData::NaN => "the query returned NaN",
        })
    }
}

/// The result of an instant query, reduced to what a check can judge.
#[derive(Clone, Debug, PartialEq)]
pub enum QueryOutcome {
    /// Exactly one value (a scalar, or a vector with one series). May be ±infinity.
    Value(f64),
    /// Nothing to judge.
    NoData(NoData),
    /// Several series came back; judging any one of them would be a guess. Holds every
    /// series' labels (at least two).
    MultipleSeries(Vec<SeriesLabels>),
}

/// The result of a range query, reduced to what the comparative judge needs.
#[derive(Clone, Debug, PartialEq)]
pub enum RangeOutcome {
    /// One series: its sample values in time order (NaN samples kept; the judge decides).
    Samples(Vec<f64>),
    /// No series at all.
    NoData,
    /// Several series; the query must aggregate them into one.
    MultipleSeries(Vec<SeriesLabels>),
}

/// A time window for a range query.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RangeWindow {
    /// Start, Unix seconds.
    pub start: i64,
    /// End, Unix seconds.
    pub end: i64,
    /// Resolution step.
    pub step: Duration,
}

/// Why a backend could not answer. Any of these makes the check an error, which counts as a
/// failed check: an unreachable backend is never a pass.
#[derive(Debug, Error)]
pub enum ProviderError {
    /// Connecting failed (refused, DNS, TLS handshake).
    #[error("metrics backend {address} unreachable: {reason}")]
    Unreachable {
        /// The backend's address.
        address: String,
        /// The transport error, with its causes.
        reason: String,
    },
    /// The request took longer than the configured timeout.
    #[error("metrics backend {address} did not answer within {timeout:?}")]
    Timeout {
        /// The backend's address.
        address: String,
        /// The configured timeout.
        timeout: Duration,
    },
    /// The backend answered with an HTTP error status and no Prometheus error body (e.g. a
    /// proxy's 401 or 502).
    #[error("metrics backend answered HTTP {status}: {body}")]
    HttpStatus {
        /// The HTTP status code.
        status: u16,
        /// The start of the response body.
        body: String,
    },
    /// The backend rejected or failed the query itself (syntax error, execution error…).
    #[error("query rejected ({error_type}): {message}")]
    Query {
        /// Prometheus' `errorType`, e.g. `bad_data`.
        error_type: String,
        /// Prometheus' `error` text.
        message: String,
    },
    /// The answer was not what the Prometheus HTTP API promises (not JSON, wrong shape, a
    /// range result for an instant query…).
    #[error("bad response from metrics backend: {0}")]
    BadResponse(String),
    /// The provider could not be set up (bad address, bad header, TLS setup).
    #[error("invalid metrics provider configuration: {0}")]
    Config(String),
}

/// A metrics backend. `async_trait` keeps it dyn-compatible, so the analysis holds a
/// `Box<dyn MetricProvider>` chosen per MetricTemplate.
#[async_trait]
pub trait MetricProvider: Send + Sync {
    /// Runs an instant query "now" (the backend's clock) and reduces the result to one value,
    /// no data, or the list of series it returned.
    async fn query(&self, query: &str) -> Result<QueryOutcome, ProviderError> {
        self.query_at(query, None).await
    }

    /// Runs an instant query evaluated at `time` (Unix seconds; `None`: the backend's "now"),
    /// reduced like [`MetricProvider::query`]. `serin replay` evaluates past ticks with it.
    async fn query_at(&self, query: &str, time: Option<i64>) -> Result<QueryOutcome, ProviderError>;

    /// Runs a range query (for the comparative judge and for replaying history).
    async fn query_range(&self, query: &str, window: RangeWindow) -> Result<RangeOutcome, ProviderError>;

    /// Checks that the backend answers queries at all.
    async fn health(&self) -> Result<(), ProviderError>;
}

/// Cuts `text` to at most `max` bytes on a character boundary, marking the cut, so error
/// bodies stay readable in a Canary's status.
pub fn excerpt(text: &str, max: usize) -> String {
    let text = text.trim();
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_print_like_a_selector() {
        let labels = SeriesLabels(BTreeMap::from([
            ("__name__".to_string(), "up".to_string()),
            ("job".to_string(), "a".to_string()),
            ("instance".to_string(), "x:1".to_string()),
        ]));
        assert_eq!(labels.to_string(), r#"up{instance="x:1", job="a"}"#);
        assert_eq!(SeriesLabels::default().to_string(), "{}");
    }

    #[test]
    fn excerpt_cuts_on_char_boundaries() {
        assert_eq!(excerpt("  short  ", 10), "short");
        assert_eq!(excerpt("ééé", 3), "é…");
        assert_eq!(excerpt("abcdef", 3), "abc…");
    }

    /// The trait must stay usable as a trait object.
    #[test]
    fn provider_is_dyn_compatible() {
        fn _takes(_: &dyn MetricProvider) {}
    }
}
