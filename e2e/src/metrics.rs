//! Minimal Prometheus text-format metrics for the demo app and the proxy: labelled counters and
//! histograms, rendered by hand (exposition format 0.0.4).

use std::{collections::BTreeMap, fmt::Write as _, sync::Mutex};

/// A label set, ordered by label name.
pub type Labels = Vec<(String, String)>;

/// Bucket bounds for latencies in seconds (the app's `http_request_duration_seconds`).
pub const SECONDS_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Bucket bounds for latencies in milliseconds (Istio's `istio_request_duration_milliseconds`).
pub const MILLIS_BUCKETS: &[f64] =
    &[1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0];

/// Builds a [`Labels`] from pairs.
pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    let mut out: Labels = pairs.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())).collect();
    out.sort();
    out
}

#[derive(Debug, Clone, Default)]
struct Hist {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

/// A histogram family with labels.
#[derive(Debug)]
pub struct HistogramVec {
    name: String,
    help: String,
    bounds: Vec<f64>,
    series: Mutex<BTreeMap<Labels, Hist>>,
}

impl HistogramVec {
    /// A new, empty family.
    pub fn new(name: &str, help: &str, bounds: &[f64]) -> Self {
        HistogramVec {
            name: name.to_string(),
            help: help.to_string(),
            bounds: bounds.to_vec(),
            series: Mutex::new(BTreeMap::new()),
        }
    }

    /// Records one observation.
    pub fn observe(&self, labels: Labels, value: f64) {
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let hist = series
            .entry(labels)
            .or_insert_with(|| Hist { counts: vec![0; self.bounds.len()], ..Hist::default() });
        for (i, bound) in self.bounds.iter().enumerate() {
            if value <= *bound {
                hist.counts[i] += 1;
            }
        }
        hist.sum += value;
        hist.count += 1;
    }

    /// Appends the text exposition of this family to `out`.
    pub fn render(&self, out: &mut String) {
        let series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} histogram", self.name);
        for (labels, hist) in series.iter() {
            for (bound, count) in self.bounds.iter().zip(&hist.counts) {
                let le = format!("{bound}");
                let _ = writeln!(out, "{}_bucket{} {count}", self.name, render_labels(labels, Some(&le)));
            }
            let _ =
                writeln!(out, "{}_bucket{} {}", self.name, render_labels(labels, Some("+Inf")), hist.count);
            let _ = writeln!(out, "{}_sum{} {}", self.name, render_labels(labels, None), hist.sum);
            let _ = writeln!(out, "{}_count{} {}", self.name, render_labels(labels, None), hist.count);
        }
    }
}

/// A counter family with labels.
#[derive(Debug)]
pub struct CounterVec {
    name: String,
    help: String,
    series: Mutex<BTreeMap<Labels, u64>>,
}

impl CounterVec {
    /// A new, empty family.
    pub fn new(name: &str, help: &str) -> Self {
        CounterVec { name: name.to_string(), help: help.to_string(), series: Mutex::new(BTreeMap::new()) }
    }

    /// Adds one to the series with these labels.
    pub fn inc(&self, labels: Labels) {
        *self.series.lock().unwrap_or_else(|e| e.into_inner()).entry(labels).or_insert(0) += 1;
    }

    /// The current value of one series (0 if never incremented).
    pub fn get(&self, labels: &Labels) -> u64 {
        self.series.lock().unwrap_or_else(|e| e.into_inner()).get(labels).copied().unwrap_or(0)
    }

    /// Appends the text exposition of this family to `out`.
    pub fn render(&self, out: &mut String) {
        let series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} counter", self.name);
        for (labels, value) in series.iter() {
            let _ = writeln!(out, "{}{} {value}", self.name, render_labels(labels, None));
        }
    }
}

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn render_labels(labels: &Labels, le: Option<&str>) -> String {
    let mut parts: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() { String::new() } else { format!("{{{}}}", parts.join(",")) }
}

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_renders_cumulative_buckets() {
        let h = HistogramVec::new("x_seconds", "help", &[0.1, 1.0]);
        h.observe(labels(&[("status", "200")]), 0.05);
        h.observe(labels(&[("status", "200")]), 0.5);
        let mut out = String::new();
        h.render(&mut out);
        assert!(out.contains("x_seconds_bucket{status=\"200\",le=\"0.1\"} 1\n"), "{out}");
        assert!(out.contains("x_seconds_bucket{status=\"200\",le=\"1\"} 2\n"), "{out}");
        assert!(out.contains("x_seconds_bucket{status=\"200\",le=\"+Inf\"} 2\n"), "{out}");
        assert!(out.contains("x_seconds_count{status=\"200\"} 2\n"), "{out}");
    }

    #[test]
    fn counter_escapes_label_values() {
        let c = CounterVec::new("c_total", "help");
        c.inc(labels(&[("a", "q\"x")]));
        let mut out = String::new();
        c.render(&mut out);
        assert!(out.contains("c_total{a=\"q\\\"x\"} 1\n"), "{out}");
    }
}
