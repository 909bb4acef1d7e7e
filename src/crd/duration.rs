//! Go-style durations (`30s`, `1m`, `1m30s`, `250ms`, `1.5h`) as Flagger manifests write them.

use std::time::Duration;

use thiserror::Error;

/// A duration string that could not be read.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DurationError {
    /// Nothing to parse.
    #[error("empty duration")]
    Empty,
    /// A number without a unit, an unknown unit, or stray characters.
    #[error("invalid duration {0:?}: expected a number and unit (ms, s, m, h), e.g. 30s or 1m30s")]
    Invalid(String),
    /// Larger than Serin accepts (one year).
    #[error("duration {0:?} is too long")]
    TooLong(String),
}

const MAX: Duration = Duration::from_secs(365 * 24 * 3600);

/// Parses a Go-style duration made of `<number><unit>` parts, units `ms`, `s`, `m`, `h`.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    let invalid = || DurationError::Invalid(text.to_string());
    let mut total = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(invalid)?;
        if number_len == 0 {
            return Err(invalid());
        }
        let number: f64 = rest[..number_len].parse().map_err(|_| invalid())?;
        rest = &rest[number_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(invalid()),
        };
        rest = &rest[unit_len..];
        total += number * seconds_per_unit;
    }
    if total > MAX.as_secs_f64() {
        return Err(DurationError::TooLong(text.to_string()));
    }
    Ok(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        let cases = [
            ("30s", Duration::from_secs(30)),
            ("1m", Duration::from_secs(60)),
            ("1m30s", Duration::from_secs(90)),
            ("2h", Duration::from_secs(7200)),
            ("250ms", Duration::from_millis(250)),
            ("1.5s", Duration::from_millis(1500)),
            ("0s", Duration::ZERO),
        ];
        for (text, want) in cases {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn rejects_malformed_durations() {
        for text in ["", "10", "s", "1x", "1m30", "m1", "1..5s", "-1s", "1 m"] {
            assert!(parse_duration(text).is_err(), "{text:?} should be rejected");
        }
        assert_eq!(parse_duration("9000h"), Err(DurationError::TooLong("9000h".into())));
    }
}
