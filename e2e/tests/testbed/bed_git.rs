//! The Git server and the Flux-like sync loop: a pushed commit is applied to the API with the
//! `kustomize-controller` field manager, a revert commit brings the cluster back (down to the
//! running pods), and a removed manifest is pruned.

use std::time::Duration;

use crate::common::{bed_bounded, bed_config, init_tracing};
use k8s_openapi::api::{apps::v1::Deployment, core::v1::Service};
use kube::{
    Api,
    api::{ApiResource, DynamicObject, GroupVersionKind},
};
use serin_e2e::{TestBed, manifests, sync::FIELD_MANAGER};

const SYNC: Duration = Duration::from_secs(15);

/// The Flux GitRepository and Kustomization the test bed maintains, as JSON.
async fn flux_objects(bed: &TestBed) -> (serde_json::Value, serde_json::Value) {
    let get = |group: &str, kind: &str, plural: &str| {
        let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, "v1", kind), plural);
        let api: Api<DynamicObject> = Api::namespaced_with(bed.client(), "flux-system", &ar);
        async move { serde_json::to_value(api.get("testbed").await.expect("flux object")).expect("json") }
    };
    let repo = get("source.toolkit.fluxcd.io", "GitRepository", "gitrepositories").await;
    let ks = get("kustomize.toolkit.fluxcd.io", "Kustomization", "kustomizations").await;
    (repo, ks)
}

fn image_of(d: &Deployment) -> String {
    d.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_are_applied_and_a_revert_brings_the_cluster_back() {
    init_tracing();
    bed_bounded(async {
        let bed = TestBed::start(bed_config()).await.expect("test bed");
        let v1 = manifests::to_yaml(&[
            manifests::namespace("demo"),
            manifests::deployment("demo", "podinfo", "demo:1.0.0", 1),
            manifests::service("demo", "podinfo", "podinfo"),
        ]);
        let first = bed
            .commit_and_sync(
                &[("clusters/testbed/podinfo.yaml", Some(&v1)), ("README.md", Some("not applied\n"))],
                "podinfo 1.0.0",
                SYNC,
            )
            .await
            .expect("first sync");
        assert_eq!(bed.sync().status().applied, 3);
        // Flux's objects point at the repository and record the applied revision.
        let (repo, ks) = flux_objects(&bed).await;
        assert_eq!(repo["spec"]["url"], bed.git().url());
        assert_eq!(repo["spec"]["ref"]["branch"], "main");
        assert_eq!(ks["spec"]["path"], "./clusters/testbed");
        assert_eq!(ks["spec"]["sourceRef"]["name"], "testbed");
        assert_eq!(ks["status"]["lastAppliedRevision"], format!("main@sha1:{first}"));
        let deployments: Api<Deployment> = Api::namespaced(bed.client(), "demo");
        let d = deployments.get("podinfo").await.expect("deployment applied");
        assert_eq!(image_of(&d), "demo:1.0.0");
        let managers: Vec<String> =
            d.metadata.managed_fields.iter().flatten().filter_map(|m| m.manager.clone()).collect();
        assert!(managers.iter().any(|m| m == FIELD_MANAGER), "{managers:?}");
        assert_eq!(
            d.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("kustomize.toolkit.fluxcd.io/name"))
                .map(String::as_str),
            Some("testbed")
        );
        bed.wait_deployment_ready("demo", "podinfo", SYNC).await.expect("v1 ready");
        let traffic = bed.send_traffic("demo", "podinfo", 5).await;
        assert_eq!(traffic.by_version.get("1.0.0"), Some(&5), "{traffic:?}");

        // A release commit, then its revert: the cluster follows both.
        let v2 = v1.replace("demo:1.0.0", "demo:2.0.0");
        let release = bed
            .commit_and_sync(&[("clusters/testbed/podinfo.yaml", Some(&v2))], "podinfo 2.0.0", SYNC)
            .await
            .expect("release sync");
        assert_eq!(image_of(&deployments.get("podinfo").await.expect("get")), "demo:2.0.0");
        bed.wait_deployment_ready("demo", "podinfo", SYNC).await.expect("v2 ready");
        assert_eq!(bed.send_traffic("demo", "podinfo", 5).await.by_version.get("2.0.0"), Some(&5));

        let revert = bed.git().revert(&release).await.expect("revert pushed");
        bed.sync().wait_for_revision(&revert, SYNC).await.expect("revert synced");
        assert_eq!(image_of(&deployments.get("podinfo").await.expect("get")), "demo:1.0.0");
        bed.wait_deployment_ready("demo", "podinfo", SYNC).await.expect("reverted ready");
        assert_eq!(bed.send_traffic("demo", "podinfo", 5).await.by_version.get("1.0.0"), Some(&5));
        let log = bed.git().log().await.expect("log");
        assert_eq!(
            log.iter().map(|c| c.sha.as_str()).collect::<Vec<_>>(),
            vec![revert.as_str(), release.as_str(), first.as_str()]
        );
        assert!(log[0].subject.starts_with("Revert \"podinfo 2.0.0\""), "{:?}", log[0]);
        assert!(
            bed.git()
                .show("main", "clusters/testbed/podinfo.yaml")
                .await
                .expect("show")
                .contains("demo:1.0.0")
        );

        // Removing a manifest prunes its object.
        let only_deploy = manifests::to_yaml(&[
            manifests::namespace("demo"),
            manifests::deployment("demo", "podinfo", "demo:1.0.0", 1),
        ]);
        bed.commit_and_sync(
            &[("clusters/testbed/podinfo.yaml", Some(&only_deploy))],
            "drop the service",
            SYNC,
        )
        .await
        .expect("prune sync");
        let services: Api<Service> = Api::namespaced(bed.client(), "demo");
        assert!(services.get_opt("podinfo").await.expect("get").is_none(), "the Service was pruned");
        assert!(bed.sync().status().error.is_none());
        bed.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_manifest_is_reported_and_the_next_commit_recovers() {
    init_tracing();
    bed_bounded(async {
        let bed = TestBed::start(bed_config()).await.expect("test bed");
        let bad = "apiVersion: example.invalid/v1\nkind: Nothing\nmetadata:\n  name: x\n";
        bed.git().commit(&[("clusters/testbed/bad.yaml", Some(bad))], "bad").await.expect("commit");
        let mut error = None;
        for _ in 0..100 {
            error = bed.sync().status().error;
            if error.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(error.is_some(), "the sync loop reports the failure");
        let mut ready = serde_json::Value::Null;
        for _ in 0..100 {
            let (_, ks) = flux_objects(&bed).await;
            ready = ks["status"]["conditions"][0]["status"].clone();
            if ready == "False" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(ready, "False", "the Kustomization is not Ready");
        let good = manifests::to_yaml(&[manifests::deployment("default", "ok", "demo:1.0.0", 1)]);
        bed.commit_and_sync(
            &[("clusters/testbed/bad.yaml", None), ("clusters/testbed/ok.yaml", Some(&good))],
            "fix",
            SYNC,
        )
        .await
        .expect("recovered");
        assert!(bed.sync().status().error.is_none());
        bed.shutdown().await;
    })
    .await;
}
