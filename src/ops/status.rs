//! `serin status`: a table of canaries with phase, weight, failed checks, revision and the
//! last result of every metric check; `--watch` redraws it on every change.

use std::io::Write;

use futures::StreamExt;
use kube::api::{Api, ListParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, ResourceExt};

use super::OpsError;
use crate::crd::Canary;
use crate::crd::status::{MetricResult, Verdict};

/// Which canaries to show.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// Namespace, or all namespaces when `None`.
    pub namespace: Option<String>,
    /// One canary by name, or all.
    pub name: Option<String>,
}

impl Selection {
    fn api(&self, client: Client) -> Api<Canary> {
        match &self.namespace {
            Some(ns) => Api::namespaced(client, ns),
            None => Api::all(client),
        }
    }

    fn matches(&self, canary: &Canary) -> bool {
        self.name.as_deref().is_none_or(|name| canary.name_any() == name)
    }
}

fn format_value(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e12 {
        format!("{value:.0}")
    } else {
        let text = format!("{value:.3}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

fn format_result(result: &MetricResult) -> String {
    let verdict = match result.verdict {
        Verdict::Pass => "pass",
        Verdict::Fail => "FAIL",
        Verdict::NoData => "no data",
        Verdict::Error => "ERROR",
    };
    match result.value {
        Some(value) => format!("{}={} {verdict}", result.name, format_value(value)),
        None => format!("{} {verdict}", result.name),
    }
}

/// Renders canaries as an aligned table, sorted by namespace and name.
pub fn render(canaries: &[Canary]) -> String {
    let mut rows: Vec<[String; 8]> = canaries
        .iter()
        .map(|c| {
            let status = c.status.clone().unwrap_or_default();
            let analysis: Vec<String> = status.analysis.iter().flatten().map(format_result).collect();
            [
                c.namespace().unwrap_or_default(),
                c.name_any(),
                status.phase.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
                status.canary_weight.unwrap_or(0).to_string(),
                status.failed_checks.unwrap_or(0).to_string(),
                status.revision.unwrap_or_else(|| "-".into()),
                status.last_transition_time.map(|t| t.0.to_string()).unwrap_or_else(|| "-".into()),
                if analysis.is_empty() { "-".into() } else { analysis.join(", ") },
            ]
        })
        .collect();
    rows.sort();
    let header =
        ["NAMESPACE", "NAME", "PHASE", "WEIGHT", "FAILED", "REVISION", "LAST TRANSITION", "ANALYSIS"]
            .map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row.iter().zip(widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Prints the table once.
pub async fn show(client: Client, selection: &Selection, out: &mut impl Write) -> Result<(), OpsError> {
    let list = selection
        .api(client)
        .list(&ListParams::default())
        .await
        .map_err(|source| OpsError::Api { action: "listing canaries".into(), source })?;
    let canaries: Vec<Canary> = list.items.into_iter().filter(|c| selection.matches(c)).collect();
    out.write_all(render(&canaries).as_bytes())?;
    Ok(())
}

/// Redraws the table on every change until interrupted.
pub async fn watch(client: Client, selection: &Selection, out: &mut impl Write) -> Result<(), OpsError> {
    let (reader, writer) = reflector::store();
    let stream = reflector(writer, watcher(selection.api(client), watcher::Config::default()))
        .default_backoff()
        .applied_objects();
    futures::pin_mut!(stream);
    while let Some(event) = stream.next().await {
        if let Err(e) = event {
            writeln!(out, "watch error (retrying): {e}")?;
            continue;
        }
        let canaries: Vec<Canary> =
            reader.state().iter().map(|c| (**c).clone()).filter(|c| selection.matches(c)).collect();
        write!(out, "\x1b[2J\x1b[H{}", render(&canaries))?;
        out.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn renders_an_aligned_table_with_analysis_results() {
        let canary = |ns: &str, name: &str, status: serde_json::Value| -> Canary {
            serde_json::from_value(json!({
                "apiVersion": "serin.dev/v1alpha1", "kind": "Canary",
                "metadata": {"name": name, "namespace": ns},
                "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                    "service": {"port": 80}, "analysis": {"stepWeight": 10}},
                "status": status
            }))
            .expect("canary")
        };
        let table = render(&[
            canary(
                "shop",
                "checkout",
                json!({
                    "phase": "Progressing", "canaryWeight": 20, "failedChecks": 1, "revision": "abc",
                    "analysis": [
                        {"name": "request-success-rate", "value": 97.25, "verdict": "fail"},
                        {"name": "request-duration", "value": 120.0, "verdict": "pass"},
                        {"name": "latency", "verdict": "noData"}
                    ]
                }),
            ),
            canary("default", "web", json!(null)),
        ]);
        assert_eq!(table, "\
NAMESPACE  NAME      PHASE        WEIGHT  FAILED  REVISION  LAST TRANSITION  ANALYSIS
default    web       -            0       0       -         -                -
shop       checkout  Progressing  20      1       abc       -                request-success-rate=97.25 FAIL, request-duration=120 pass, latency no data
");
    }

    #[test]
    fn values_are_short() {
        assert_eq!(format_value(99.0), "99");
        assert_eq!(format_value(99.123456), "99.123");
        assert_eq!(format_value(0.5), "0.5");
    }
}
