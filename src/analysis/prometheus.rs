//! The Prometheus provider: runs queries against any Prometheus-compatible HTTP API
//! (Prometheus, Thanos, Mimir, Cortex, VictoriaMetrics) with `prometheus-http-query` on
//! reqwest/rustls (aws-lc-rs).
//!
//! Behaviour, compared with Flagger's provider:
//! - whitespace runs in the query are collapsed to one space before sending (as Flagger does,
//!   so templates written over several lines behave the same; note this also applies inside
//!   string literals);
//! - instant queries are `GET <address>/api/v1/query`, default timeout 5 s;
//! - any HTTP status ≥ 400 is an error, with Prometheus' own error text when the body carries
//!   it, otherwise the status and the start of the body (e.g. a proxy's 401);
//! - an empty result or NaN is "no data", never a value;
//! - several series is an error naming each series, where Flagger silently took the last one;
//! - the health probe is the query `vector(1)`.
//!
//! Credentials and headers are passed in as values; reading them from a Secret is the caller's
//! job.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use prometheus_http_query::response::{Data, PromqlResult};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;

use crate::crd::metric_template::MetricProviderSpec;

use super::provider::{
    MetricProvider, NoData, ProviderError, QueryOutcome, RangeOutcome, RangeWindow, SeriesLabels, excerpt,
};

/// Flagger's query timeout, kept as the default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// How much of an error body goes into an error message.
const BODY_EXCERPT: usize = 512;

/// Credentials for the Prometheus API, from the MetricTemplate's Secret (`token`, or
/// `username` and `password`).
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    /// `Authorization: Bearer <token>`.
    Bearer(String),
    /// HTTP basic authentication.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: String,
    },
}

impl fmt::Debug for Auth {
    /// Never prints the secret itself.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Bearer(_) => f.write_str("Bearer(<redacted>)"),
            Auth::Basic { username, .. } => {
                write!(f, "Basic {{ username: {username:?}, password: <redacted> }}")
            }
        }
    }
}

impl Auth {
    /// Credentials from a Secret's decoded data, with Flagger's keys: `token` (bearer), or
    /// `username` and `password`. `Ok(None)` when the Secret has none of them; reading the
    /// Secret is the caller's job.
    pub fn from_secret_data(data: &BTreeMap<String, String>) -> Result<Option<Self>, ProviderError> {
        match (data.get("token"), data.get("username"), data.get("password")) {
            (Some(token), _, _) if !token.trim().is_empty() => {
                Ok(Some(Auth::Bearer(token.trim().to_string())))
            }
            (_, Some(username), Some(password)) => {
                Ok(Some(Auth::Basic { username: username.clone(), password: password.clone() }))
            }
            (_, Some(_), None) => {
                Err(ProviderError::Config("the Secret has username but no password".into()))
            }
            (_, None, Some(_)) => {
                Err(ProviderError::Config("the Secret has password but no username".into()))
            }
            _ => Ok(None),
        }
    }
}

/// Everything needed to reach one Prometheus-compatible API.
#[derive(Clone, Debug, PartialEq)]
pub struct PrometheusConfig {
    /// Base URL, e.g. `http://prometheus.monitoring:9090` or `https://mimir/prometheus`.
    pub address: String,
    /// Credentials, if the API needs them.
    pub auth: Option<Auth>,
    /// Extra headers sent with every request, e.g. `X-Scope-OrgID` for Mimir, Cortex and
    /// Thanos tenants (the MetricTemplate's `headers`, Go `http.Header` shape; several values
    /// of one header are sent comma-joined on one line).
    pub headers: BTreeMap<String, Vec<String>>,
    /// Accept any TLS certificate (the MetricTemplate's `insecureSkipVerify`).
    pub insecure_skip_verify: bool,
    /// Timeout of one request, connect included.
    pub timeout: Duration,
}

impl PrometheusConfig {
    /// The config for a MetricTemplate's `spec.provider`: its address, or the controller's
    /// `--metrics-server` when it has none; its headers and `insecureSkipVerify`; credentials
    /// from its Secret, already read by the caller.
    pub fn from_spec(
        spec: &MetricProviderSpec,
        default_address: Option<&str>,
        auth: Option<Auth>,
    ) -> Result<Self, ProviderError> {
        if !spec.type_.is_supported() {
            return Err(ProviderError::Config(format!(
                "provider type {:?} is not supported; use prometheus",
                spec.type_.as_str()
            )));
        }
        let address = spec.address.as_deref().or(default_address).ok_or_else(|| {
            ProviderError::Config("no provider address and no --metrics-server configured".into())
        })?;
        Ok(Self {
            address: address.to_string(),
            auth,
            headers: spec.headers.clone().unwrap_or_default(),
            insecure_skip_verify: spec.insecure_skip_verify.unwrap_or(false),
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// A config with no auth, no headers, TLS verified and the default timeout.
    pub fn new(address: impl Into<String>) -> Self {
        Self {
            address: address.into(),
            auth: None,
            headers: BTreeMap::new(),
            insecure_skip_verify: false,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// A `MetricProvider` backed by a Prometheus-compatible HTTP API.
#[derive(Clone)]
pub struct PrometheusProvider {
    http: reqwest::Client,
    /// `<address>/api/v1/query`, parsed once: a query only appends its parameters.
    query_url: url::Url,
    /// `<address>/api/v1/query_range`, likewise.
    range_url: url::Url,
    address: String,
    timeout: Duration,
}

impl fmt::Debug for PrometheusProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrometheusProvider")
            .field("address", &self.address)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Collapses every run of whitespace into one space and trims the ends, like Flagger, so a
/// query written over several YAML lines is sent as one line.
pub fn collapse_whitespace(query: &str) -> String {
    query.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn default_headers(config: &PrometheusConfig) -> Result<HeaderMap, ProviderError> {
    let mut headers = HeaderMap::new();
    for (name, values) in &config.headers {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| ProviderError::Config(format!("header name {name:?}: {e}")))?;
        if values.is_empty() {
            continue;
        }
        // One line per header, several values comma-joined (RFC 9110 §5.3): reqwest's default
        // headers keep a single value per name.
        let value = HeaderValue::from_str(&values.join(", "))
            .map_err(|e| ProviderError::Config(format!("value of header {name:?}: {e}")))?;
        headers.insert(header, value);
    }
    if let Some(auth) = &config.auth {
        let value = match auth {
            Auth::Bearer(token) => format!("Bearer {}", token.trim()),
            Auth::Basic { username, password } => {
                format!("Basic {}", base64_encode(format!("{username}:{password}").as_bytes()))
            }
        };
        let mut value = HeaderValue::from_str(&value).map_err(|_| {
            ProviderError::Config("credentials contain characters not allowed in a header".into())
        })?;
        value.set_sensitive(true);
        headers.insert(AUTHORIZATION, value);
    }
    Ok(headers)
}

/// Standard base64 with padding (RFC 4648), for the basic-auth header.
fn base64_encode(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Prometheus' response envelope: `{"status": "success", "data": …}` or
/// `{"status": "error", "errorType": …, "error": …}`.
#[derive(Deserialize)]
struct Envelope {
    status: String,
    #[serde(default)]
    data: Option<serde_json::Value>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

fn labels(metric: &std::collections::HashMap<String, String>) -> SeriesLabels {
    SeriesLabels(metric.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

fn single_value(value: f64) -> QueryOutcome {
    if value.is_nan() { QueryOutcome::NoData(NoData::NaN) } else { QueryOutcome::Value(value) }
}

/// Reduces an instant query's data to one value, no data, or the series list.
fn instant_outcome(data: Data) -> Result<QueryOutcome, ProviderError> {
    match data {
        Data::Scalar(sample) => Ok(single_value(sample.value())),
        Data::Vector(series) => match series.as_slice() {
            [] => Ok(QueryOutcome::NoData(NoData::Empty)),
            [one] => Ok(single_value(one.sample().value())),
            many => {
                let mut all: Vec<SeriesLabels> = many.iter().map(|s| labels(s.metric())).collect();
                all.sort();
                Ok(QueryOutcome::MultipleSeries(all))
            }
        },
        Data::Matrix(series) => Err(ProviderError::BadResponse(format!(
            "the query returned a range vector ({} series); an instant query for a check must return one value",
            series.len()
        ))),
    }
}

/// Reduces a range query's data to one series' values, no data, or the series list.
fn range_outcome(data: Data) -> Result<RangeOutcome, ProviderError> {
    match data {
        Data::Matrix(series) => match series.as_slice() {
            [] => Ok(RangeOutcome::NoData),
            [one] => Ok(RangeOutcome::Samples(one.samples().iter().map(|s| s.value()).collect())),
            many => {
                let mut all: Vec<SeriesLabels> = many.iter().map(|s| labels(s.metric())).collect();
                all.sort();
                Ok(RangeOutcome::MultipleSeries(all))
            }
        },
        Data::Vector(_) | Data::Scalar(_) => {
            Err(ProviderError::BadResponse("a range query returned an instant result".into()))
        }
    }
}

/// Turns an HTTP status and body into the query data or a precise error.
fn parse_response(status: u16, body: &[u8]) -> Result<Data, ProviderError> {
    let envelope: Result<Envelope, _> = serde_json::from_slice(body);
    match envelope {
        Ok(env) if env.status == "error" => Err(ProviderError::Query {
            error_type: env.error_type.unwrap_or_else(|| "unknown".into()),
            message: env.error.unwrap_or_default(),
        }),
        _ if status >= 400 => Err(ProviderError::HttpStatus {
            status,
            body: excerpt(&String::from_utf8_lossy(body), BODY_EXCERPT),
        }),
        Ok(env) if env.status == "success" => {
            let data = env.data.ok_or_else(|| ProviderError::BadResponse("success without data".into()))?;
            let result: PromqlResult = serde_json::from_value(data)
                .map_err(|e| ProviderError::BadResponse(format!("unexpected result shape: {e}")))?;
            Ok(result.into_inner().0)
        }
        Ok(env) => Err(ProviderError::BadResponse(format!("unknown status {:?}", env.status))),
        Err(e) => Err(ProviderError::BadResponse(format!(
            "not a Prometheus API response ({e}): {}",
            excerpt(&String::from_utf8_lossy(body), BODY_EXCERPT)
        ))),
    }
}

/// `<address>/api/v1/<path>` (an address may carry a path prefix, e.g. behind a proxy).
fn endpoint(address: &str, path: &str) -> Result<url::Url, ProviderError> {
    let url = format!("{}/api/v1/{path}", address.trim_end_matches('/'));
    url::Url::parse(&url).map_err(|e| ProviderError::Config(format!("address {address:?}: {url}: {e}")))
}

/// The error and all its causes on one line ("error sending request: connection refused").
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

impl PrometheusProvider {
    /// Builds the HTTP client: headers, credentials, TLS and timeout are fixed here.
    pub fn new(config: &PrometheusConfig) -> Result<Self, ProviderError> {
        // `prometheus:9090` parses as a URL with scheme "prometheus"; say so now, not per query.
        let scheme = url::Url::parse(&config.address).map(|u| u.scheme().to_string());
        if !matches!(scheme.as_deref(), Ok("http" | "https")) {
            return Err(ProviderError::Config(format!(
                "address {:?} must be an http:// or https:// URL",
                config.address
            )));
        }
        let http = reqwest::Client::builder()
            .default_headers(default_headers(config)?)
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .tls_danger_accept_invalid_certs(config.insecure_skip_verify)
            .build()
            .map_err(|e| ProviderError::Config(chain(&e)))?;
        Ok(Self {
            http,
            query_url: endpoint(&config.address, "query")?,
            range_url: endpoint(&config.address, "query_range")?,
            address: config.address.clone(),
            timeout: config.timeout,
        })
    }

    /// The address queries go to.
    pub fn address(&self) -> &str {
        &self.address
    }

    fn request_error(&self, error: &reqwest::Error) -> ProviderError {
        if error.is_timeout() {
            ProviderError::Timeout { address: self.address.clone(), timeout: self.timeout }
        } else {
            ProviderError::Unreachable { address: self.address.clone(), reason: chain(error) }
        }
    }

    /// GET `url` with `params` appended to its query string.
    async fn get(&self, url: &url::Url, params: &[(&str, &str)]) -> Result<reqwest::Response, ProviderError> {
        let mut url = url.clone();
        url.query_pairs_mut().extend_pairs(params);
        self.http.get(url).send().await.map_err(|e| self.request_error(&e))
    }

    async fn read(&self, response: reqwest::Response) -> Result<Data, ProviderError> {
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(|e| {
            if e.is_timeout() {
                ProviderError::Timeout { address: self.address.clone(), timeout: self.timeout }
            } else {
                ProviderError::BadResponse(format!("reading the body: {}", chain(&e)))
            }
        })?;
        parse_response(status, &body)
    }

    /// Label names of the series matching `selector` between `start` and `end` (Unix
    /// seconds): `GET /api/v1/labels?match[]=…`. Empty when nothing matches.
    pub async fn label_names(
        &self,
        selector: &str,
        start: i64,
        end: i64,
    ) -> Result<Vec<String>, ProviderError> {
        self.string_list("labels", selector, start, end).await
    }

    /// Values of `label` over the series matching `selector` between `start` and `end`:
    /// `GET /api/v1/label/<label>/values?match[]=…`.
    pub async fn label_values(
        &self,
        label: &str,
        selector: &str,
        start: i64,
        end: i64,
    ) -> Result<Vec<String>, ProviderError> {
        if label.is_empty() || !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(ProviderError::Config(format!("{label:?} is not a label name")));
        }
        self.string_list(&format!("label/{label}/values"), selector, start, end).await
    }

    async fn string_list(
        &self,
        path: &str,
        selector: &str,
        start: i64,
        end: i64,
    ) -> Result<Vec<String>, ProviderError> {
        let url = endpoint(&self.address, path)?;
        let (start, end) = (start.to_string(), end.to_string());
        let response = self.get(&url, &[("match[]", selector), ("start", &start), ("end", &end)]).await?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|e| ProviderError::BadResponse(format!("reading the body: {}", chain(&e))))?;
        match serde_json::from_slice::<Envelope>(&body) {
            Ok(env) if env.status == "error" => Err(ProviderError::Query {
                error_type: env.error_type.unwrap_or_else(|| "unknown".into()),
                message: env.error.unwrap_or_default(),
            }),
            _ if status >= 400 => Err(ProviderError::HttpStatus {
                status,
                body: excerpt(&String::from_utf8_lossy(&body), BODY_EXCERPT),
            }),
            Ok(env) => {
                serde_json::from_value(env.data.unwrap_or_else(|| serde_json::Value::Array(Vec::new())))
                    .map_err(|e| ProviderError::BadResponse(format!("expected a list of strings: {e}")))
            }
            Err(e) => Err(ProviderError::BadResponse(format!("not a Prometheus API response: {e}"))),
        }
    }

    /// The `timeout` parameter: Prometheus stops evaluating when the client would stop waiting.
    fn server_timeout(&self) -> String {
        format!("{}ms", self.timeout.as_millis())
    }
}

#[async_trait]
impl MetricProvider for PrometheusProvider {
    async fn query_at(&self, query: &str, time: Option<i64>) -> Result<QueryOutcome, ProviderError> {
        let (query, timeout) = (collapse_whitespace(query), self.server_timeout());
        let time = time.map(|t| t.to_string());
        let mut params = vec![("query", query.as_str()), ("timeout", timeout.as_str())];
        params.extend(time.as_deref().map(|t| ("time", t)));
        let response = self.get(&self.query_url, &params).await?;
        instant_outcome(self.read(response).await?)
    }

    async fn query_range(&self, query: &str, window: RangeWindow) -> Result<RangeOutcome, ProviderError> {
        if window.step.is_zero() || window.end < window.start {
            return Err(ProviderError::Config(format!(
                "bad range window: start {}, end {}, step {:?}",
                window.start, window.end, window.step
            )));
        }
        let (query, timeout) = (collapse_whitespace(query), self.server_timeout());
        let (start, end, step) =
            (window.start.to_string(), window.end.to_string(), window.step.as_secs_f64().to_string());
        let params = [
            ("query", query.as_str()),
            ("start", &start),
            ("end", &end),
            ("step", &step),
            ("timeout", &timeout),
        ];
        let response = self.get(&self.range_url, &params).await?;
        range_outcome(self.read(response).await?)
    }

    async fn health(&self) -> Result<(), ProviderError> {
        match self.query("vector(1)").await? {
            QueryOutcome::Value(1.0) => Ok(()),
            other => Err(ProviderError::BadResponse(format!("health probe vector(1) returned {other:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collapses_whitespace_like_flagger() {
        let query = "sum(\n  rate(x{a=\"b\"}[1m])\n)\t/ 2  ";
        assert_eq!(collapse_whitespace(query), "sum( rate(x{a=\"b\"}[1m]) ) / 2");
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
            ("user:pa ss", "dXNlcjpwYSBzcw=="),
        ];
        for (input, want) in cases {
            assert_eq!(base64_encode(input.as_bytes()), want, "{input}");
        }
    }

    #[test]
    fn auth_debug_hides_secrets() {
        let text = format!(
            "{:?} {:?}",
            Auth::Bearer("s3cret".into()),
            Auth::Basic { username: "u".into(), password: "s3cret".into() }
        );
        assert!(!text.contains("s3cret"), "{text}");
    }

    #[test]
    fn auth_from_flagger_secret_keys() {
        let data = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        assert_eq!(
            Auth::from_secret_data(&data(&[("token", " t0k\n")])).ok(),
            Some(Some(Auth::Bearer("t0k".into())))
        );
        assert_eq!(
            Auth::from_secret_data(&data(&[("username", "u"), ("password", "p")])).ok(),
            Some(Some(Auth::Basic { username: "u".into(), password: "p".into() }))
        );
        assert_eq!(Auth::from_secret_data(&data(&[("other", "x")])).ok(), Some(None));
        assert!(Auth::from_secret_data(&data(&[("username", "u")])).is_err());
        assert!(Auth::from_secret_data(&data(&[("password", "p")])).is_err());
    }

    #[test]
    fn config_from_a_metric_template_provider() {
        use crate::crd::MetricProviderType;
        let mut spec = MetricProviderSpec {
            type_: MetricProviderType::Prometheus,
            address: None,
            headers: Some(BTreeMap::from([("X-Scope-OrgID".to_string(), vec!["tenant".to_string()])])),
            secret_ref: None,
            region: None,
            insecure_skip_verify: Some(true),
        };
        let config = PrometheusConfig::from_spec(&spec, Some("http://global:9090"), None).expect("valid");
        assert_eq!(config.address, "http://global:9090");
        assert!(config.insecure_skip_verify);
        assert_eq!(config.headers["X-Scope-OrgID"], ["tenant"]);
        assert_eq!(config.timeout, DEFAULT_TIMEOUT);
        spec.address = Some("http://own:9090".into());
        assert_eq!(
            PrometheusConfig::from_spec(&spec, Some("http://global:9090"), None).expect("valid").address,
            "http://own:9090"
        );
        spec.address = None;
        assert!(PrometheusConfig::from_spec(&spec, None, None).is_err());
        spec.type_ = MetricProviderType::Datadog;
        assert!(PrometheusConfig::from_spec(&spec, Some("http://global:9090"), None).is_err());
    }

    #[test]
    fn bad_address_is_a_config_error() {
        for address in ["not a url", "", "127.0.0.1:9090", "prometheus:9090", "ftp://prometheus"] {
            let result = PrometheusProvider::new(&PrometheusConfig::new(address));
            assert!(matches!(result, Err(ProviderError::Config(_))), "{address:?}");
        }
        let ok = PrometheusProvider::new(&PrometheusConfig::new("https://mimir.example/prometheus/"))
            .expect("valid");
        assert_eq!(ok.address(), "https://mimir.example/prometheus/");
    }

    #[test]
    fn bad_header_is_a_config_error() {
        let mut config = PrometheusConfig::new("http://127.0.0.1:9");
        config.headers.insert("X-Bad\nName".into(), vec!["1".into()]);
        assert!(matches!(PrometheusProvider::new(&config), Err(ProviderError::Config(_))));
    }

    #[test]
    fn parses_every_result_shape() {
        let vector = |series: &str| {
            format!(r#"{{"status":"success","data":{{"resultType":"vector","result":[{series}]}}}}"#)
        };
        let one = r#"{"metric":{"a":"1"},"value":[1700000000,"42.5"]}"#;
        let two = r#"{"metric":{"a":"2"},"value":[1700000000,"7"]}"#;
        let nan = r#"{"metric":{},"value":[1700000000,"NaN"]}"#;
        let inf = r#"{"metric":{},"value":[1700000000,"+Inf"]}"#;
        let outcome = |body: String| parse_response(200, body.as_bytes()).and_then(instant_outcome);
        assert_eq!(outcome(vector(one)).ok(), Some(QueryOutcome::Value(42.5)));
        assert_eq!(outcome(vector("")).ok(), Some(QueryOutcome::NoData(NoData::Empty)));
        assert_eq!(outcome(vector(nan)).ok(), Some(QueryOutcome::NoData(NoData::NaN)));
        assert_eq!(outcome(vector(inf)).ok(), Some(QueryOutcome::Value(f64::INFINITY)));
        let scalar = r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000,"3"]}}"#;
        assert_eq!(outcome(scalar.to_string()).ok(), Some(QueryOutcome::Value(3.0)));
        match outcome(vector(&format!("{two},{one}"))) {
            Ok(QueryOutcome::MultipleSeries(series)) => {
                let names: Vec<String> = series.iter().map(ToString::to_string).collect();
                assert_eq!(names, [r#"{a="1"}"#, r#"{a="2"}"#]);
            }
            other => panic!("{other:?}"),
        }
        let matrix = r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert!(matches!(outcome(matrix.to_string()), Err(ProviderError::BadResponse(_))));
    }

    #[test]
    fn maps_error_bodies() {
        let prom = br#"{"status":"error","errorType":"bad_data","error":"parse error at char 5"}"#;
        match parse_response(400, prom) {
            Err(ProviderError::Query { error_type, message }) => {
                assert_eq!(error_type, "bad_data");
                assert_eq!(message, "parse error at char 5");
            }
            other => panic!("{other:?}"),
        }
        match parse_response(401, b"Unauthorized\n") {
            Err(ProviderError::HttpStatus { status: 401, body }) => assert_eq!(body, "Unauthorized"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse_response(200, b"<html>"), Err(ProviderError::BadResponse(_))));
    }
}
