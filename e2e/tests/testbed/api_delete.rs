//! Deletion with finalizers and deletionTimestamp; ownerReferences garbage collection.

use crate::common::{bounded, code, start};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, Patch, PatchParams, PostParams},
    runtime::{
        controller::Action,
        finalizer::{Event as FinalizerEvent, finalizer},
    },
};
use serde_json::json;

fn cm(name: &str, extra_meta: serde_json::Value) -> ConfigMap {
    let mut v =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}});
    json_patch::merge(&mut v, &json!({ "metadata": extra_meta }));
    serde_json::from_value(v).expect("valid configmap")
}

#[tokio::test]
async fn delete_waits_for_finalizers() {
    let (server, client) = start().await;
    bounded(async {
        let cms: Api<ConfigMap> = Api::default_namespaced(client);
        cms.create(&PostParams::default(), &cm("f", json!({"finalizers": ["serin.dev/cleanup"]})))
            .await
            .expect("create");
        let res = cms.delete("f", &DeleteParams::default()).await.expect("delete accepted");
        let terminating = res.left().expect("object returned while finalizers remain");
        assert!(terminating.metadata.deletion_timestamp.is_some());
        let still = cms.get("f").await.expect("object kept while finalizers remain");
        assert!(still.metadata.deletion_timestamp.is_some());
        assert_eq!(still.finalizers(), ["serin.dev/cleanup"]);

        // A second delete changes nothing.
        cms.delete("f", &DeleteParams::default()).await.expect("second delete");
        assert_eq!(cms.get("f").await.expect("kept").resource_version(), still.resource_version());

        // Removing the last finalizer removes the object.
        cms.patch("f", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}})))
            .await
            .expect("finalizer removed");
        let err = cms.get("f").await.expect_err("gone");
        assert_eq!(code(&err), Some(404));

        // Without finalizers the object goes at once; a precondition mismatch conflicts.
        let plain = cms.create(&PostParams::default(), &cm("p", json!({}))).await.expect("create");
        let err = cms
            .delete(
                "p",
                &DeleteParams {
                    preconditions: Some(kube::api::Preconditions {
                        resource_version: Some("1".into()),
                        uid: None,
                    }),
                    ..Default::default()
                },
            )
            .await
            .expect_err("precondition");
        assert_eq!(code(&err), Some(409));
        cms.delete("p", &DeleteParams::default()).await.expect("delete");
        assert_eq!(code(&cms.get("p").await.expect_err("gone")), Some(404));
        assert!(plain.uid().is_some());
        let err = cms.delete("p", &DeleteParams::default()).await.expect_err("already gone");
        assert_eq!(code(&err), Some(404));
    })
    .await;
    server.shutdown().await;
}

#[tokio::test]
async fn kube_runtime_finalizer_helper_adds_and_removes_its_finalizer() {
    let (server, client) = start().await;
    bounded(async {
        let cms: Api<ConfigMap> = Api::default_namespaced(client);
        cms.create(&PostParams::default(), &cm("fin", json!({}))).await.expect("create");
        let run = |api: Api<ConfigMap>| async move {
            let obj = std::sync::Arc::new(api.get("fin").await.expect("get"));
            finalizer(&api, "serin.dev/finalizer", obj, |ev| async move {
                Ok::<_, std::convert::Infallible>(match ev {
                    FinalizerEvent::Apply(_) => Action::await_change(),
                    FinalizerEvent::Cleanup(_) => Action::await_change(),
                })
            })
            .await
        };
        // First pass adds the finalizer (test-null + add), second pass reconciles.
        run(cms.clone()).await.expect("finalizer added");
        assert_eq!(cms.get("fin").await.expect("get").finalizers(), ["serin.dev/finalizer"]);
        run(cms.clone()).await.expect("apply");
        cms.delete("fin", &DeleteParams::default()).await.expect("delete");
        run(cms.clone()).await.expect("cleanup removes the finalizer");
        assert_eq!(code(&cms.get("fin").await.expect_err("gone after cleanup")), Some(404));
    })
    .await;
    server.shutdown().await;
}

fn owner_ref(owner: &ConfigMap) -> serde_json::Value {
    json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": owner.name_any(), "uid": owner.uid(), "controller": true}])
}

#[tokio::test]
async fn deleting_an_owner_collects_dependents() {
    let (server, client) = start().await;
    bounded(async {
        let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
        let pp = PostParams::default();
        let owner = cms.create(&pp, &cm("owner", json!({}))).await.expect("owner");
        let other = cms.create(&pp, &cm("other-owner", json!({}))).await.expect("other owner");
        let child = cms
            .create(&pp, &cm("child", json!({"ownerReferences": owner_ref(&owner)})))
            .await
            .expect("child");
        cms.create(&pp, &cm("grandchild", json!({"ownerReferences": owner_ref(&child)})))
            .await
            .expect("grandchild");
        let mut both = owner_ref(&owner);
        if let (Some(a), Some(b)) = (both.as_array_mut(), owner_ref(&other).as_array()) {
            a.extend(b.iter().cloned());
        }
        cms.create(&pp, &cm("shared", json!({"ownerReferences": both}))).await.expect("shared");
        cms.create(&pp, &cm("held", json!({"ownerReferences": owner_ref(&owner), "finalizers": ["x/y"]})))
            .await
            .expect("held");

        cms.delete("owner", &DeleteParams::background()).await.expect("delete owner");
        for gone in ["owner", "child", "grandchild"] {
            assert_eq!(code(&cms.get(gone).await.expect_err(gone)), Some(404), "{gone} collected");
        }
        assert!(cms.get("shared").await.is_ok(), "dependent with a live owner stays");
        let held = cms.get("held").await.expect("dependent with finalizer stays");
        assert!(held.metadata.deletion_timestamp.is_some(), "but is terminating");

        // Orphan propagation keeps dependents and drops the owner reference.
        let o2 = cms.create(&pp, &cm("o2", json!({}))).await.expect("o2");
        cms.create(&pp, &cm("orphan", json!({"ownerReferences": owner_ref(&o2)}))).await.expect("orphan");
        cms.delete("o2", &DeleteParams::orphan()).await.expect("orphan delete");
        let orphan = cms.get("orphan").await.expect("orphan kept");
        assert!(orphan.owner_references().is_empty());

        // Deleting a namespace deletes its contents.
        let nss: Api<Namespace> = Api::all(client.clone());
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "temp"}})).expect("ns");
        nss.create(&pp, &ns).await.expect("namespace");
        let in_ns: Api<ConfigMap> = Api::namespaced(client.clone(), "temp");
        in_ns.create(&pp, &cm("inside", json!({}))).await.expect("inside");
        nss.delete("temp", &DeleteParams::default()).await.expect("delete ns");
        assert_eq!(code(&in_ns.get("inside").await.expect_err("gone with ns")), Some(404));
    })
    .await;
    server.shutdown().await;
}
