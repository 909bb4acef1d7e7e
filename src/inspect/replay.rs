//! `serin replay`: what the analysis would have decided over a past window. Every evaluation
//! time from `--from` to `--to`, `--step` apart (default: the Canary's `analysis.interval`),
//! runs each metric check as the controller would have at that moment — instant queries
//! evaluated at that time, comparative range windows ending there — and feeds the results to
//! the pure model in `decision`.

use std::time::Duration;

use futures::future::join_all;
use thiserror::Error;
use tracing::debug;

use super::backends::CliBackends;
use super::check::{Options, prepare_all, provider_of, unprepared};
use super::decision::{Decision, Simulation, tick_outcome};
use super::source::Loaded;
use super::table::{self, align};
use crate::analysis::run::{At, measure};
use crate::crd::duration::parse_duration;
use crate::crd::status::MetricResult;
use crate::rollout::{Timestamp, interval};

/// Most evaluation times one replay runs (a day at 10 s steps is 8640).
pub const MAX_TICKS: i64 = 10_000;

/// Why a replay cannot run.
#[derive(Debug, Error, PartialEq)]
pub enum ReplayError {
    /// `--from`/`--to` is not a time.
    #[error("{0:?} is not a time: use RFC 3339 (2024-05-01T10:00:00Z), Unix seconds, now or now-DURATION")]
    Time(String),
    /// The window is empty or reversed.
    #[error("--from must be before --to")]
    Window,
    /// The step is not a positive duration.
    #[error("--step: {0}")]
    Step(String),
    /// Too many evaluation times.
    #[error("{0} evaluation times; at most {MAX_TICKS}: use a larger --step or a shorter window")]
    TooMany(i64),
}

/// Parses `--from`/`--to`: RFC 3339, Unix seconds, `now`, or `now-DURATION` (Go duration).
pub fn parse_time(text: &str, now_unix: i64) -> Result<i64, ReplayError> {
    let text = text.trim();
    let bad = || ReplayError::Time(text.to_string());
    if text == "now" {
        return Ok(now_unix);
    }
    if let Some(ago) = text.strip_prefix("now-") {
        let ago = parse_duration(ago).map_err(|_| bad())?;
        return i64::try_from(ago.as_secs()).map(|s| now_unix - s).map_err(|_| bad());
    }
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().map_err(|_| bad());
    }
    text.parse::<Timestamp>().map(|t| t.as_second()).map_err(|_| bad())
}

/// The evaluation times: `from`, `from + step`, … up to and including `to`.
pub fn ticks(from: i64, to: i64, step: Duration) -> Result<Vec<i64>, ReplayError> {
    if from >= to {
        return Err(ReplayError::Window);
    }
    let step = i64::try_from(step.as_secs()).unwrap_or(i64::MAX);
    if step <= 0 {
        return Err(ReplayError::Step("must be at least 1s".into()));
    }
    let count = (to - from) / step + 1;
    if count > MAX_TICKS {
        return Err(ReplayError::TooMany(count));
    }
    Ok((0..count).map(|i| from + i * step).collect())
}

/// One evaluation time.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplayTick {
    /// Unix seconds.
    pub time: i64,
    /// The canary weight during this tick.
    pub weight: i32,
    /// Each metric's result, in spec order.
    pub results: Vec<MetricResult>,
    /// What the analysis decides.
    pub decision: Decision,
}

/// The replay of a window.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplayReport {
    /// The metric names, in spec order.
    pub metrics: Vec<String>,
    /// Every evaluation time.
    pub ticks: Vec<ReplayTick>,
}

impl ReplayReport {
    /// The tick that would have rolled the canary back, if any.
    pub fn rollback(&self) -> Option<&ReplayTick> {
        self.ticks.iter().find(|t| matches!(t.decision, Decision::RollBack(_)))
    }

    /// The tick that would have promoted it, if any.
    pub fn promotion(&self) -> Option<&ReplayTick> {
        self.ticks.iter().find(|t| t.decision == Decision::Promote)
    }

    /// One sentence: where the run would have ended.
    pub fn summary(&self) -> String {
        if let Some(t) = self.rollback() {
            let why = match t.decision {
                Decision::RollBack(cause) => cause.to_string(),
                _ => String::new(),
            };
            format!("would have rolled back at {} at weight {}: {why}", rfc3339(t.time), t.weight)
        } else if let Some(t) = self.promotion() {
            format!("would have promoted at {}", rfc3339(t.time))
        } else {
            let weight = self.ticks.last().map_or(0, |t| t.weight);
            format!("still progressing at the end of the window (weight {weight}), no rollback")
        }
    }

    /// The table: time, weight, `value verdict` per metric, decision; then the summary.
    pub fn render(&self) -> String {
        let mut rows = vec![["TIME", "WEIGHT"].iter().map(ToString::to_string).collect::<Vec<String>>()];
        rows[0].extend(self.metrics.iter().cloned());
        rows[0].push("DECISION".into());
        for tick in &self.ticks {
            let mut row = vec![rfc3339(tick.time), tick.weight.to_string()];
            row.extend(
                tick.results
                    .iter()
                    .map(|r| format!("{} {}", table::value(r.value), table::verdict(r.verdict))),
            );
            row.push(tick.decision.to_string());
            rows.push(row);
        }
        let mut out = align(&rows).join("\n");
        out.push_str(&format!("\n\n{}\n", self.summary()));
        out
    }
}

fn rfc3339(unix: i64) -> String {
    Timestamp::from_second(unix).map_or_else(|_| unix.to_string(), |t| t.to_string())
}

/// The step of a replay: `--step`, else the Canary's `analysis.interval`.
pub fn step_of(loaded: &Loaded, step: Option<&str>) -> Result<Duration, ReplayError> {
    match step {
        Some(text) => parse_duration(text).map_err(|e| ReplayError::Step(e.to_string())),
        None => Ok(interval(&loaded.canary.spec)),
    }
}

/// Replays the Canary's analysis at each of `times`.
pub async fn replay(loaded: &Loaded, options: &Options, times: &[i64]) -> ReplayReport {
    let backends = CliBackends::new(options.prometheus.clone(), loaded.secrets.clone());
    let prepared = prepare_all(loaded, options);
    let spec = &loaded.canary.spec;
    let mut simulation = Simulation::new(spec, provider_of(loaded, options));
    let mut ticks = Vec::with_capacity(times.len());
    for &time in times {
        let runs = prepared.iter().map(|(check, prepared)| {
            let backends = &backends;
            async move {
                match prepared {
                    Ok(p) => measure(p.clone(), backends, At::Past(time)).await.result,
                    Err(reason) => unprepared(check, reason),
                }
            }
        });
        let results = join_all(runs).await;
        let weight = simulation.weight();
        let decision = simulation.step(spec, time, tick_outcome(spec, &results));
        debug!(time, weight, %decision, "replayed tick");
        ticks.push(ReplayTick { time, weight, results, decision });
    }
    ReplayReport { metrics: prepared.iter().map(|(c, _)| c.name.clone()).collect(), ticks }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_times() {
        let now = 1_700_000_000;
        let cases: [(&str, Result<i64, ReplayError>); 7] = [
            ("now", Ok(now)),
            ("now-1h", Ok(now - 3600)),
            ("now-1m30s", Ok(now - 90)),
            ("1699990000", Ok(1_699_990_000)),
            ("2023-11-14T22:13:20Z", Ok(1_700_000_000)),
            ("2023-11-14T23:13:20+01:00", Ok(1_700_000_000)),
            ("yesterday", Err(ReplayError::Time("yesterday".into()))),
        ];
        for (text, want) in cases {
            assert_eq!(parse_time(text, now), want, "{text}");
        }
        assert_eq!(parse_time("now-xyz", now), Err(ReplayError::Time("now-xyz".into())));
    }

    #[test]
    fn evaluation_times() {
        assert_eq!(ticks(0, 180, Duration::from_secs(60)), Ok(vec![0, 60, 120, 180]));
        assert_eq!(ticks(0, 179, Duration::from_secs(60)), Ok(vec![0, 60, 120]));
        assert_eq!(ticks(10, 10, Duration::from_secs(60)), Err(ReplayError::Window));
        assert_eq!(
            ticks(0, 10, Duration::from_millis(500)),
            Err(ReplayError::Step("must be at least 1s".into()))
        );
        assert_eq!(ticks(0, 1_000_000, Duration::from_secs(1)), Err(ReplayError::TooMany(1_000_001)));
    }
}
