//! Native HTTP load generation (tokio + reqwest, no `hey` process): a fixed request rate or a
//! fixed number of concurrent workers, for a duration or a number of requests, with latency
//! percentiles and error counts readable while the load runs.
//!
//! A request counts as an **error** when it gets no response (connection failure, timeout) or a
//! 5xx response; 4xx answers are counted by status but are not errors (a target may rightly
//! refuse some requests).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use reqwest::header::HeaderMap;
use reqwest::{Method, Url};
use serde::Serialize;
use thiserror::Error;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// One load: what to request, how fast, for how long.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadSpec {
    /// Target URL (http or https).
    pub url: Url,
    /// HTTP method (default GET).
    pub method: Method,
    /// Request headers (including `Host` when overridden).
    pub headers: HeaderMap,
    /// Request body.
    pub body: Option<String>,
    /// Total requests per second over all workers; `None`: as fast as `concurrency` allows.
    pub rate: Option<f64>,
    /// Requests in flight at most.
    pub concurrency: u32,
    /// How long to send; `None` when only `requests` bounds the load.
    pub duration: Option<Duration>,
    /// Total requests to send; `None` when only `duration` bounds the load.
    pub requests: Option<u64>,
    /// Bound of each request.
    pub timeout: Duration,
    /// Open a new connection for every request.
    pub disable_keepalive: bool,
    /// Do not follow redirects.
    pub disable_redirects: bool,
    /// Skip TLS verification.
    pub insecure: bool,
}

/// Caps every load must fit in (set by the load tester's flags).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    /// Longest load.
    pub max_duration: Duration,
    /// Highest total rate, requests per second.
    pub max_rate: f64,
    /// Most requests in flight.
    pub max_concurrency: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_duration: Duration::from_secs(3600), max_rate: 5000.0, max_concurrency: 256 }
    }
}

/// A load that does not fit the limits, or a client that cannot be built.
#[derive(Debug, Error, PartialEq)]
pub enum LoadError {
    /// Longer than `--max-duration`.
    #[error("duration {0:?} is above the limit of {1:?} (--max-duration)")]
    TooLong(Duration, Duration),
    /// Faster than `--max-rate`.
    #[error("rate {0} req/s is above the limit of {1} req/s (--max-rate)")]
    TooFast(f64, f64),
    /// More workers than `--max-concurrency`.
    #[error("concurrency {0} is above the limit of {1} (--max-concurrency)")]
    TooConcurrent(u32, u32),
    /// Zero or negative rate, zero concurrency, no bound.
    #[error("{0}")]
    Invalid(String),
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Client(String),
}

impl LoadSpec {
    /// Checks the spec against `limits`. A load bounded only by `requests` still stops at
    /// `limits.max_duration`.
    pub fn check(&self, limits: &Limits) -> Result<(), LoadError> {
        if self.concurrency == 0 {
            return Err(LoadError::Invalid("concurrency must be at least 1".into()));
        }
        if self.concurrency > limits.max_concurrency {
            return Err(LoadError::TooConcurrent(self.concurrency, limits.max_concurrency));
        }
        match self.rate {
            Some(rate) if !(rate.is_finite() && rate > 0.0) => {
                return Err(LoadError::Invalid(format!("rate must be above 0, got {rate}")));
            }
            Some(rate) if rate > limits.max_rate => return Err(LoadError::TooFast(rate, limits.max_rate)),
            _ => {}
        }
        match (self.duration, self.requests) {
            (None, None) => Err(LoadError::Invalid("a load needs a duration or a number of requests".into())),
            (Some(d), _) if d > limits.max_duration => Err(LoadError::TooLong(d, limits.max_duration)),
            (Some(d), None) if d.is_zero() => Err(LoadError::Invalid("duration must be above 0".into())),
            _ => Ok(()),
        }
    }

    /// A client for this load: pool sized to the concurrency, redirects and TLS as asked.
    pub fn client(&self) -> Result<reqwest::Client, LoadError> {
        let mut builder = reqwest::Client::builder()
            .timeout(self.timeout)
            .tls_danger_accept_invalid_certs(self.insecure)
            .tls_danger_accept_invalid_hostnames(self.insecure)
            .user_agent(concat!("serin-loadtester/", env!("CARGO_PKG_VERSION")));
        builder = if self.disable_keepalive {
            builder.pool_max_idle_per_host(0)
        } else {
            builder.pool_max_idle_per_host(self.concurrency as usize)
        };
        if self.disable_redirects {
            builder = builder.redirect(reqwest::redirect::Policy::none());
        }
        builder.build().map_err(|err| LoadError::Client(err.to_string()))
    }
}

const BUCKET_GROWTH: f64 = 1.02;
const BUCKETS: usize = 1100; // 1.02^1100 µs ≈ 2.8e9 µs, well above any request timeout

/// Latency distribution in logarithmic buckets (2% wide): bounded memory however long the
/// load runs; percentiles are exact to within 2%.
#[derive(Clone, Debug)]
pub struct LatencyHistogram {
    counts: Vec<u64>,
    total: u64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self { counts: vec![0; BUCKETS], total: 0 }
    }
}

impl LatencyHistogram {
    fn bucket(latency: Duration) -> usize {
        let micros = latency.as_micros().max(1) as f64;
        ((micros.ln() / BUCKET_GROWTH.ln()).ceil() as usize).min(BUCKETS - 1)
    }

    /// Adds one sample.
    pub fn record(&mut self, latency: Duration) {
        self.counts[Self::bucket(latency)] += 1;
        self.total += 1;
    }

    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The `q`-quantile (0..=1) as the upper bound of its bucket; `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(Duration::from_micros(BUCKET_GROWTH.powi(index as i32).round() as u64));
            }
        }
        None
    }
}

/// Counters of one load, shared with readers while it runs.
#[derive(Clone, Debug, Default)]
pub struct LoadStats {
    /// Requests that finished (with or without a response).
    pub requests: u64,
    /// Requests without a response or with a 5xx.
    pub errors: u64,
    /// Responses by status code.
    pub statuses: BTreeMap<u16, u64>,
    /// Latency of every finished request.
    pub latency: LatencyHistogram,
    /// The first transport error, for the summary.
    pub first_error: Option<String>,
    /// Time from start to the last finished request.
    pub elapsed: Duration,
}

/// Prometheus handles for one canary's loads.
#[derive(Clone, Debug)]
pub struct LoadMetrics {
    /// Requests sent.
    pub requests: Counter,
    /// Errors.
    pub errors: Counter,
    /// Latency in seconds.
    pub latency: Histogram,
}

/// A load's figures, as the `load-result` task returns them.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadSummary {
    /// `running` or `finished`.
    pub state: &'static str,
    /// Requests finished.
    pub requests: u64,
    /// Errors (no response or 5xx).
    pub errors: u64,
    /// Errors in percent of requests.
    pub error_rate: f64,
    /// Requests per second achieved.
    pub rate: f64,
    /// Seconds the load has run.
    pub duration_seconds: f64,
    /// Median latency, milliseconds.
    pub p50_ms: Option<f64>,
    /// 90th percentile latency, milliseconds.
    pub p90_ms: Option<f64>,
    /// 99th percentile latency, milliseconds.
    pub p99_ms: Option<f64>,
    /// Responses by status code.
    pub statuses: BTreeMap<String, u64>,
    /// The first transport error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
}

impl LoadStats {
    /// The figures so far.
    pub fn summary(&self, running: bool) -> LoadSummary {
        let ms = |q| self.latency.quantile(q).map(|d: Duration| (d.as_secs_f64() * 1e6).round() / 1e3);
        let seconds = self.elapsed.as_secs_f64();
        LoadSummary {
            state: if running { "running" } else { "finished" },
            requests: self.requests,
            errors: self.errors,
            error_rate: if self.requests == 0 {
                0.0
            } else {
                100.0 * self.errors as f64 / self.requests as f64
            },
            rate: if seconds > 0.0 { self.requests as f64 / seconds } else { 0.0 },
            duration_seconds: seconds,
            p50_ms: ms(0.5),
            p90_ms: ms(0.9),
            p99_ms: ms(0.99),
            statuses: self.statuses.iter().map(|(code, n)| (code.to_string(), *n)).collect(),
            first_error: self.first_error.clone(),
        }
    }
}

/// Finished requests a running load needs before its error rate is judged.
pub const MIN_RUNNING_SAMPLE: u64 = 20;

/// Pure: whether a load failed. `max_error_rate` is in percent; without it a load fails only
/// when no request got a non-error answer. A running load is judged only on its error rate and
/// only from [`MIN_RUNNING_SAMPLE`] finished requests on, so a few early errors do not fail it.
pub fn judge(summary: &LoadSummary, max_error_rate: Option<f64>) -> Result<(), String> {
    let running = summary.state == "running";
    if running && summary.requests < MIN_RUNNING_SAMPLE {
        return Ok(());
    }
    if summary.requests == 0 {
        return if running { Ok(()) } else { Err("the load sent no request".into()) };
    }
    if summary.errors == summary.requests && !running {
        let cause =
            summary.first_error.as_deref().map(|e| format!(" (first error: {e})")).unwrap_or_default();
        return Err(format!("all {} requests failed{cause}", summary.requests));
    }
    match max_error_rate {
        Some(max) if summary.error_rate > max => {
            Err(format!("error rate {:.2}% is above maxErrorRate {max}%", summary.error_rate))
        }
        _ => Ok(()),
    }
}

fn record(
    stats: &Mutex<LoadStats>,
    metrics: Option<&LoadMetrics>,
    started: Instant,
    latency: Duration,
    outcome: Result<u16, String>,
) {
    let error = !matches!(outcome, Ok(status) if status < 500);
    if let Some(metrics) = metrics {
        metrics.requests.inc();
        metrics.latency.observe(latency.as_secs_f64());
        if error {
            metrics.errors.inc();
        }
    }
    let Ok(mut stats) = stats.lock() else { return };
    stats.requests += 1;
    stats.latency.record(latency);
    stats.elapsed = started.elapsed();
    if error {
        stats.errors += 1;
    }
    match outcome {
        Ok(status) => *stats.statuses.entry(status).or_default() += 1,
        Err(text) => {
            stats.first_error.get_or_insert(text);
        }
    }
}

async fn one_request(client: &reqwest::Client, spec: &LoadSpec) -> Result<u16, String> {
    let mut request = client.request(spec.method.clone(), spec.url.clone()).headers(spec.headers.clone());
    if let Some(body) = &spec.body {
        request = request.body(body.clone());
    }
    let mut response = request.send().await.map_err(|err| describe(&err))?;
    let status = response.status().as_u16();
    // Read the body to the end so the connection can be reused.
    while let Some(_chunk) = response.chunk().await.map_err(|err| describe(&err))? {}
    Ok(status)
}

fn describe(err: &reqwest::Error) -> String {
    let mut text = if err.is_timeout() {
        "timeout".to_string()
    } else if err.is_connect() {
        "connect".to_string()
    } else {
        "request".to_string()
    };
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// How long requests still in flight at the end of a load may take to finish.
pub const IN_FLIGHT_GRACE: Duration = Duration::from_secs(10);

/// Runs the load to its end (duration, request count, or `max_duration`), updating `stats` as
/// requests finish. Requests in flight at the end get [`IN_FLIGHT_GRACE`] (at most their
/// timeout) to finish; the rest are dropped uncounted.
pub async fn run(
    spec: Arc<LoadSpec>,
    client: reqwest::Client,
    stats: Arc<Mutex<LoadStats>>,
    metrics: Option<LoadMetrics>,
    max_duration: Duration,
) {
    let started = Instant::now();
    let end = started + spec.duration.unwrap_or(max_duration).min(max_duration);
    let budget = spec.requests.unwrap_or(u64::MAX);
    let mut tasks = JoinSet::new();
    match spec.rate {
        Some(rate) => {
            let permits = Arc::new(Semaphore::new(spec.concurrency as usize));
            let interval = Duration::from_secs_f64(1.0 / rate);
            let mut sent = 0u64;
            while sent < budget {
                let due = started + interval.mul_f64(sent as f64);
                if due >= end {
                    break;
                }
                tokio::time::sleep_until(due).await;
                let permit = tokio::select! {
                    permit = permits.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break,
                    },
                    _ = tokio::time::sleep_until(end) => break,
                };
                let (spec, client, stats, metrics) =
                    (spec.clone(), client.clone(), stats.clone(), metrics.clone());
                tasks.spawn(async move {
                    let begin = Instant::now();
                    let outcome = one_request(&client, &spec).await;
                    record(&stats, metrics.as_ref(), started, begin.elapsed(), outcome);
                    drop(permit);
                });
                sent += 1;
                while tasks.try_join_next().is_some() {}
            }
        }
        None => {
            let sent = Arc::new(AtomicU64::new(0));
            for _ in 0..spec.concurrency {
                let (spec, client, stats, metrics, sent) =
                    (spec.clone(), client.clone(), stats.clone(), metrics.clone(), sent.clone());
                tasks.spawn(async move {
                    while Instant::now() < end && sent.fetch_add(1, Ordering::Relaxed) < budget {
                        let begin = Instant::now();
                        let outcome = tokio::select! {
                            outcome = one_request(&client, &spec) => outcome,
                            _ = tokio::time::sleep_until(end) => break,
                        };
                        record(&stats, metrics.as_ref(), started, begin.elapsed(), outcome);
                    }
                });
            }
        }
    }
    // Requests still in flight at the end get a short grace, then are dropped, so a hanging
    // target cannot keep a load alive past its window for a whole request timeout.
    let grace = tokio::time::sleep_until(end.max(Instant::now()) + spec.timeout.min(IN_FLIGHT_GRACE));
    tokio::pin!(grace);
    loop {
        tokio::select! {
            joined = tasks.join_next() => if joined.is_none() { break },
            () = &mut grace => {
                tasks.abort_all();
                while tasks.join_next().await.is_some() {}
                break;
            }
        }
    }
    // A load bounded by time ran over its whole window, even if its last request left before
    // the end (at rate r, the last one leaves up to 1/r early): rates are per window.
    let window = if spec.requests.is_none() { end - started } else { Duration::ZERO };
    if let Ok(mut stats) = stats.lock() {
        stats.elapsed = started.elapsed().max(window);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> LoadSpec {
        LoadSpec {
            url: Url::parse("http://127.0.0.1:1/").expect("url"),
            method: Method::GET,
            headers: HeaderMap::new(),
            body: None,
            rate: Some(10.0),
            concurrency: 2,
            duration: Some(Duration::from_secs(60)),
            requests: None,
            timeout: Duration::from_secs(10),
            disable_keepalive: false,
            disable_redirects: false,
            insecure: false,
        }
    }

    #[test]
    fn limits_are_enforced() {
        let limits = Limits::default();
        assert_eq!(spec().check(&limits), Ok(()));
        let long = LoadSpec { duration: Some(Duration::from_secs(7200)), ..spec() };
        assert!(matches!(long.check(&limits), Err(LoadError::TooLong(..))));
        let fast = LoadSpec { rate: Some(10_000.0), ..spec() };
        assert!(matches!(fast.check(&limits), Err(LoadError::TooFast(..))));
        let wide = LoadSpec { concurrency: 1000, ..spec() };
        assert!(matches!(wide.check(&limits), Err(LoadError::TooConcurrent(..))));
        let unbounded = LoadSpec { duration: None, requests: None, ..spec() };
        assert!(matches!(unbounded.check(&limits), Err(LoadError::Invalid(_))));
        let counted = LoadSpec { duration: None, requests: Some(100), ..spec() };
        assert_eq!(counted.check(&limits), Ok(()));
        let zero = LoadSpec { rate: Some(0.0), ..spec() };
        assert!(matches!(zero.check(&limits), Err(LoadError::Invalid(_))));
    }

    #[test]
    fn histogram_quantiles_are_within_two_percent() {
        let mut histogram = LatencyHistogram::default();
        assert_eq!(histogram.quantile(0.5), None);
        for ms in 1..=100u64 {
            histogram.record(Duration::from_millis(ms));
        }
        for (q, want_ms) in [(0.5, 50.0), (0.9, 90.0), (0.99, 99.0), (1.0, 100.0)] {
            let got = histogram.quantile(q).expect("samples").as_secs_f64() * 1e3;
            assert!((got - want_ms).abs() / want_ms <= 0.021, "q{q}: {got} ms, want {want_ms}");
        }
        assert_eq!(histogram.count(), 100);
    }

    #[test]
    fn judging_a_load() {
        let mut stats = LoadStats { requests: 100, errors: 3, ..LoadStats::default() };
        assert_eq!(judge(&stats.summary(false), None), Ok(()));
        assert_eq!(judge(&stats.summary(false), Some(5.0)), Ok(()));
        assert_eq!(
            judge(&stats.summary(false), Some(1.0)),
            Err("error rate 3.00% is above maxErrorRate 1%".into())
        );
        stats.errors = 100;
        stats.first_error = Some("connect: Connection refused".into());
        assert_eq!(
            judge(&stats.summary(false), None),
            Err("all 100 requests failed (first error: connect: Connection refused)".into())
        );
        let empty = LoadStats::default();
        assert!(judge(&empty.summary(false), None).is_err());
        assert_eq!(judge(&empty.summary(true), Some(0.0)), Ok(()));
        let early = LoadStats { requests: 2, errors: 2, ..LoadStats::default() };
        assert_eq!(judge(&early.summary(true), Some(5.0)), Ok(()), "too few requests to judge yet");
        let running = LoadStats { requests: 40, errors: 4, ..LoadStats::default() };
        assert!(judge(&running.summary(true), Some(5.0)).is_err());
        assert_eq!(judge(&running.summary(true), None), Ok(()));
    }
}
