//! What an alert says, independent of where it goes: the canary, how serious it is, a title,
//! the message and the fields (target, failed checks, revert commit…). Each notifier renders it
//! in its platform's format.

use std::collections::BTreeMap;

use crate::crd::canary::AlertSeverity;

/// One alert.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    /// Canary name.
    pub name: String,
    /// Canary namespace.
    pub namespace: String,
    /// How serious: `Info`, `Warn` or `Error`.
    pub severity: AlertSeverity,
    /// Short headline, e.g. "Rolled back".
    pub title: String,
    /// The full message.
    pub message: String,
    /// Extra facts, shown as a table (ordered by key).
    pub fields: BTreeMap<String, String>,
    /// Cluster name, when the controller was given one.
    pub cluster: Option<String>,
}

impl Notification {
    /// `name.namespace`, Flagger's way of naming the workload in alerts.
    pub fn subject(&self) -> String {
        format!("{}.{}", self.name, self.namespace)
    }

    /// The fields plus the cluster, as (name, value) pairs in display order.
    pub fn facts(&self) -> Vec<(String, String)> {
        let mut facts: Vec<(String, String)> =
            self.fields.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        if let Some(cluster) = &self.cluster {
            facts.push(("Cluster".into(), cluster.clone()));
        }
        facts
    }

    /// The effective severity (Flagger's empty severity is `info`).
    pub fn level(&self) -> AlertSeverity {
        match self.severity {
            AlertSeverity::Unset => AlertSeverity::Info,
            other => other,
        }
    }

    /// Whether a destination subscribed at `threshold` receives this alert: `info` gets
    /// everything, `warn` gets warnings and errors, `error` only errors.
    pub fn passes(&self, threshold: Option<AlertSeverity>) -> bool {
        let threshold = match threshold.unwrap_or(AlertSeverity::Info) {
            AlertSeverity::Unset => AlertSeverity::Info,
            other => other,
        };
        self.level() >= threshold
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(severity: AlertSeverity) -> Notification {
        Notification {
            name: "podinfo".into(),
            namespace: "test".into(),
            severity,
            title: "t".into(),
            message: "m".into(),
            fields: BTreeMap::new(),
            cluster: None,
        }
    }

    #[test]
    fn severity_filter_follows_flagger() {
        use AlertSeverity::*;
        let cases = [
            (Info, None, true),
            (Info, Some(Info), true),
            (Info, Some(Warn), false),
            (Info, Some(Error), false),
            (Warn, Some(Info), true),
            (Warn, Some(Warn), true),
            (Warn, Some(Error), false),
            (Error, Some(Error), true),
            (Error, Some(Warn), true),
            (Unset, Some(Unset), true),
            (Unset, Some(Warn), false),
        ];
        for (severity, threshold, want) in cases {
            assert_eq!(note(severity).passes(threshold), want, "{severity:?} at {threshold:?}");
        }
    }
}
