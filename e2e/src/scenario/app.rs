//! The application a scenario releases, as it sits in the GitOps repository: a Namespace, the
//! demo Deployment, its Canary and the AlertProvider the Canary reports to. Short intervals so
//! a release takes seconds, not minutes.

use serde_json::{Value, json};

use crate::manifests;

/// One application under `clusters/testbed/<namespace>-<name>.yaml`.
#[derive(Debug, Clone)]
pub struct App {
    /// Namespace of everything.
    pub namespace: String,
    /// Deployment, Canary and Service name.
    pub name: String,
    /// Replicas of the Deployment in Git.
    pub replicas: i32,
    /// The Canary's `spec.provider`.
    pub provider: String,
    /// The Canary's `spec.analysis` (see [`App::new`] for the default).
    pub analysis: Value,
    /// Whether the Canary reverts failed releases in Git (`spec.gitops`).
    pub gitops: bool,
    /// URL the AlertProvider (type `slack`) posts to.
    pub alert_url: String,
}

impl App {
    /// Canary analysis: every 2 s, rollback after 2 failed checks, weights 25 and 50, then
    /// promotion; the builtin success-rate (≥ 99 %) and p99 latency (≤ 500 ms) over 10 s;
    /// every alert to the receiver; Git revert on.
    pub fn new(namespace: &str, name: &str, alert_url: &str) -> Self {
        App {
            namespace: namespace.into(),
            name: name.into(),
            replicas: 2,
            provider: "gatewayapi:v1".into(),
            analysis: json!({
                "interval": "2s",
                "threshold": 2,
                "stepWeight": 25,
                "maxWeight": 50,
                "metrics": [
                    {"name": "request-success-rate", "interval": "10s", "thresholdRange": {"min": 99}},
                    {"name": "request-duration", "interval": "10s", "thresholdRange": {"max": 500}},
                ],
                "alerts": [{"name": "receiver", "severity": "info", "providerRef": {"name": "receiver"}}],
            }),
            gitops: true,
            alert_url: alert_url.into(),
        }
    }

    /// Path of the app's manifests in the GitOps repository.
    pub fn path(&self) -> String {
        format!("clusters/testbed/{}-{}.yaml", self.namespace, self.name)
    }

    /// The Canary object.
    pub fn canary(&self) -> Value {
        let mut spec = json!({
            "provider": self.provider,
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": self.name},
            "progressDeadlineSeconds": 60,
            "service": {
                "port": 80,
                "hosts": [format!("{}.testbed.local", self.name)],
                "gatewayRefs": [{"name": "testbed", "namespace": self.namespace}],
            },
            "analysis": self.analysis,
        });
        if self.gitops {
            spec["gitops"] = json!({"revert": true, "mode": "push", "source": {"auto": true}});
        }
        json!({
            "apiVersion": "serin.dev/v1alpha1",
            "kind": "Canary",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": spec,
        })
    }

    /// The AlertProvider `receiver`: Slack format to the test bed's alert receiver.
    pub fn alert_provider(&self) -> Value {
        json!({
            "apiVersion": "serin.dev/v1alpha1",
            "kind": "AlertProvider",
            "metadata": {"name": "receiver", "namespace": self.namespace},
            "spec": {"type": "slack", "channel": "releases", "address": format!("{}/slack", self.alert_url)},
        })
    }

    /// Every manifest of the app, as the multi-document YAML committed to Git.
    pub fn manifests(&self, image: &str) -> String {
        manifests::to_yaml(&[
            manifests::namespace(&self.namespace),
            manifests::deployment(&self.namespace, &self.name, image, self.replicas),
            self.alert_provider(),
            self.canary(),
        ])
    }
}
