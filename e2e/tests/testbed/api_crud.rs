//! Discovery, create/get/list with selectors, update conflicts, generation and the status subresource.

use crate::common::{bounded, code, reason, start};
use k8s_openapi::api::{apps::v1::Deployment, core::v1::ConfigMap};
use kube::{
    Api, ResourceExt,
    api::{ListParams, Patch, PatchParams, PostParams},
    config::{KubeConfigOptions, Kubeconfig},
    discovery::{Discovery, Scope},
};
use serde_json::json;

fn cm(name: &str, labels: serde_json::Value) -> ConfigMap {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": { "name": name, "labels": labels },
        "data": { "k": "v" },
    }))
    .expect("valid configmap")
}

fn deployment(name: &str, image: &str) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": name, "labels": { "app": name } },
        "spec": {
            "selector": { "matchLabels": { "app": name } },
            "template": { "metadata": { "labels": { "app": name } },
                          "spec": { "containers": [{ "name": "app", "image": image }] } },
        },
    }))
    .expect("valid deployment")
}

#[tokio::test]
async fn discovery_lists_builtin_kinds() {
    let (server, client) = start().await;
    bounded(async {
        let discovery = Discovery::new(client.clone()).run().await.expect("discovery runs");
        let apps = discovery.get("apps").expect("apps group");
        let (ar, caps) = apps.recommended_kind("Deployment").expect("deployments served");
        assert_eq!(ar.plural, "deployments");
        assert_eq!(caps.scope, Scope::Namespaced);
        assert!(caps.subresources.iter().any(|(s, _)| s.plural == "status"));
        for (group, kind) in [
            ("", "Namespace"),
            ("", "Service"),
            ("", "ConfigMap"),
            ("", "Secret"),
            ("", "Event"),
            ("", "Pod"),
            ("apps", "DaemonSet"),
            ("autoscaling", "HorizontalPodAutoscaler"),
            ("coordination.k8s.io", "Lease"),
            ("events.k8s.io", "Event"),
            ("apiextensions.k8s.io", "CustomResourceDefinition"),
        ] {
            let g = discovery.get(group).unwrap_or_else(|| panic!("group {group:?} served"));
            assert!(g.recommended_kind(kind).is_some(), "{group}/{kind} served");
        }
        let version = client.apiserver_version().await.expect("version");
        assert_eq!(version.major, "1");

        // Unknown paths and methods answer with metav1.Status errors.
        let req = axum::http::Request::get("/apis/nope.dev/v1/things").body(Vec::new()).expect("request");
        let err = client.request_text(req).await.expect_err("unknown resource");
        assert_eq!((code(&err), reason(&err).as_deref()), (Some(404), Some("NotFound")));
        let req = axum::http::Request::put("/api/v1/namespaces/default/configmaps")
            .body(b"{}".to_vec())
            .expect("request");
        let err = client.request_text(req).await.expect_err("PUT on a collection");
        assert_eq!((code(&err), reason(&err).as_deref()), (Some(405), Some("MethodNotAllowed")));
    })
    .await;
    server.shutdown().await;
}

#[tokio::test]
async fn kubeconfig_points_a_client_at_the_server() {
    let (server, _) = start().await;
    bounded(async {
        let dir = std::env::temp_dir().join(format!("serin-e2e-kubeconfig-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("kubeconfig");
        server.write_kubeconfig(&path).expect("kubeconfig written");
        let kc = Kubeconfig::read_from(&path).expect("kubeconfig parses");
        let config =
            kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.expect("config");
        assert_eq!(config.default_namespace, "default");
        let client = kube::Client::try_from(config).expect("client");
        let cms: Api<ConfigMap> = Api::default_namespaced(client);
        cms.create(&PostParams::default(), &cm("via-kubeconfig", json!({}))).await.expect("create works");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    })
    .await;
    server.shutdown().await;
}

#[tokio::test]
async fn create_get_list_with_selectors() {
    let (server, client) = start().await;
    bounded(async {
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let pp = PostParams::default();
        let a = cms.create(&pp, &cm("a", json!({"app": "web", "tier": "front"}))).await.expect("create a");
        cms.create(&pp, &cm("b", json!({"app": "web", "tier": "back"}))).await.expect("create b");
        cms.create(&pp, &cm("c", json!({"app": "db"}))).await.expect("create c");
        assert!(a.uid().is_some());
        assert!(a.creation_timestamp().is_some());
        assert_eq!(a.metadata.generation, Some(1));
        let rv_a: u64 = a.resource_version().expect("rv").parse().expect("numeric rv");

        let got = cms.get("a").await.expect("get a");
        assert_eq!(got.data, a.data);
        assert_eq!(got.resource_version(), a.resource_version());

        let dup = cms.create(&pp, &cm("a", json!({}))).await.expect_err("duplicate rejected");
        assert_eq!((code(&dup), reason(&dup).as_deref()), (Some(409), Some("AlreadyExists")));
        let missing = cms.get("zzz").await.expect_err("missing");
        assert_eq!((code(&missing), reason(&missing).as_deref()), (Some(404), Some("NotFound")));

        let names =
            |l: kube::core::ObjectList<ConfigMap>| l.items.iter().map(|o| o.name_any()).collect::<Vec<_>>();
        for (sel, want) in [
            ("app=web", vec!["a", "b"]),
            ("app==web,tier!=back", vec!["a"]),
            ("app in (web,db)", vec!["a", "b", "c"]),
            ("app notin (web)", vec!["c"]),
            ("tier", vec!["a", "b"]),
            ("!tier", vec!["c"]),
        ] {
            let list = cms.list(&ListParams::default().labels(sel)).await.expect("list");
            assert_eq!(names(list), want, "selector {sel}");
        }
        let list = cms.list(&ListParams::default().fields("metadata.name=b")).await.expect("list by field");
        assert_eq!(names(list), vec!["b"]);
        let list = cms
            .list(&ListParams::default().fields("metadata.namespace=default").limit(1))
            .await
            .expect("list");
        let list_rv: u64 = list.metadata.resource_version.clone().expect("list rv").parse().expect("numeric");
        assert!(list_rv > rv_a);
        assert_eq!(list.items.len(), 3);

        let all: Api<ConfigMap> = Api::all(client.clone());
        assert_eq!(all.list(&ListParams::default()).await.expect("all namespaces").items.len(), 3);

        let mut generated = cm("", json!({}));
        generated.metadata.name = None;
        generated.metadata.generate_name = Some("gen-".into());
        let created = cms.create(&pp, &generated).await.expect("generateName");
        assert!(created.name_any().starts_with("gen-") && created.name_any().len() == 9);

        let other: Api<ConfigMap> = Api::namespaced(client, "nope");
        let err = other.create(&pp, &cm("x", json!({}))).await.expect_err("namespace must exist");
        assert_eq!(code(&err), Some(404));
    })
    .await;
    server.shutdown().await;
}

#[tokio::test]
async fn update_with_stale_resource_version_conflicts() {
    let (server, client) = start().await;
    bounded(async {
        let cms: Api<ConfigMap> = Api::default_namespaced(client);
        let first = cms.create(&PostParams::default(), &cm("x", json!({}))).await.expect("create");
        let mut edit = first.clone();
        edit.data = Some([("k".to_string(), "v2".to_string())].into());
        let second = cms.replace("x", &PostParams::default(), &edit).await.expect("update with current rv");
        assert_ne!(second.resource_version(), first.resource_version());

        let stale = cms.replace("x", &PostParams::default(), &edit).await.expect_err("stale rv");
        assert_eq!((code(&stale), reason(&stale).as_deref()), (Some(409), Some("Conflict")));
        if let kube::Error::Api(s) = &stale {
            assert!(s.message.contains("the object has been modified"), "{}", s.message);
        }

        let mut unconditional = second.clone();
        unconditional.metadata.resource_version = None;
        unconditional.data = Some([("k".to_string(), "v3".to_string())].into());
        let third =
            cms.replace("x", &PostParams::default(), &unconditional).await.expect("unconditional update");
        assert_eq!(third.data.as_ref().and_then(|d| d.get("k")).map(String::as_str), Some("v3"));

        let noop = cms.replace("x", &PostParams::default(), &third).await.expect("no-op update");
        assert_eq!(noop.resource_version(), third.resource_version(), "no-op does not bump rv");
    })
    .await;
    server.shutdown().await;
}

#[tokio::test]
async fn generation_bumps_on_spec_changes_only_and_status_is_separate() {
    let (server, client) = start().await;
    bounded(async {
        let deploys: Api<Deployment> = Api::default_namespaced(client);
        let mut d = deployment("web", "demo:1.0.0");
        d.status = Some(serde_json::from_value(json!({"replicas": 99})).expect("status"));
        let created = deploys.create(&PostParams::default(), &d).await.expect("create");
        assert_eq!(created.metadata.generation, Some(1));
        assert!(created.status.is_none(), "status is dropped on create");

        let labels = Patch::Merge(json!({"metadata": {"labels": {"extra": "1"}}}));
        let after_labels = deploys.patch("web", &PatchParams::default(), &labels).await.expect("label patch");
        assert_eq!(after_labels.metadata.generation, Some(1), "metadata change keeps generation");

        let status = Patch::Merge(json!({"status": {"replicas": 3, "observedGeneration": 1}}));
        let after_status =
            deploys.patch_status("web", &PatchParams::default(), &status).await.expect("status");
        assert_eq!(after_status.metadata.generation, Some(1), "status change keeps generation");
        assert_eq!(after_status.status.as_ref().and_then(|s| s.replicas), Some(3));

        let sneaky = Patch::Merge(json!({"status": {"replicas": 42}}));
        let ignored = deploys.patch("web", &PatchParams::default(), &sneaky).await.expect("main patch");
        assert_eq!(ignored.status.as_ref().and_then(|s| s.replicas), Some(3), "main resource ignores status");
        assert_eq!(ignored.resource_version(), after_status.resource_version(), "ignored change is a no-op");

        let spec = Patch::Merge(json!({"spec": {"replicas": 4}}));
        let after_spec = deploys.patch("web", &PatchParams::default(), &spec).await.expect("spec patch");
        assert_eq!(after_spec.metadata.generation, Some(2));

        let mut via_status = after_spec.clone();
        via_status.spec.as_mut().expect("spec").replicas = Some(10);
        via_status.status.as_mut().expect("status").ready_replicas = Some(2);
        let replaced =
            deploys.replace_status("web", &PostParams::default(), &via_status).await.expect("replace status");
        assert_eq!(replaced.spec.as_ref().and_then(|s| s.replicas), Some(4), "status endpoint ignores spec");
        assert_eq!(replaced.status.as_ref().and_then(|s| s.ready_replicas), Some(2));
        assert_eq!(replaced.metadata.generation, Some(2));
    })
    .await;
    server.shutdown().await;
}
