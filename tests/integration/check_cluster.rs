//! `serin check NAME`: the Canary, the MetricTemplates its checks reference and their
//! Secrets, read from a cluster (the Kubernetes API stand-in).

use kube::Client;
use kube::api::{Api, DynamicObject, PostParams};
use serde_json::{Value, json};
use serin::inspect::source::{SourceError, load_cluster};
use serin_e2e::{ApiServer, ServerConfig};

use crate::controller_blue_green::install_crds;

async fn create(client: &Client, object: Value) {
    let api_version = object["apiVersion"].as_str().expect("apiVersion").to_string();
    let kind = object["kind"].as_str().expect("kind").to_string();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", &api_version));
    let gvk = kube::api::GroupVersionKind::gvk(group, version, &kind);
    let (resource, _) = kube::discovery::pinned_kind(client, &gvk).await.expect("kind served");
    let namespace = object["metadata"]["namespace"].as_str().map(String::from);
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), &ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    let object: DynamicObject = serde_json::from_value(object).expect("object");
    api.create(&PostParams::default(), &object).await.expect("created");
}

#[tokio::test]
async fn a_canary_its_templates_and_their_secrets_load_from_the_cluster() {
    let server = ApiServer::start(ServerConfig::default()).await.expect("API stand-in starts");
    let client = server.client().expect("client");
    install_crds(&client).await;
    for ns in ["shop", "monitoring"] {
        create(&client, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})).await;
    }
    create(
        &client,
        json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "prom-auth", "namespace": "monitoring"},
        "stringData": {"token": "s3cret"}}),
    )
    .await;
    create(
        &client,
        json!({"apiVersion": "serin.dev/v1alpha1", "kind": "MetricTemplate",
        "metadata": {"name": "error-rate", "namespace": "monitoring"},
        "spec": {"provider": {"type": "prometheus", "address": "http://prometheus:9090",
            "secretRef": {"name": "prom-auth"}},
            "query": "sum(rate(errors{namespace=\"{{ namespace }}\"}[{{ interval }}]))"}}),
    )
    .await;
    create(
        &client,
        json!({"apiVersion": "serin.dev/v1alpha1", "kind": "Canary",
        "metadata": {"name": "checkout", "namespace": "shop"},
        "spec": {"provider": "gatewayapi:v1",
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "checkout"},
            "service": {"port": 80, "gatewayRefs": [{"name": "public"}]},
            "analysis": {"interval": "1m", "threshold": 2, "stepWeight": 10, "maxWeight": 50,
                "metrics": [
                    {"name": "request-success-rate", "thresholdRange": {"min": 99}},
                    {"name": "errors", "templateRef": {"name": "error-rate", "namespace": "monitoring"},
                        "thresholdRange": {"max": 1}},
                ]}}}),
    )
    .await;

    let loaded = load_cluster(client.clone(), "checkout", "shop", &[]).await.expect("loaded");
    assert_eq!(loaded.canary.metadata.name.as_deref(), Some("checkout"));
    assert_eq!(loaded.canary.metadata.namespace.as_deref(), Some("shop"));
    let template = loaded.template("monitoring", "error-rate").expect("referenced template loaded");
    assert!(template.spec.query.contains("errors{"), "{}", template.spec.query);
    assert_eq!(loaded.templates.len(), 1, "only the referenced template");
    let secret =
        loaded.secrets.get(&("monitoring".to_string(), "prom-auth".to_string())).expect("secret read");
    assert_eq!(secret.get("token").map(String::as_str), Some("s3cret"));

    match load_cluster(client, "nope", "shop", &[]).await {
        Err(SourceError::Cluster(message)) => {
            assert!(message.contains("reading Canary shop/nope"), "{message}")
        }
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("a missing Canary loaded"),
    }
}
