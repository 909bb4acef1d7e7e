//! Text output of `serin check` and `serin replay`, pure: value and threshold formatting,
//! aligned tables, and the exit codes.

use crate::analysis::prometheus::collapse_whitespace;
use crate::crd::status::{MetricResult, Verdict};

/// `serin check` exit code: every metric passed.
pub const EXIT_PASS: u8 = 0;
/// `serin check` exit code: at least one metric failed (a definite "bad"). For `serin replay`:
/// the analysis would have rolled the canary back.
pub const EXIT_FAIL: u8 = 1;
/// `serin check` exit code: no failure, but a metric had no data or errored (also used when
/// the command could not run at all).
pub const EXIT_INCONCLUSIVE: u8 = 2;

/// One metric's line of the `serin check` table.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckRow {
    /// The result as the controller would record it.
    pub result: MetricResult,
    /// Judged comparatively (value and bounds are canary/primary mean ratios).
    pub comparative: bool,
    /// Why the result is empty, when it is.
    pub hint: Option<String>,
}

/// A number for humans: at most four decimals, no trailing zeros, `-` when absent.
pub fn value(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v.is_nan() => "NaN".into(),
        Some(v) if v.is_infinite() => if v > 0.0 { "+Inf" } else { "-Inf" }.into(),
        Some(v) => {
            let text = format!("{v:.4}");
            let text = text.trim_end_matches('0').trim_end_matches('.');
            if text == "-0" { "0".into() } else { text.to_string() }
        }
    }
}

/// The accepted range: `>= 99`, `<= 500`, `99..101`, or `-` without bounds; comparative
/// bounds are ratios, prefixed `ratio`.
pub fn threshold(min: Option<f64>, max: Option<f64>, comparative: bool) -> String {
    let range = match (min, max) {
        (Some(min), Some(max)) => format!("{}..{}", value(Some(min)), value(Some(max))),
        (Some(min), None) => format!(">= {}", value(Some(min))),
        (None, Some(max)) => format!("<= {}", value(Some(max))),
        (None, None) => return "-".into(),
    };
    if comparative { format!("ratio {range}") } else { range }
}

/// A verdict in words.
pub fn verdict(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "pass",
        Verdict::Fail => "fail",
        Verdict::NoData => "no data",
        Verdict::Error => "error",
    }
}

/// Left-aligned columns separated by two spaces; the last column is not padded.
pub fn align(rows: &[Vec<String>]) -> Vec<String> {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().filter_map(|r| r.get(c)).map(|cell| cell.chars().count()).max().unwrap_or(0))
        .collect();
    rows.iter()
        .map(|row| {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                if c + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    line.push_str(&" ".repeat(widths[c] - cell.chars().count() + 2));
                }
            }
            line.trim_end().to_string()
        })
        .collect()
}

/// The `serin check` table: one line per metric (metric, value, threshold, verdict, rendered
/// query on one line, as it is sent), and under each metric that did not pass its reason
/// (`why:`) and hint (`hint:`).
pub fn check_table(rows: &[CheckRow]) -> String {
    let mut lines = vec![vec![
        "METRIC".to_string(),
        "VALUE".into(),
        "THRESHOLD".into(),
        "VERDICT".into(),
        "QUERY".into(),
    ]];
    for row in rows {
        let r = &row.result;
        lines.push(vec![
            r.name.clone(),
            value(r.value),
            threshold(r.threshold_min, r.threshold_max, row.comparative),
            verdict(r.verdict).into(),
            r.query.as_deref().map_or_else(|| "-".into(), collapse_whitespace),
        ]);
    }
    let aligned = align(&lines);
    let mut out = String::new();
    for (i, line) in aligned.iter().enumerate() {
        out.push_str(line);
        out.push('\n');
        let Some(row) = i.checked_sub(1).and_then(|i| rows.get(i)) else { continue };
        if row.result.verdict != Verdict::Pass
            && let Some(message) = &row.result.message
        {
            out.push_str(&format!("  why:  {message}\n"));
        }
        if let Some(hint) = &row.hint {
            out.push_str(&format!("  hint: {hint}\n"));
        }
    }
    out
}

/// `serin check`'s exit code: [`EXIT_FAIL`] if any metric failed, else
/// [`EXIT_INCONCLUSIVE`] if any had no data or errored (or there were no metrics), else
/// [`EXIT_PASS`].
pub fn check_exit_code(verdicts: &[Verdict]) -> u8 {
    if verdicts.contains(&Verdict::Fail) {
        EXIT_FAIL
    } else if verdicts.is_empty() || verdicts.iter().any(|v| matches!(v, Verdict::NoData | Verdict::Error)) {
        EXIT_INCONCLUSIVE
    } else {
        EXIT_PASS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(
        name: &str,
        v: Option<f64>,
        min: Option<f64>,
        max: Option<f64>,
        verdict: Verdict,
    ) -> MetricResult {
        MetricResult {
            name: name.into(),
            value: v,
            threshold_min: min,
            threshold_max: max,
            verdict,
            query: Some(format!("q_{name}")),
            message: Some(format!("because {name}")),
            time: None,
        }
    }

    #[test]
    fn formats_values_and_thresholds() {
        let cases = [
            (None, "-"),
            (Some(98.0), "98"),
            (Some(99.123456), "99.1235"),
            (Some(0.5), "0.5"),
            (Some(-0.00001), "0"),
            (Some(f64::INFINITY), "+Inf"),
            (Some(f64::NEG_INFINITY), "-Inf"),
            (Some(f64::NAN), "NaN"),
            (Some(1e6), "1000000"),
        ];
        for (v, want) in cases {
            assert_eq!(value(v), want, "{v:?}");
        }
        let cases = [
            (Some(99.0), None, false, ">= 99"),
            (None, Some(500.0), false, "<= 500"),
            (Some(1.0), Some(2.5), false, "1..2.5"),
            (None, None, false, "-"),
            (Some(0.9), Some(1.1), true, "ratio 0.9..1.1"),
            (None, Some(1.1), true, "ratio <= 1.1"),
        ];
        for (min, max, comparative, want) in cases {
            assert_eq!(threshold(min, max, comparative), want);
        }
    }

    #[test]
    fn exit_codes() {
        use Verdict::*;
        let cases: [(&[Verdict], u8); 7] = [
            (&[Pass, Pass], 0),
            (&[Pass, Fail], 1),
            (&[Fail, NoData, Error], 1),
            (&[Pass, NoData], 2),
            (&[Error], 2),
            (&[], 2),
            (&[Pass], 0),
        ];
        for (verdicts, want) in cases {
            assert_eq!(check_exit_code(verdicts), want, "{verdicts:?}");
        }
    }

    #[test]
    fn check_table_aligns_and_explains() {
        let rows = vec![
            CheckRow {
                result: result("request-success-rate", Some(98.0), Some(99.0), None, Verdict::Fail),
                comparative: false,
                hint: None,
            },
            CheckRow {
                result: MetricResult {
                    query: Some("q_\n   lat".into()),
                    ..result("lat", Some(250.0), None, Some(500.0), Verdict::Pass)
                },
                comparative: false,
                hint: None,
            },
            CheckRow {
                result: result("errors", None, None, Some(1.0), Verdict::NoData),
                comparative: false,
                hint: Some("no series of x".into()),
            },
            CheckRow {
                result: result("cmp", Some(1.27), None, Some(1.1), Verdict::Fail),
                comparative: true,
                hint: None,
            },
        ];
        let want = "\
METRIC                VALUE  THRESHOLD     VERDICT  QUERY
request-success-rate  98     >= 99         fail     q_request-success-rate
  why:  because request-success-rate
lat                   250    <= 500        pass     q_ lat
errors                -      <= 1          no data  q_errors
  why:  because errors
  hint: no series of x
cmp                   1.27   ratio <= 1.1  fail     q_cmp
  why:  because cmp
";
        assert_eq!(check_table(&rows), want);
    }
}
