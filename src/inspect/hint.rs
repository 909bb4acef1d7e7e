//! Why a query returned nothing, pure: the series selectors of a PromQL query
//! ([`selectors`]), and a hint built from what the backend says exists for those metrics
//! ([`Evidence`], gathered by `check` with the labels and label-values APIs), e.g.
//! `destination_workload=~"podinfo" matches none of the values of istio_requests_total's
//! label destination_workload: "frontend", "podinfo-primary"`.
//!
//! The selector scanner is not a PromQL parser: it finds `metric{matchers}` and
//! `{__name__="metric", …}` selectors and skips function names, aggregation operators and
//! their `by (…)`/`without (…)`/`on (…)` label lists, strings, numbers and `[…]` ranges. A
//! construct it does not understand yields fewer selectors (a less precise hint), never an error.

use std::collections::BTreeMap;
use std::fmt;

/// How many label values a hint lists before "… and N more".
const MAX_LISTED: usize = 8;

/// A label matcher's operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchOp {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~` (fully anchored RE2 regex)
    Regex,
    /// `!~`
    NotRegex,
}

impl MatchOp {
    fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        }
    }
}

/// One `label op "value"` of a selector (the value unescaped).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Matcher {
    /// Label name.
    pub label: String,
    /// Operator.
    pub op: MatchOp,
    /// Value or regex, unescaped.
    pub value: String,
}

impl Matcher {
    /// Whether a series whose label has `value` ("" when the label is absent) is selected.
    /// An invalid regex matches nothing (Prometheus would have rejected the query anyway).
    pub fn matches(&self, value: &str) -> bool {
        let regex = || regex::Regex::new(&format!("^(?:{})$", self.value)).map(|r| r.is_match(value));
        match self.op {
            MatchOp::Equal => self.value == value,
            MatchOp::NotEqual => self.value != value,
            MatchOp::Regex => regex().unwrap_or(false),
            MatchOp::NotRegex => regex().map(|m| !m).unwrap_or(false),
        }
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{:?}", self.label, self.op.as_str(), self.value)
    }
}

/// A series selector: a metric name and its label matchers (without `__name__`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selector {
    /// The metric name.
    pub metric: String,
    /// The label matchers, in query order.
    pub matchers: Vec<Matcher>,
}

impl fmt::Display for Selector {
    /// PromQL: `metric{a="1",b=~"x.*"}`, usable as a `match[]` argument.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.metric)?;
        if self.matchers.is_empty() {
            return Ok(());
        }
        let parts: Vec<String> = self.matchers.iter().map(ToString::to_string).collect();
        write!(f, "{{{}}}", parts.join(","))
    }
}

/// Words that are never metric names: aggregation operators, keywords, set operators.
const NOT_METRICS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
    "and",
    "or",
    "unless",
    "atan2",
    "inf",
    "nan",
];

/// Keywords followed by a parenthesised label list to skip.
const LABEL_LISTS: &[&str] = &["by", "without", "on", "ignoring", "group_left", "group_right"];

struct Scanner {
    chars: Vec<char>,
    pos: usize,
}

impl Scanner {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn word(&mut self) -> String {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            self.pos += 1;
        }
        self.chars[start..self.pos].iter().collect()
    }

    /// Reads a quoted string at the cursor, unescaping `\"`, `\\`, `\n`, `\t`; other escapes
    /// stay as written (so regex escapes survive).
    fn string(&mut self) -> Option<String> {
        let quote = self.peek()?;
        self.pos += 1;
        let mut out = String::new();
        while let Some(c) = self.peek() {
            self.pos += 1;
            if c == quote {
                return Some(out);
            }
            if c == '\\' && quote != '`' {
                let next = self.peek()?;
                self.pos += 1;
                match next {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    '"' | '\'' | '\\' => out.push(next),
                    other => {
                        out.push('\\');
                        out.push(other);
                    }
                }
            } else {
                out.push(c);
            }
        }
        None
    }

    /// Skips a balanced `(…)` or `[…]` at the cursor.
    fn skip_group(&mut self, open: char, close: char) {
        let mut depth = 0usize;
        while let Some(c) = self.peek() {
            if c == '"' || c == '\'' || c == '`' {
                let _ = self.string();
                continue;
            }
            self.pos += 1;
            if c == open {
                depth += 1;
            } else if c == close {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return;
                }
            }
        }
    }

    /// Reads `{…}` matchers at the cursor; `None` if they cannot be read.
    fn matchers(&mut self) -> Option<Vec<Matcher>> {
        self.pos += 1; // '{'
        let mut matchers = Vec::new();
        loop {
            self.skip_space();
            match self.peek()? {
                '}' => {
                    self.pos += 1;
                    return Some(matchers);
                }
                ',' => {
                    self.pos += 1;
                    continue;
                }
                _ => {}
            }
            let label = self.word();
            if label.is_empty() {
                return None;
            }
            self.skip_space();
            let op = match (self.peek()?, self.chars.get(self.pos + 1).copied()) {
                ('=', Some('~')) => MatchOp::Regex,
                ('!', Some('=')) => MatchOp::NotEqual,
                ('!', Some('~')) => MatchOp::NotRegex,
                ('=', _) => MatchOp::Equal,
                _ => return None,
            };
            self.pos += if op == MatchOp::Equal { 1 } else { 2 };
            self.skip_space();
            let value = self.string()?;
            matchers.push(Matcher { label, op, value });
        }
    }
}

/// The series selectors of a query, in order, without duplicates.
pub fn selectors(query: &str) -> Vec<Selector> {
    let mut s = Scanner { chars: query.chars().collect(), pos: 0 };
    let mut found: Vec<Selector> = Vec::new();
    while let Some(c) = s.peek() {
        if c == '"' || c == '\'' || c == '`' {
            let _ = s.string();
        } else if c == '[' {
            s.skip_group('[', ']');
        } else if c.is_ascii_digit() || c == '.' {
            // Numbers and durations (`5m`, `1e3`, `0x1f`).
            while s.peek().is_some_and(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_') {
                s.pos += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let word = s.word();
            s.skip_space();
            let next = s.peek();
            if LABEL_LISTS.contains(&word.as_str()) {
                if next == Some('(') {
                    s.skip_group('(', ')');
                }
            } else if next == Some('(') || NOT_METRICS.contains(&word.as_str()) {
                // A function call or an operator keyword.
            } else if next == Some('{') {
                if let Some(matchers) = s.matchers() {
                    push(&mut found, Selector { metric: word, matchers });
                }
            } else {
                push(&mut found, Selector { metric: word, matchers: Vec::new() });
            }
        } else if c == '{' {
            if let Some(mut matchers) = s.matchers() {
                let name = matchers.iter().position(|m| m.label == "__name__" && m.op == MatchOp::Equal);
                if let Some(i) = name {
                    let metric = matchers.remove(i).value;
                    push(&mut found, Selector { metric, matchers });
                }
            }
        } else {
            s.pos += 1;
        }
    }
    found
}

fn push(found: &mut Vec<Selector>, selector: Selector) {
    if !found.contains(&selector) {
        found.push(selector);
    }
}

/// What the backend knows about one selector's metric over the look-back window.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Evidence {
    /// Label names of the metric's series (empty: the metric has no series at all).
    pub label_names: Vec<String>,
    /// Values of each label the selector matches on, over the metric's series.
    pub values: BTreeMap<String, Vec<String>>,
    /// Whether the whole selector matches at least one series.
    pub selector_matches: bool,
}

fn list(values: &[String]) -> String {
    let mut shown: Vec<String> = values.iter().take(MAX_LISTED).map(|v| format!("{v:?}")).collect();
    if values.len() > MAX_LISTED {
        shown.push(format!("… and {} more", values.len() - MAX_LISTED));
    }
    shown.join(", ")
}

/// The hint for one selector, or `None` when the selector matches series (then the emptiness
/// comes from the rest of the query). `lookback` names the window searched, e.g. `1h`.
pub fn selector_hint(selector: &Selector, evidence: &Evidence, lookback: &str) -> Option<String> {
    if evidence.selector_matches {
        return None;
    }
    let metric = &selector.metric;
    if evidence.label_names.is_empty() {
        return Some(format!(
            "no series of {metric} in the last {lookback}: check the metric name and that its exporter is scraped"
        ));
    }
    let mut problems = Vec::new();
    for matcher in &selector.matchers {
        let present = evidence.label_names.contains(&matcher.label);
        let values = evidence.values.get(&matcher.label).cloned().unwrap_or_default();
        // A series without the label has the value "".
        let candidates: Vec<&str> =
            if present { values.iter().map(String::as_str).collect() } else { vec![""] };
        if candidates.iter().any(|v| matcher.matches(v)) {
            continue;
        }
        problems.push(if present {
            format!("{matcher} matches none of {metric}'s values of {}: {}", matcher.label, list(&values))
        } else {
            format!(
                "{metric} has no label {} (its labels are: {})",
                matcher.label,
                evidence.label_names.join(", ")
            )
        });
    }
    Some(if problems.is_empty() {
        format!(
            "no series of {metric} matches {selector} although each matcher alone matches some; \
             the combination does not exist in the last {lookback}"
        )
    } else {
        format!("no series match {selector}: {}", problems.join("; "))
    })
}

/// The hint for a query that returned no series, from each selector's evidence (same order
/// as [`selectors`]).
pub fn empty_hint(selectors: &[Selector], evidence: &[Evidence], lookback: &str) -> String {
    if selectors.is_empty() {
        return "the query has no series selector Serin could find; run it in the Prometheus UI".into();
    }
    let hints: Vec<String> = selectors
        .iter()
        .zip(evidence)
        .filter_map(|(selector, evidence)| selector_hint(selector, evidence, lookback))
        .collect();
    if hints.is_empty() {
        return "every selector matches series, so the emptiness comes from the query itself: a range \
                shorter than two scrape intervals, series that stopped inside the window, or a binary \
                operator or aggregation whose sides share no labels"
            .into();
    }
    hints.join("; ")
}

/// The hint for a NaN result.
pub fn nan_hint() -> &'static str {
    "NaN is usually 0/0: the selectors match, but no requests (no counter increase) in the window; \
     send traffic to the canary, or lengthen the metric's interval"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(label: &str, op: MatchOp, value: &str) -> Matcher {
        Matcher { label: label.into(), op, value: value.into() }
    }

    fn sel(metric: &str, matchers: Vec<Matcher>) -> Selector {
        Selector { metric: metric.into(), matchers }
    }

    #[test]
    fn finds_the_selectors_of_builtin_style_queries() {
        use MatchOp::*;
        let cases: Vec<(&str, Vec<Selector>)> = vec![
            ("up", vec![sel("up", vec![])]),
            ("vector(1)", vec![]),
            (
                r#"sum(rate(istio_requests_total{reporter="destination",destination_workload=~"podinfo",response_code!~"5.*"}[1m])) / sum(rate(istio_requests_total{reporter="destination"}[1m])) * 100"#,
                vec![
                    sel(
                        "istio_requests_total",
                        vec![
                            m("reporter", Equal, "destination"),
                            m("destination_workload", Regex, "podinfo"),
                            m("response_code", NotRegex, "5.*"),
                        ],
                    ),
                    sel("istio_requests_total", vec![m("reporter", Equal, "destination")]),
                ],
            ),
            (
                r#"histogram_quantile(0.99, sum by (le) (rate(lat_bucket{app!="x"}[5m] offset 1m)))"#,
                vec![sel("lat_bucket", vec![m("app", NotEqual, "x")])],
            ),
            (
                r#"sum(rate(a[1m])) by (pod) / on(pod) group_left(node) b{job="k"} > bool 0.5"#,
                vec![sel("a", vec![]), sel("b", vec![m("job", Equal, "k")])],
            ),
            (r#"{__name__="c", x='y'}"#, vec![sel("c", vec![m("x", Equal, "y")])]),
            (
                r#"d{path=~"/api/\\.+", q="say \"hi\""}"#,
                vec![sel("d", vec![m("path", Regex, r"/api/\.+"), m("q", Equal, "say \"hi\"")])],
            ),
            ("e and e", vec![sel("e", vec![])]),
            (r#"label_replace(f, "dst", "$1", "src", "(.*)")"#, vec![sel("f", vec![])]),
            (r#"g{broken="#, vec![]),
        ];
        for (query, want) in cases {
            assert_eq!(selectors(query), want, "{query}");
        }
    }

    #[test]
    fn matchers_follow_promql_semantics() {
        use MatchOp::*;
        let cases = [
            (m("a", Equal, "x"), "x", true),
            (m("a", Equal, "x"), "xy", false),
            (m("a", NotEqual, "x"), "", true),
            (m("a", Regex, "pod.*"), "podinfo", true),
            (m("a", Regex, "pod"), "podinfo", false), // anchored
            (m("a", Regex, "5.*"), "503", true),
            (m("a", NotRegex, "5.*"), "200", true),
            (m("a", NotRegex, "5.*"), "500", false),
            (m("a", Regex, "("), "(", false), // invalid regex matches nothing
            (m("a", NotRegex, "("), "x", false),
        ];
        for (matcher, value, want) in cases {
            assert_eq!(matcher.matches(value), want, "{matcher} on {value:?}");
        }
        let s = sel("x", vec![m("a", Regex, "b.*"), m("c", Equal, "\"q\"")]);
        assert_eq!(s.to_string(), r#"x{a=~"b.*",c="\"q\""}"#);
    }

    #[test]
    fn hints_name_the_matcher_that_matches_nothing() {
        use MatchOp::*;
        let selector = sel(
            "istio_requests_total",
            vec![m("reporter", Equal, "destination"), m("destination_workload", Regex, "podinfo")],
        );
        let names = vec!["__name__".to_string(), "destination_workload".into(), "reporter".into()];
        let values = BTreeMap::from([
            ("reporter".to_string(), vec!["destination".to_string(), "source".into()]),
            ("destination_workload".to_string(), vec!["frontend".to_string(), "podinfo-primary".into()]),
        ]);
        let evidence = |label_names: Vec<String>, values: BTreeMap<String, Vec<String>>, selector_matches| {
            Evidence { label_names, values, selector_matches }
        };
        let many: Vec<String> = (0..10).map(|i| format!("w{i}")).collect();
        let cases: Vec<(&str, Evidence, Option<String>)> = vec![
            ("selector matches", evidence(names.clone(), values.clone(), true), None),
            (
                "metric absent",
                evidence(vec![], BTreeMap::new(), false),
                Some("no series of istio_requests_total in the last 1h: check the metric name and that its exporter is scraped".into()),
            ),
            (
                "value absent",
                evidence(names.clone(), values.clone(), false),
                Some(r#"no series match istio_requests_total{reporter="destination",destination_workload=~"podinfo"}: destination_workload=~"podinfo" matches none of istio_requests_total's values of destination_workload: "frontend", "podinfo-primary""#.into()),
            ),
            (
                "label absent",
                evidence(vec!["__name__".into(), "reporter".into()], values.clone(), false),
                Some(r#"no series match istio_requests_total{reporter="destination",destination_workload=~"podinfo"}: istio_requests_total has no label destination_workload (its labels are: __name__, reporter)"#.into()),
            ),
            (
                "long value list is cut",
                evidence(names.clone(), BTreeMap::from([("reporter".to_string(), vec!["destination".into()]), ("destination_workload".to_string(), many)]), false),
                Some(r#"no series match istio_requests_total{reporter="destination",destination_workload=~"podinfo"}: destination_workload=~"podinfo" matches none of istio_requests_total's values of destination_workload: "w0", "w1", "w2", "w3", "w4", "w5", "w6", "w7", … and 2 more"#.into()),
            ),
            (
                "combination absent",
                evidence(names.clone(), BTreeMap::from([("reporter".to_string(), vec!["destination".into()]), ("destination_workload".to_string(), vec!["podinfo".into()])]), false),
                Some(r#"no series of istio_requests_total matches istio_requests_total{reporter="destination",destination_workload=~"podinfo"} although each matcher alone matches some; the combination does not exist in the last 1h"#.into()),
            ),
        ];
        for (name, evidence, want) in cases {
            assert_eq!(selector_hint(&selector, &evidence, "1h"), want, "{name}");
        }
        // A negative matcher on an absent label matches the empty value.
        let negative = sel("x", vec![m("code", NotRegex, "5.*")]);
        let e = Evidence {
            label_names: vec!["__name__".into()],
            values: BTreeMap::new(),
            selector_matches: false,
        };
        assert!(selector_hint(&negative, &e, "1h").is_some_and(|h| h.contains("each matcher alone")));
    }

    #[test]
    fn empty_hint_combines_selectors() {
        let a = sel("a", vec![]);
        let b = sel("b", vec![]);
        let matches = Evidence {
            label_names: vec!["__name__".into()],
            values: BTreeMap::new(),
            selector_matches: true,
        };
        let absent = Evidence::default();
        assert!(empty_hint(&[], &[], "1h").contains("no series selector"));
        assert!(
            empty_hint(&[a.clone(), b.clone()], &[matches.clone(), matches.clone()], "1h")
                .starts_with("every selector matches")
        );
        assert_eq!(
            empty_hint(&[a, b], &[matches, absent], "1h"),
            "no series of b in the last 1h: check the metric name and that its exporter is scraped"
        );
    }
}
