//! CustomResourceDefinitions registered through the API: discovery, schema validation and
//! pruning, CEL rules, Serin's own CRDs, and a kube-runtime Controller reconciling a CRD.

use std::{sync::Arc, time::Duration};

use crate::common::{bounded, code, start};
use futures::StreamExt;
use k8s_openapi::{
    api::core::v1::{ConfigMap, Namespace},
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, CustomResource, CustomResourceExt, Resource, ResourceExt,
    api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams},
    discovery::Discovery,
    runtime::{
        Controller,
        controller::Action,
        wait::{await_condition, conditions},
        watcher,
    },
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// A small test kind.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, JsonSchema)]
#[kube(
    group = "test.serin.dev",
    version = "v1",
    kind = "Widget",
    namespaced,
    status = "WidgetStatus",
    shortname = "wd"
)]
pub struct WidgetSpec {
    /// Size.
    pub size: i32,
    /// Optional colour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
}

/// Status written by the test controller.
#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WidgetStatus {
    /// Last reconciled generation.
    pub observed_generation: Option<i64>,
}

/// The Widget CRD with a CEL rule added on `spec`.
fn widget_crd() -> CustomResourceDefinition {
    let mut v = serde_json::to_value(Widget::crd()).expect("crd json");
    v["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["x-kubernetes-validations"] =
        json!([{ "rule": "self.size <= 100", "message": "size must be at most 100" }]);
    serde_json::from_value(v).expect("crd")
}

async fn install(client: &Client, crd: &CustomResourceDefinition) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), crd).await.expect("crd created");
    let name = crd.name_any();
    let established = await_condition(crds, &name, conditions::is_crd_established());
    tokio::time::timeout(Duration::from_secs(5), established)
        .await
        .expect("established in time")
        .expect("wait");
}

#[tokio::test]
async fn crd_registers_kind_validates_and_prunes() {
    let (server, client) = start().await;
    bounded(async {
        install(&client, &widget_crd()).await;
        let discovery = Discovery::new(client.clone()).run().await.expect("discovery");
        let group = discovery.get("test.serin.dev").expect("group served");
        let (ar, caps) = group.recommended_kind("Widget").expect("kind served");
        assert_eq!(ar.plural, "widgets");
        assert!(caps.subresources.iter().any(|(s, _)| s.plural == "status"));

        let widgets: Api<Widget> = Api::default_namespaced(client.clone());
        let w = Widget::new("w1", WidgetSpec { size: 3, color: None });
        let created = widgets.create(&PostParams::default(), &w).await.expect("valid widget");
        assert_eq!(created.metadata.generation, Some(1));

        let dynamic: Api<DynamicObject> = Api::default_namespaced_with(
            client.clone(),
            &ApiResource::from_gvk(&GroupVersionKind::gvk("test.serin.dev", "v1", "Widget")),
        );
        let bad = json!({"apiVersion": "test.serin.dev/v1", "kind": "Widget", "metadata": {"name": "bad"},
                         "spec": {"size": "big"}});
        let err = dynamic
            .patch("bad", &PatchParams::apply("t"), &Patch::Apply(&bad))
            .await
            .expect_err("type mismatch rejected");
        assert_eq!(code(&err), Some(422));
        if let kube::Error::Api(s) = &err {
            assert!(s.message.contains("spec.size"), "{}", s.message);
            assert_eq!(s.reason, "Invalid");
        }
        let missing = json!({"apiVersion": "test.serin.dev/v1", "kind": "Widget", "metadata": {"name": "bad"}, "spec": {}});
        let err = dynamic.patch("bad", &PatchParams::apply("t"), &Patch::Apply(&missing)).await.expect_err("required");
        assert_eq!(code(&err), Some(422));

        let too_big = json!({"apiVersion": "test.serin.dev/v1", "kind": "Widget", "metadata": {"name": "big"},
                             "spec": {"size": 500}});
        let err = dynamic.patch("big", &PatchParams::apply("t"), &Patch::Apply(&too_big)).await.expect_err("CEL rule");
        assert_eq!(code(&err), Some(422));
        if let kube::Error::Api(s) = &err {
            assert!(s.message.contains("size must be at most 100"), "{}", s.message);
        }

        let extra = json!({"apiVersion": "test.serin.dev/v1", "kind": "Widget", "metadata": {"name": "extra"},
                           "spec": {"size": 1, "bogus": true}, "junk": 1});
        let pruned = dynamic.patch("extra", &PatchParams::apply("t"), &Patch::Apply(&extra)).await.expect("pruned");
        assert!(pruned.data.get("junk").is_none());
        assert!(pruned.data["spec"].get("bogus").is_none());

        // An update (PUT) of a custom resource must carry a resourceVersion, on the status
        // subresource too (built-in kinds like ConfigMap allow it; see api_crud).
        let mut unconditional = created.clone();
        unconditional.metadata.resource_version = None;
        unconditional.status = Some(WidgetStatus { observed_generation: Some(1) });
        for (what, result) in [
            ("update", widgets.replace("w1", &PostParams::default(), &unconditional).await),
            ("status update", widgets.replace_status("w1", &PostParams::default(), &unconditional).await),
        ] {
            let err = result.expect_err(what);
            assert_eq!(code(&err), Some(422), "{what}");
            if let kube::Error::Api(s) = &err {
                assert_eq!(
                    s.message,
                    "widgets.test.serin.dev \"w1\" is invalid: metadata.resourceVersion: Invalid value: \
                     0x0: must be specified for an update",
                    "{what}"
                );
            }
        }
        let conditional = widgets.replace_status("w1", &PostParams::default(), &created).await;
        assert!(conditional.is_ok(), "with its resourceVersion: {conditional:?}");

        // Strategic merge patch is not available for custom resources.
        let err = widgets
            .patch("w1", &PatchParams::default(), &Patch::Strategic(json!({"spec": {"size": 4}})))
            .await
            .expect_err("strategic on CR");
        assert_eq!(code(&err), Some(415));

        // Deleting the CRD removes the kind and its objects.
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        crds.delete("widgets.test.serin.dev", &DeleteParams::default()).await.expect("crd deleted");
        let err = widgets.get("w1").await.expect_err("kind gone");
        assert_eq!(code(&err), Some(404));
    })
    .await;
    server.shutdown().await;
}

#[tokio::test]
async fn serin_crds_apply_and_their_rules_run() {
    let (server, client) = start().await;
    bounded(async {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for entry in std::fs::read_dir(root.join("crds")).expect("crds dir") {
            let path = entry.expect("entry").path();
            let crd: CustomResourceDefinition =
                serde_norway::from_str(&std::fs::read_to_string(&path).expect("read")).expect("crd yaml");
            let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
            crds.patch(&crd.name_any(), &PatchParams::apply("crd-installer"), &Patch::Apply(&crd))
                .await
                .expect("crd applied");
        }
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        let established = await_condition(crds, "canaries.serin.dev", conditions::is_crd_established());
        tokio::time::timeout(Duration::from_secs(5), established)
            .await
            .expect("in time")
            .expect("established");
        let discovery = Discovery::new(client.clone()).run().await.expect("discovery");
        let serin = discovery.get("serin.dev").expect("serin.dev served");
        for kind in ["Canary", "MetricTemplate", "AlertProvider"] {
            assert!(serin.recommended_kind(kind).is_some(), "{kind} served");
        }
        let nss: Api<Namespace> = Api::all(client.clone());
        nss.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "test"}})).expect("ns"),
        )
        .await
        .expect("namespace");
        let (ar, _) = serin.recommended_kind("Canary").expect("canary");
        let canaries: Api<DynamicObject> = Api::namespaced_with(client.clone(), "test", &ar);
        let load = |rel: &str| -> serde_json::Value {
            let text = std::fs::read_to_string(root.join(rel)).expect("fixture");
            serde_norway::from_str(&text).expect("fixture yaml")
        };
        let good = load("tests/fixtures/flagger-compat/nginx-canary.yaml");
        canaries
            .patch("podinfo-nginx", &PatchParams::apply("t"), &Patch::Apply(&good))
            .await
            .expect("valid canary");
        let bad = load("tests/fixtures/invalid/maxweight-below-stepweight.yaml");
        let err =
            canaries.patch("podinfo", &PatchParams::apply("t"), &Patch::Apply(&bad)).await.expect_err("CEL");
        assert_eq!(code(&err), Some(422));
        if let kube::Error::Api(s) = &err {
            assert!(s.message.contains("maxWeight must be at least stepWeight"), "{}", s.message);
        }
    })
    .await;
    server.shutdown().await;
}

/// Test controller: each Widget gets an owned ConfigMap and `status.observedGeneration`.
async fn reconcile(w: Arc<Widget>, client: Arc<Client>) -> Result<Action, kube::Error> {
    let ns = w.namespace().unwrap_or_else(|| "default".into());
    let owner = w.controller_owner_ref(&()).map(|o| vec![o]);
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": format!("{}-cm", w.name_any()), "ownerReferences": owner},
        "data": {"size": w.spec.size.to_string()}});
    let cms: Api<ConfigMap> = Api::namespaced((*client).clone(), &ns);
    cms.patch(&format!("{}-cm", w.name_any()), &PatchParams::apply("widget-ctl").force(), &Patch::Apply(&cm))
        .await?;
    let status = json!({"apiVersion": "test.serin.dev/v1", "kind": "Widget",
        "status": {"observedGeneration": w.meta().generation}});
    let widgets: Api<Widget> = Api::namespaced((*client).clone(), &ns);
    widgets
        .patch_status(&w.name_any(), &PatchParams::apply("widget-ctl").force(), &Patch::Apply(&status))
        .await?;
    Ok(Action::await_change())
}

fn error_policy(_: Arc<Widget>, _: &kube::Error, _: Arc<Client>) -> Action {
    Action::requeue(Duration::from_millis(200))
}

#[tokio::test]
async fn controller_reconciles_a_crd_registered_through_the_api() {
    let (server, client) = start().await;
    bounded(async {
        install(&client, &widget_crd()).await;
        let widgets: Api<Widget> = Api::default_namespaced(client.clone());
        let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
        let controller = Controller::new(widgets.clone(), watcher::Config::default())
            .owns(cms.clone(), watcher::Config::default())
            .run(reconcile, error_policy, Arc::new(client.clone()))
            .for_each(|_| async {});
        let task = tokio::spawn(controller);

        widgets
            .create(&PostParams::default(), &Widget::new("w", WidgetSpec { size: 1, color: None }))
            .await
            .expect("w");
        let observed = |generation: i64| {
            let widgets = widgets.clone();
            async move {
                loop {
                    if let Ok(w) = widgets.get("w").await
                        && w.status.and_then(|s| s.observed_generation) == Some(generation)
                    {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        observed(1).await;
        assert_eq!(
            cms.get("w-cm").await.expect("owned cm").data.and_then(|d| d.get("size").cloned()).as_deref(),
            Some("1")
        );

        widgets
            .patch("w", &PatchParams::default(), &Patch::Merge(json!({"spec": {"size": 7}})))
            .await
            .expect("edit");
        observed(2).await;
        assert_eq!(
            cms.get("w-cm").await.expect("owned cm").data.and_then(|d| d.get("size").cloned()).as_deref(),
            Some("7")
        );

        // Deleting a Widget garbage-collects its ConfigMap.
        widgets.delete("w", &DeleteParams::default()).await.expect("delete");
        assert_eq!(code(&cms.get("w-cm").await.expect_err("collected")), Some(404));
        task.abort();
    })
    .await;
    server.shutdown().await;
}
