//! Which task a `POST /` asks for, read from the webhook payload's `metadata` (pure).
//!
//! | `metadata.type` | task |
//! |---|---|
//! | `load` | native load: `url` (required), `method` (GET), `headers`, `body`, `host`, `rate` (total req/s) or `concurrency` alone (as fast as that many workers go), `concurrency` (default 1 without `rate`, else enough for the rate, at most 64), `duration` (Go duration, e.g. `1m`) and/or `requests`, `timeout` per request (10s), `insecureSkipVerify` (`"true"`), `maxErrorRate` (percent) |
//! | `cmd` (the default) | a `hey …` command runs as a native load (no shell needed); anything else is an async shell command (needs `--allow-shell`) |
//! | `load-result` | the outcome of a load of the same canary: `task` names it (default: the latest load of the canary); `maxErrorRate` (percent) overrides the load's |
//! | `bash` | blocking `bash -c cmd` (needs `--allow-shell`); `returnCmdOutput: "true"` echoes stdout |
//! | `helm`, `helmv3`, `kubectl` | blocking `helm …` / `kubectl …` through `sh -c` (needs `--allow-shell`) |
//!
//! `headers` is either a JSON object (`{"X-A": "b"}`) or `Name: value` lines separated by
//! newlines. Every load may set `task` to name it; without it, the name is derived from the
//! command or the load's metadata, so the same hook always maps to the same task.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

use reqwest::header::{HOST, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};
use thiserror::Error;

use crate::crd::duration::parse_duration;
use crate::loadtester::hey::{self, HeyError};
use crate::loadtester::load::{Limits, LoadError, LoadSpec};

/// Metadata key of the task type.
pub const TYPE: &str = "type";
/// Metadata key naming a task (for deduplication and `load-result`).
pub const TASK: &str = "task";
/// Metadata key of the maximum error rate, percent.
pub const MAX_ERROR_RATE: &str = "maxErrorRate";

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_DEFAULT_CONCURRENCY: u32 = 64;

/// A task the metadata cannot describe.
#[derive(Debug, Error, PartialEq)]
pub enum TaskError {
    /// A required key is missing.
    #[error("metadata.{0} is required for this task type")]
    Missing(&'static str),
    /// A key's value does not parse.
    #[error("metadata.{key}: {reason}")]
    Invalid {
        /// The key.
        key: &'static str,
        /// Why.
        reason: String,
    },
    /// An unknown or unsupported task type.
    #[error("unsupported task type {0:?}: use load, load-result, cmd, bash, helm, helmv3 or kubectl")]
    UnknownType(String),
    /// A `hey` command that cannot run natively.
    #[error(transparent)]
    Hey(#[from] HeyError),
    /// A load outside the limits.
    #[error(transparent)]
    Load(#[from] LoadError),
}

/// How a shell task runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShellMode {
    /// Answer when it ends: 200 or 500 with its output.
    Blocking,
    /// Answer 202 at once; the command runs in the background, deduplicated per canary.
    Background,
}

/// A shell task (only with `--allow-shell`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShellTask {
    /// The metadata type (`cmd`, `bash`, `helm`, …), for messages and metrics.
    pub kind: String,
    /// Interpreter and its flag (`bash -c`, `sh -c`).
    pub shell: &'static str,
    /// The command line given to the shell.
    pub script: String,
    /// Blocking or background.
    pub mode: ShellMode,
    /// Return stdout in the response (`returnCmdOutput`).
    pub return_output: bool,
    /// Log the output (`logCmdOutput`).
    pub log_output: bool,
}

/// A parsed task.
#[derive(Clone, Debug, PartialEq)]
pub enum Task {
    /// Start a load (202), unless the same one runs for this canary already.
    Load {
        /// Name for deduplication and results.
        task: String,
        /// What to send.
        spec: Box<LoadSpec>,
        /// Error budget, percent.
        max_error_rate: Option<f64>,
    },
    /// Report a load's outcome.
    LoadResult {
        /// Which load (default: the canary's latest).
        task: Option<String>,
        /// Overrides the load's own error budget, percent.
        max_error_rate: Option<f64>,
    },
    /// Run a shell command.
    Shell(ShellTask),
}

fn flag(metadata: &BTreeMap<String, String>, key: &str) -> bool {
    metadata.get(key).is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

fn number<T: std::str::FromStr>(
    metadata: &BTreeMap<String, String>,
    key: &'static str,
) -> Result<Option<T>, TaskError>
where
    T::Err: std::fmt::Display,
{
    metadata
        .get(key)
        .map(|v| v.trim().parse::<T>().map_err(|e| TaskError::Invalid { key, reason: format!("{v:?}: {e}") }))
        .transpose()
}

fn duration(metadata: &BTreeMap<String, String>, key: &'static str) -> Result<Option<Duration>, TaskError> {
    metadata
        .get(key)
        .map(|v| parse_duration(v).map_err(|e| TaskError::Invalid { key, reason: e.to_string() }))
        .transpose()
}

fn max_error_rate(metadata: &BTreeMap<String, String>) -> Result<Option<f64>, TaskError> {
    let rate: Option<f64> = number(metadata, MAX_ERROR_RATE)?;
    match rate {
        Some(r) if !(0.0..=100.0).contains(&r) => Err(TaskError::Invalid {
            key: MAX_ERROR_RATE,
            reason: format!("{r} is not a percentage (0-100)"),
        }),
        other => Ok(other),
    }
}

fn short_hash(value: &impl Hash) -> String {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    format!("{:012x}", hasher.finish() & 0xffff_ffff_ffff)
}

/// Parses `headers`: a JSON object of strings, or `Name: value` lines.
pub fn parse_headers(text: &str) -> Result<HeaderMap, TaskError> {
    let invalid = |reason: String| TaskError::Invalid { key: "headers", reason };
    let pairs: Vec<(String, String)> = if text.trim_start().starts_with('{') {
        let map: BTreeMap<String, String> =
            serde_json::from_str(text).map_err(|e| invalid(format!("not a JSON object of strings: {e}")))?;
        map.into_iter().collect()
    } else {
        text.lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| {
                line.split_once(':')
                    .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
                    .ok_or_else(|| invalid(format!("line {line:?} is not 'Name: value'")))
            })
            .collect::<Result<_, _>>()?
    };
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        let header =
            HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid(format!("bad name {name:?}")))?;
        let value = HeaderValue::from_str(&value).map_err(|_| invalid(format!("bad value for {name:?}")))?;
        headers.append(header, value);
    }
    Ok(headers)
}

fn native_load(metadata: &BTreeMap<String, String>, limits: &Limits) -> Result<LoadSpec, TaskError> {
    let url_text = metadata.get("url").ok_or(TaskError::Missing("url"))?;
    let url = Url::parse(url_text).map_err(|e| TaskError::Invalid { key: "url", reason: e.to_string() })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(TaskError::Invalid { key: "url", reason: "only http and https".into() });
    }
    let method = match metadata.get("method") {
        Some(m) => Method::from_bytes(m.trim().to_uppercase().as_bytes())
            .map_err(|e| TaskError::Invalid { key: "method", reason: e.to_string() })?,
        None => Method::GET,
    };
    let mut headers = match metadata.get("headers") {
        Some(text) => parse_headers(text)?,
        None => HeaderMap::new(),
    };
    if let Some(host) = metadata.get("host") {
        let value = HeaderValue::from_str(host)
            .map_err(|e| TaskError::Invalid { key: "host", reason: e.to_string() })?;
        headers.insert(HOST, value);
    }
    let rate: Option<f64> = number(metadata, "rate")?;
    let concurrency: Option<u32> = number(metadata, "concurrency")?;
    let concurrency = concurrency.unwrap_or_else(|| match rate {
        // Enough workers for the rate at ~100 ms per request.
        Some(rate) => {
            ((rate / 10.0).ceil() as u32).clamp(1, MAX_DEFAULT_CONCURRENCY.min(limits.max_concurrency))
        }
        None => 1,
    });
    let spec = LoadSpec {
        url,
        method,
        headers,
        body: metadata.get("body").cloned(),
        rate,
        concurrency,
        duration: duration(metadata, "duration")?,
        requests: number(metadata, "requests")?,
        timeout: duration(metadata, "timeout")?.unwrap_or(DEFAULT_TIMEOUT),
        disable_keepalive: flag(metadata, "disableKeepalive"),
        disable_redirects: flag(metadata, "disableRedirects"),
        insecure: flag(metadata, "insecureSkipVerify"),
    };
    Ok(spec)
}

/// Reads the task from a payload's metadata; loads are checked against `limits`.
pub fn parse(metadata: &BTreeMap<String, String>, limits: &Limits) -> Result<Task, TaskError> {
    let kind = metadata.get(TYPE).map(|t| t.trim()).filter(|t| !t.is_empty()).unwrap_or("cmd");
    let cmd = || metadata.get("cmd").map(|c| c.trim().to_string()).filter(|c| !c.is_empty());
    let named = |default: String| metadata.get(TASK).cloned().filter(|t| !t.is_empty()).unwrap_or(default);
    let shell = |kind: &str, shell: &'static str, script: String, mode: ShellMode| {
        Task::Shell(ShellTask {
            kind: kind.to_string(),
            shell,
            script,
            mode,
            return_output: flag(metadata, "returnCmdOutput"),
            log_output: flag(metadata, "logCmdOutput"),
        })
    };
    let task = match kind {
        "load" => {
            let spec = native_load(metadata, limits)?;
            let mut identity = metadata.clone();
            identity.remove(TASK);
            identity.remove(MAX_ERROR_RATE);
            Task::Load {
                task: named(format!("load-{}", short_hash(&identity))),
                spec: Box::new(spec),
                max_error_rate: max_error_rate(metadata)?,
            }
        }
        "load-result" => Task::LoadResult {
            task: metadata.get(TASK).cloned().filter(|t| !t.is_empty()),
            max_error_rate: max_error_rate(metadata)?,
        },
        "cmd" => {
            let cmd = cmd().ok_or(TaskError::Missing("cmd"))?;
            if hey::is_hey(&cmd) {
                let spec = hey::parse(&cmd, limits.max_duration)?;
                Task::Load {
                    task: named(format!("cmd-{}", short_hash(&cmd))),
                    spec: Box::new(spec),
                    max_error_rate: max_error_rate(metadata)?,
                }
            } else {
                shell("cmd", "sh", cmd, ShellMode::Background)
            }
        }
        "bash" => shell("bash", "bash", cmd().ok_or(TaskError::Missing("cmd"))?, ShellMode::Blocking),
        "helm" | "helmv3" => {
            let cmd = cmd().ok_or(TaskError::Missing("cmd"))?;
            shell(kind, "sh", format!("helm {cmd}"), ShellMode::Blocking)
        }
        "kubectl" => {
            let cmd = cmd().ok_or(TaskError::Missing("cmd"))?;
            shell(kind, "sh", format!("kubectl {cmd}"), ShellMode::Blocking)
        }
        other => return Err(TaskError::UnknownType(other.to_string())),
    };
    if let Task::Load { spec, .. } = &task {
        spec.check(limits)?;
    }
    Ok(task)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn native_load_with_defaults() {
        let task = parse(
            &meta(&[("type", "load"), ("url", "http://127.0.0.1:9/"), ("rate", "50"), ("duration", "2s")]),
            &Limits::default(),
        )
        .expect("load");
        let Task::Load { task, spec, max_error_rate } = task else { panic!("{task:?}") };
        assert!(task.starts_with("load-"), "{task}");
        assert_eq!(
            (spec.rate, spec.concurrency, spec.duration),
            (Some(50.0), 5, Some(Duration::from_secs(2)))
        );
        assert_eq!((spec.method, spec.timeout, max_error_rate), (Method::GET, DEFAULT_TIMEOUT, None));
    }

    #[test]
    fn native_load_with_everything() {
        let task = parse(
            &meta(&[
                ("type", "load"),
                ("task", "smoke-load"),
                ("url", "https://podinfo.test/api"),
                ("method", "post"),
                ("headers", "X-A: 1\nX-B: two words\n"),
                ("host", "podinfo.example.com"),
                ("body", "{}"),
                ("concurrency", "3"),
                ("requests", "30"),
                ("timeout", "2s"),
                ("maxErrorRate", "5"),
                ("insecureSkipVerify", "true"),
            ]),
            &Limits::default(),
        )
        .expect("load");
        let Task::Load { task, spec, max_error_rate } = task else { panic!("{task:?}") };
        assert_eq!((task.as_str(), max_error_rate), ("smoke-load", Some(5.0)));
        assert_eq!(
            (spec.method, spec.concurrency, spec.requests, spec.duration),
            (Method::POST, 3, Some(30), None)
        );
        assert_eq!(spec.headers["x-b"], "two words");
        assert_eq!(spec.headers["host"], "podinfo.example.com");
        assert!(spec.insecure);
    }

    #[test]
    fn headers_as_json_or_lines() {
        let json = parse_headers(r#"{"Authorization": "Bearer x", "X-A": "1"}"#).expect("json");
        assert_eq!(json["authorization"], "Bearer x");
        let lines = parse_headers("Authorization: Bearer x\r\nX-A:1").expect("lines");
        assert_eq!(lines["x-a"], "1");
        assert!(parse_headers("no colon").is_err());
        assert!(parse_headers(r#"{"X": 1}"#).is_err());
    }

    #[test]
    fn hey_commands_become_native_loads_with_a_stable_name() {
        let m = meta(&[("cmd", "hey -z 1m -q 10 -c 2 http://podinfo-canary.test:9898/")]);
        let first = parse(&m, &Limits::default()).expect("hey");
        assert_eq!(first, parse(&m, &Limits::default()).expect("hey"));
        let Task::Load { task, spec, .. } = first else { panic!() };
        assert!(task.starts_with("cmd-"));
        assert_eq!(spec.rate, Some(20.0));
    }

    #[test]
    fn shell_tasks_and_errors() {
        let limits = Limits::default();
        let bash = parse(
            &meta(&[("type", "bash"), ("cmd", "curl -s http://x/"), ("returnCmdOutput", "true")]),
            &limits,
        );
        assert!(matches!(
            bash,
            Ok(Task::Shell(ShellTask { mode: ShellMode::Blocking, return_output: true, .. }))
        ));
        let cmd = parse(&meta(&[("cmd", "sleep 1")]), &limits);
        assert!(matches!(cmd, Ok(Task::Shell(ShellTask { mode: ShellMode::Background, .. }))));
        let helm = parse(&meta(&[("type", "helmv3"), ("cmd", "test podinfo -n test")]), &limits);
        assert!(
            matches!(helm, Ok(Task::Shell(ShellTask { ref script, .. })) if script == "helm test podinfo -n test")
        );

        let cases: [(&[(&str, &str)], &str); 7] = [
            (&[("type", "bash")], "metadata.cmd is required"),
            (&[("type", "load"), ("rate", "5")], "metadata.url is required"),
            (
                &[("type", "load"), ("url", "http://x/"), ("rate", "fast"), ("duration", "1s")],
                "metadata.rate",
            ),
            (&[("type", "load"), ("url", "http://x/"), ("rate", "99999"), ("duration", "1s")], "--max-rate"),
            (&[("type", "load"), ("url", "http://x/"), ("duration", "2h")], "--max-duration"),
            (&[("type", "concord")], "unsupported task type \"concord\""),
            (&[("cmd", "hey -Z 1 http://x/")], "unsupported hey flag -Z"),
        ];
        for (pairs, want) in cases {
            let err = parse(&meta(pairs), &limits).expect_err(want).to_string();
            assert!(err.contains(want), "{err:?} should contain {want:?}");
        }
        let err =
            parse(&meta(&[("type", "load-result"), ("maxErrorRate", "150")]), &limits).expect_err("pct");
        assert!(err.to_string().contains("not a percentage"), "{err}");
    }
}
