//! Reads a Flagger-style `hey` command line (`hey -z 1m -q 10 -c 2 http://...`) into a native
//! [`LoadSpec`], so existing manifests keep working without a `hey` binary or a shell.
//!
//! Supported flags (hey's meanings and defaults): `-z` duration, `-n` requests (default 200,
//! ignored with `-z`), `-c` workers (default 50), `-q` rate limit **per worker** (total rate
//! = q × c), `-m` method, `-H` header (repeatable), `-d` body, `-T` content type, `-A` accept,
//! `-a user:pass` basic auth, `-U` user agent, `-host` Host header, `-t` timeout seconds
//! (default 20, 0 = the load's maximum), `-disable-keepalive`, `-disable-redirects`,
//! `-disable-compression` (no-op: no compression is requested), `-h2` and `-cpus` (accepted,
//! no effect), `-o csv` (accepted, the summary is always JSON). `-D` (body from a file) and
//! `-x` (proxy) are refused. `-flag=value` and `--flag` forms work as with Go's flag package.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST, HeaderMap, HeaderName, HeaderValue, USER_AGENT,
};
use reqwest::{Method, Url};
use thiserror::Error;

use crate::crd::duration::parse_duration;
use crate::loadtester::load::LoadSpec;

/// A `hey` command line that cannot be run natively.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum HeyError {
    /// Unbalanced quotes or a trailing backslash.
    #[error("cannot split the command: {0}")]
    Quoting(String),
    /// Not a `hey` command.
    #[error("not a hey command: {0:?}")]
    NotHey(String),
    /// A flag hey has but Serin does not run, or one hey does not have.
    #[error("unsupported hey flag {0}")]
    UnknownFlag(String),
    /// A flag without its value.
    #[error("hey flag {0} needs a value")]
    MissingValue(String),
    /// A value that does not parse.
    #[error("hey flag {flag}: invalid value {value:?}: {reason}")]
    BadValue {
        /// The flag.
        flag: String,
        /// Its value.
        value: String,
        /// Why.
        reason: String,
    },
    /// No URL, or more than one.
    #[error("hey needs exactly one URL, got {0}")]
    Url(String),
}

/// Splits a command line like a POSIX shell would for simple commands: whitespace separates
/// words; single quotes keep everything; double quotes keep everything but `\"` and `\\`;
/// a backslash outside quotes escapes the next character. No expansion of any kind.
pub fn split_words(line: &str) -> Result<Vec<String>, HeyError> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(HeyError::Quoting("unclosed single quote".into())),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(HeyError::Quoting("unclosed double quote".into())),
                        },
                        Some(c) => word.push(c),
                        None => return Err(HeyError::Quoting("unclosed double quote".into())),
                    }
                }
            }
            '\\' => match chars.next() {
                Some(c) => {
                    in_word = true;
                    word.push(c);
                }
                None => return Err(HeyError::Quoting("trailing backslash".into())),
            },
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// Whether `cmd` runs `hey` (so it can be run natively).
pub fn is_hey(cmd: &str) -> bool {
    let first = cmd.split_whitespace().next().unwrap_or("");
    first == "hey" || first.ends_with("/hey")
}

fn bad(flag: &str, value: &str, reason: impl ToString) -> HeyError {
    HeyError::BadValue { flag: flag.into(), value: value.into(), reason: reason.to_string() }
}

fn header(map: &mut HeaderMap, flag: &str, name: HeaderName, value: &str) -> Result<(), HeyError> {
    let value = HeaderValue::from_str(value).map_err(|e| bad(flag, value, e))?;
    map.insert(name, value);
    Ok(())
}

/// Parses a `hey` command line into a load. `max_duration` replaces hey's "no timeout" (`-t 0`).
pub fn parse(cmd: &str, max_duration: Duration) -> Result<LoadSpec, HeyError> {
    let words = split_words(cmd)?;
    let mut words = words.into_iter();
    match words.next() {
        Some(program) if program == "hey" || program.ends_with("/hey") => {}
        _ => return Err(HeyError::NotHey(cmd.to_string())),
    }
    let mut method = Method::GET;
    let mut headers = HeaderMap::new();
    let mut body = None;
    let mut requests: u64 = 200;
    let mut workers: u32 = 50;
    let mut per_worker_rate: f64 = 0.0;
    let mut duration = None;
    let mut timeout = Duration::from_secs(20);
    let mut disable_keepalive = false;
    let mut disable_redirects = false;
    let mut urls = Vec::new();
    let mut content_type = "text/html".to_string();

    while let Some(word) = words.next() {
        if !word.starts_with('-') || word == "-" {
            urls.push(word);
            continue;
        }
        let trimmed = word.trim_start_matches('-');
        let (flag, inline) = match trimmed.split_once('=') {
            Some((flag, value)) => (format!("-{flag}"), Some(value.to_string())),
            None => (format!("-{trimmed}"), None),
        };
        let boolean = matches!(
            flag.as_str(),
            "-disable-keepalive" | "-disable-redirects" | "-disable-compression" | "-h2"
        );
        if boolean {
            let on = match inline.as_deref() {
                None | Some("true") | Some("1") => true,
                Some("false") | Some("0") => false,
                Some(other) => return Err(bad(&flag, other, "expected true or false")),
            };
            match flag.as_str() {
                "-disable-keepalive" => disable_keepalive = on,
                "-disable-redirects" => disable_redirects = on,
                _ => {}
            }
            continue;
        }
        let known =
            ["-z", "-n", "-c", "-q", "-m", "-H", "-d", "-T", "-A", "-a", "-U", "-host", "-t", "-cpus", "-o"];
        if !known.contains(&flag.as_str()) {
            return Err(HeyError::UnknownFlag(flag));
        }
        let value = match inline {
            Some(value) => value,
            None => words.next().ok_or_else(|| HeyError::MissingValue(flag.clone()))?,
        };
        match flag.as_str() {
            "-z" => duration = Some(parse_duration(&value).map_err(|e| bad(&flag, &value, e))?),
            "-n" => requests = value.parse().map_err(|e| bad(&flag, &value, e))?,
            "-c" => workers = value.parse().map_err(|e| bad(&flag, &value, e))?,
            "-q" => {
                per_worker_rate = value.parse().map_err(|e| bad(&flag, &value, e))?;
                if !(per_worker_rate.is_finite() && per_worker_rate >= 0.0) {
                    return Err(bad(&flag, &value, "must be 0 or more"));
                }
            }
            "-m" => {
                method =
                    Method::from_bytes(value.to_uppercase().as_bytes()).map_err(|e| bad(&flag, &value, e))?
            }
            "-H" => {
                let (name, val) =
                    value.split_once(':').ok_or_else(|| bad(&flag, &value, "expected 'Name: value'"))?;
                let name =
                    HeaderName::from_bytes(name.trim().as_bytes()).map_err(|e| bad(&flag, &value, e))?;
                let val = HeaderValue::from_str(val.trim()).map_err(|e| bad(&flag, &value, e))?;
                headers.append(name, val);
            }
            "-d" => body = Some(value),
            "-T" => content_type = value,
            "-A" => header(&mut headers, &flag, ACCEPT, &value)?,
            "-U" => header(&mut headers, &flag, USER_AGENT, &value)?,
            "-host" => header(&mut headers, &flag, HOST, &value)?,
            "-a" => {
                if !value.contains(':') {
                    return Err(bad(&flag, &value, "expected user:password"));
                }
                header(
                    &mut headers,
                    &flag,
                    AUTHORIZATION,
                    &format!("Basic {}", STANDARD.encode(value.as_bytes())),
                )?;
            }
            "-t" => {
                let seconds: u64 = value.parse().map_err(|e| bad(&flag, &value, e))?;
                timeout = if seconds == 0 { max_duration } else { Duration::from_secs(seconds) };
            }
            "-cpus" => {
                value.parse::<u32>().map_err(|e| bad(&flag, &value, e))?;
            }
            "-o" if value == "csv" => {}
            "-o" => return Err(bad(&flag, &value, "only csv is known")),
            _ => return Err(HeyError::UnknownFlag(flag)),
        }
    }
    if !headers.contains_key(CONTENT_TYPE) {
        header(&mut headers, "-T", CONTENT_TYPE, &content_type)?;
    }
    let url = match urls.as_slice() {
        [url] => Url::parse(url).map_err(|e| bad("url", url, e))?,
        [] => return Err(HeyError::Url("none".into())),
        many => return Err(HeyError::Url(many.join(" "))),
    };
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("url", url.as_str(), "only http and https"));
    }
    if workers == 0 {
        return Err(bad("-c", "0", "must be at least 1"));
    }
    // hey: -n is split across workers and must be at least -c; with -z, -n is ignored.
    if duration.is_none() && requests < u64::from(workers) {
        return Err(bad("-n", &requests.to_string(), "cannot be less than -c"));
    }
    Ok(LoadSpec {
        url,
        method,
        headers,
        body,
        rate: (per_worker_rate > 0.0).then(|| per_worker_rate * f64::from(workers)),
        concurrency: workers,
        requests: if duration.is_some() { None } else { Some(requests) },
        duration,
        timeout,
        disable_keepalive,
        disable_redirects,
        insecure: true, // hey skips certificate verification
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: Duration = Duration::from_secs(3600);

    #[test]
    fn splits_like_a_shell() {
        let cases: [(&str, &[&str]); 5] = [
            ("hey -z 1m http://x/", &["hey", "-z", "1m", "http://x/"]),
            ("hey -H 'X-A: b c' -d \"{\\\"k\\\": 1}\"", &["hey", "-H", "X-A: b c", "-d", "{\"k\": 1}"]),
            ("  a\\ b  ''  ", &["a b", ""]),
            ("a\"b c\"d", &["ab cd"]),
            ("", &[]),
        ];
        for (line, want) in cases {
            assert_eq!(split_words(line).expect(line), want, "{line}");
        }
        assert!(split_words("hey 'open").is_err());
        assert!(split_words("hey \"open").is_err());
        assert!(split_words("hey \\").is_err());
    }

    #[test]
    fn flagger_example_commands() {
        // (command, rate, concurrency, duration, requests, method)
        type Case = (&'static str, Option<f64>, u32, Option<u64>, Option<u64>, Method);
        let cases: [Case; 6] = [
            (
                "hey -z 1m -q 10 -c 2 http://podinfo-canary.test:9898/",
                Some(20.0),
                2,
                Some(60),
                None,
                Method::GET,
            ),
            (
                "hey -z 2m -q 5 -c 2 -m POST -d '{\"a\":1}' http://x/api",
                Some(10.0),
                2,
                Some(120),
                None,
                Method::POST,
            ),
            ("/usr/local/bin/hey -z=30s -c=4 http://x/", None, 4, Some(30), None, Method::GET),
            ("hey -n 100 -c 10 http://x/", None, 10, None, Some(100), Method::GET),
            ("hey --z 10s --c 1 --q 3 -m get http://x/", Some(3.0), 1, Some(10), None, Method::GET),
            ("hey http://x/", None, 50, None, Some(200), Method::GET),
        ];
        for (cmd, rate, concurrency, duration, requests, method) in cases {
            let spec = parse(cmd, MAX).expect(cmd);
            assert_eq!(spec.rate, rate, "{cmd}");
            assert_eq!(spec.concurrency, concurrency, "{cmd}");
            assert_eq!(spec.duration, duration.map(Duration::from_secs), "{cmd}");
            assert_eq!(spec.requests, requests, "{cmd}");
            assert_eq!(spec.method, method, "{cmd}");
        }
    }

    #[test]
    fn headers_host_body_auth_and_switches() {
        let spec = parse(
            "hey -z 5s -H 'X-Canary: insider' -H 'X-Canary: second' -host podinfo.example.com -T application/json \
             -a user:pass -A text/plain -t 3 -disable-keepalive -disable-redirects -h2 -cpus 2 -o csv \
             -d 'hello' https://podinfo.test/",
            MAX,
        )
        .expect("parses");
        let all: Vec<_> = spec.headers.get_all("x-canary").iter().collect();
        assert_eq!(all, ["insider", "second"]);
        assert_eq!(spec.headers["host"], "podinfo.example.com");
        assert_eq!(spec.headers["content-type"], "application/json");
        assert_eq!(spec.headers["authorization"], "Basic dXNlcjpwYXNz");
        assert_eq!(spec.headers["accept"], "text/plain");
        assert_eq!(spec.body.as_deref(), Some("hello"));
        assert_eq!(spec.timeout, Duration::from_secs(3));
        assert!(spec.disable_keepalive && spec.disable_redirects && spec.insecure);
        assert_eq!(spec.url.as_str(), "https://podinfo.test/");
        assert_eq!(parse("hey -t 0 -z 1s http://x/", MAX).expect("t0").timeout, MAX);
        assert_eq!(parse("hey -z 1s http://x/", MAX).expect("default").headers["content-type"], "text/html");
    }

    #[test]
    fn errors_name_the_flag() {
        let cases = [
            ("hey -z 1m -x http://proxy:3128 http://x/", "unsupported hey flag -x"),
            ("hey -D body.json http://x/", "unsupported hey flag -D"),
            ("hey -z 1m -bogus http://x/", "unsupported hey flag -bogus"),
            ("hey -z", "hey flag -z needs a value"),
            ("hey -z forever http://x/", "hey flag -z: invalid value \"forever\""),
            ("hey -c two http://x/", "hey flag -c: invalid value \"two\""),
            ("hey -z 1m", "hey needs exactly one URL, got none"),
            ("hey -z 1m http://a/ http://b/", "hey needs exactly one URL, got http://a/ http://b/"),
            ("hey -n 5 -c 10 http://x/", "hey flag -n: invalid value \"5\": cannot be less than -c"),
            ("hey -z 1m ftp://x/", "only http and https"),
            ("curl http://x/", "not a hey command"),
            ("hey -H 'NoColon' http://x/", "expected 'Name: value'"),
        ];
        for (cmd, want) in cases {
            let err = parse(cmd, MAX).expect_err(cmd).to_string();
            assert!(err.contains(want), "{cmd}: {err:?} does not contain {want:?}");
        }
    }

    #[test]
    fn recognises_hey_commands() {
        assert!(is_hey("hey -z 1m http://x/") && is_hey("  /bin/hey http://x/"));
        assert!(!is_hey("heyyou") && !is_hey("curl http://x/") && !is_hey(""));
    }
}
