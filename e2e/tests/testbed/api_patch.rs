//! Merge, JSON and strategic merge patches; server-side apply ownership, conflicts and force.

use crate::common::{bounded, code, reason, start};
use k8s_openapi::api::{apps::v1::Deployment, core::v1::ConfigMap};
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::json;

fn deployment() -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": "web" },
        "spec": {
            "replicas": 1,
            "selector": { "matchLabels": { "app": "web" } },
            "template": { "metadata": { "labels": { "app": "web" } }, "spec": { "containers": [
                { "name": "app", "image": "demo:1.0.0", "ports": [{ "containerPort": 8080, "name": "http" }],
                  "env": [{ "name": "A", "value": "1" }] },
                { "name": "sidecar", "image": "proxy:1" }
            ] } },
        },
    }))
    .expect("valid deployment")
}

#[tokio::test]
async fn merge_json_and_strategic_patches() {
    let (server, client) = start().await;
    bounded(async {
        let deploys: Api<Deployment> = Api::default_namespaced(client.clone());
        deploys.create(&PostParams::default(), &deployment()).await.expect("create");
        let pp = PatchParams::default();

        // JSON merge patch replaces lists wholesale and deletes with null.
        let merged = deploys
            .patch("web", &pp, &Patch::Merge(json!({"metadata": {"labels": {"a": "1", "b": "2"}}})))
            .await
            .expect("merge");
        assert_eq!(merged.metadata.labels.as_ref().map(|l| l.len()), Some(2));
        let merged = deploys
            .patch("web", &pp, &Patch::Merge(json!({"metadata": {"labels": {"a": null}}})))
            .await
            .expect("merge delete");
        assert_eq!(merged.metadata.labels.as_ref().map(|l| l.len()), Some(1));

        // JSON patch.
        let ops: json_patch_ops::Ops = serde_json::from_value(json!([
            {"op": "replace", "path": "/spec/replicas", "value": 3},
            {"op": "add", "path": "/metadata/annotations", "value": {"x": "y"}},
        ]))
        .expect("ops");
        let patched = deploys.patch("web", &pp, &Patch::<()>::Json(ops)).await.expect("json patch");
        assert_eq!(patched.spec.as_ref().and_then(|s| s.replicas), Some(3));
        assert_eq!(patched.metadata.generation, Some(2));
        let bad: json_patch_ops::Ops =
            serde_json::from_value(json!([{"op": "test", "path": "/spec/replicas", "value": 7}])).expect("ops");
        let err = deploys.patch("web", &pp, &Patch::<()>::Json(bad)).await.expect_err("failed test op");
        assert_eq!(code(&err), Some(422));

        // Strategic merge: containers merge by name, env by name, ports by containerPort.
        let smp = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": "demo:2.0.0", "env": [{"name": "B", "value": "2"}],
             "ports": [{"containerPort": 9090, "name": "metrics"}]}
        ]}}}});
        let s = deploys.patch("web", &pp, &Patch::Strategic(smp)).await.expect("strategic");
        let pod = s.spec.and_then(|s| s.template.spec).expect("pod spec");
        assert_eq!(pod.containers.len(), 2, "sidecar kept");
        let app = &pod.containers[0];
        assert_eq!(app.image.as_deref(), Some("demo:2.0.0"));
        assert_eq!(app.env.as_ref().map(|e| e.len()), Some(2));
        assert_eq!(app.ports.as_ref().map(|p| p.len()), Some(2));
        let del = json!({"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}}});
        let s = deploys.patch("web", &pp, &Patch::Strategic(del)).await.expect("strategic delete");
        assert_eq!(s.spec.and_then(|s| s.template.spec).map(|p| p.containers.len()), Some(1));

        // A resourceVersion in a patch is a precondition.
        let stale = json!({"metadata": {"resourceVersion": "1"}, "spec": {"replicas": 5}});
        let err = deploys.patch("web", &pp, &Patch::Merge(stale)).await.expect_err("stale patch");
        assert_eq!(code(&err), Some(409));

        let missing = deploys.patch("nope", &pp, &Patch::Merge(json!({}))).await.expect_err("missing");
        assert_eq!(code(&missing), Some(404));
    })
    .await;
    server.shutdown().await;
}

/// Tiny local alias so the test reads as the wire format.
mod json_patch_ops {
    /// A JSON patch document.
    pub type Ops = json_patch::Patch;
}

fn managers(cm: &ConfigMap) -> Vec<(String, String)> {
    cm.metadata
        .managed_fields
        .iter()
        .flatten()
        .map(|m| (m.manager.clone().unwrap_or_default(), m.operation.clone().unwrap_or_default()))
        .collect()
}

#[tokio::test]
async fn server_side_apply_tracks_owners_conflicts_and_force() {
    let (server, client) = start().await;
    bounded(async {
        let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
        let a = PatchParams::apply("alice");
        let cfg = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "labels": {"owner": "alice"}},
                         "data": {"x": "1", "y": "2"}});
        let created = cms.patch("cfg", &a, &Patch::Apply(&cfg)).await.expect("apply creates");
        assert_eq!(created.metadata.generation, Some(1));
        assert_eq!(managers(&created), vec![("alice".to_string(), "Apply".to_string())]);
        let fields = created.metadata.managed_fields.as_ref().and_then(|m| m[0].fields_v1.clone()).expect("fieldsV1");
        assert_eq!(fields.0["f:data"]["f:x"], json!({}));
        assert_eq!(fields.0["f:metadata"]["f:labels"]["f:owner"], json!({}));

        // Re-applying the same configuration is a no-op.
        let again = cms.patch("cfg", &a, &Patch::Apply(&cfg)).await.expect("re-apply");
        assert_eq!(again.metadata.resource_version, created.metadata.resource_version);

        // Bob conflicts on x (owned by alice with another value) ...
        let b = PatchParams::apply("bob");
        let bob = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"x": "9", "z": "3"}});
        let err = cms.patch("cfg", &b, &Patch::Apply(&bob)).await.expect_err("conflict");
        assert_eq!((code(&err), reason(&err).as_deref()), (Some(409), Some("Conflict")));
        if let kube::Error::Api(s) = &err {
            assert!(s.message.contains("conflict with \"alice\""), "{}", s.message);
            assert!(s.message.contains(".data.x"), "{}", s.message);
        }
        // ... but may share it with the same value ...
        let same = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"x": "1"}});
        cms.patch("cfg", &b, &Patch::Apply(&same)).await.expect("same value: shared ownership");
        // ... and takes it with force.
        let forced = cms.patch("cfg", &PatchParams::apply("bob").force(), &Patch::Apply(&bob)).await.expect("force");
        let data = forced.data.clone().expect("data");
        assert_eq!((data["x"].as_str(), data["z"].as_str()), ("9", "3"));

        // Alice re-applies without y and without x: y (only hers) is removed, x (now bob's) stays.
        let alice2 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "labels": {"owner": "alice"}}});
        let after = cms.patch("cfg", &a, &Patch::Apply(&alice2)).await.expect("alice shrinks");
        let data = after.data.clone().expect("data");
        assert!(!data.contains_key("y"), "field dropped from alice's apply is removed");
        assert_eq!(data.get("x").map(String::as_str), Some("9"));
        assert_eq!(data.get("z").map(String::as_str), Some("3"));

        // An Update-operation manager owns what it changed; apply over it conflicts.
        let upd = cms
            .patch("cfg", &PatchParams { field_manager: Some("kubectl-edit".into()), ..Default::default() },
                   &Patch::Merge(json!({"data": {"z": "4"}})))
            .await
            .expect("merge as kubectl-edit");
        assert!(managers(&upd).contains(&("kubectl-edit".to_string(), "Update".to_string())));
        let err = cms.patch("cfg", &b, &Patch::Apply(&bob)).await.expect_err("conflict with updater");
        assert_eq!(code(&err), Some(409));

        // Apply without a field manager is rejected.
        let err = cms
            .patch("cfg", &PatchParams::default(), &Patch::Apply(&alice2))
            .await
            .expect_err("fieldManager required");
        assert_eq!(code(&err), Some(400));
    })
    .await;
    server.shutdown().await;
}

#[tokio::test]
async fn server_side_apply_merges_keyed_lists_and_status() {
    let (server, client) = start().await;
    bounded(async {
        let deploys: Api<Deployment> = Api::default_namespaced(client);
        deploys.create(&PostParams::default(), &deployment()).await.expect("create");
        // A second manager adds a container: keyed by name, the first manager's container stays.
        let add = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"spec": {"containers": [
                {"name": "extra", "image": "extra:1"}]}}}});
        let d = deploys.patch("web", &PatchParams::apply("adder"), &Patch::Apply(&add)).await.expect("apply");
        let names: Vec<String> = d
            .spec
            .and_then(|s| s.template.spec)
            .map(|p| p.containers.into_iter().map(|c| c.name).collect())
            .unwrap_or_default();
        assert_eq!(names, vec!["app", "sidecar", "extra"]);

        // Status via SSA on the status subresource only touches status.
        let st = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": 50}, "status": {"readyReplicas": 1, "observedGeneration": 1}});
        let s = deploys
            .patch_status("web", &PatchParams::apply("sim").force(), &Patch::Apply(&st))
            .await
            .expect("status");
        assert_eq!(s.status.as_ref().and_then(|s| s.ready_replicas), Some(1));
        assert_eq!(s.spec.as_ref().and_then(|s| s.replicas), Some(1));
        let sub = s
            .metadata
            .managed_fields
            .iter()
            .flatten()
            .find(|m| m.manager.as_deref() == Some("sim"))
            .expect("sim");
        assert_eq!(sub.subresource.as_deref(), Some("status"));
    })
    .await;
    server.shutdown().await;
}
