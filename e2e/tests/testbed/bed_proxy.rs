//! The weighted proxy routes by the apex Service's selector (Serin's `kubernetes` router) and
//! follows a selector switch; it exports Istio-shaped metrics.

use std::time::Duration;

use crate::common::{bed_bounded, init_tracing};
use k8s_openapi::api::{apps::v1::Deployment, core::v1::Service};
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::json;
use serin_e2e::{
    ApiServer, ServerConfig, manifests,
    proxy::Proxy,
    simulator::{Simulator, SimulatorConfig},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_follows_a_service_selector_switch() {
    init_tracing();
    bed_bounded(async {
        let server = ApiServer::start(ServerConfig::default()).await.expect("api");
        let client = server.client().expect("client");
        let sim = Simulator::start(
            client.clone(),
            SimulatorConfig::new(env!("CARGO_BIN_EXE_serin-demo-app").into()),
        )
        .expect("simulator");
        let proxy = Proxy::start(client.clone(), sim.endpoints(), 0, false).await.expect("proxy");
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
        let services: Api<Service> = Api::namespaced(client.clone(), "default");
        for (name, image) in [("podinfo-primary", "demo:1.0.0"), ("podinfo", "demo:2.0.0")] {
            let d: Deployment =
                serde_json::from_value(manifests::deployment("default", name, image, 2)).expect("deployment");
            deployments.create(&PostParams::default(), &d).await.expect("create deployment");
        }
        let svc: Service =
            serde_json::from_value(manifests::service("default", "podinfo", "podinfo-primary"))
                .expect("service");
        services.create(&PostParams::default(), &svc).await.expect("create service");
        for _ in 0..200 {
            if sim.endpoints().all().len() == 4 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(sim.endpoints().all().len(), 4);

        let http =
            reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(5)).build().expect("http");
        let url = proxy.service_url("default", "podinfo");
        let versions = |n: usize| {
            let http = http.clone();
            let url = url.clone();
            async move {
                let mut out = Vec::new();
                for _ in 0..n {
                    let resp = http.get(&url).send().await.expect("request");
                    assert_eq!(resp.status(), 200);
                    let v = resp
                        .headers()
                        .get("x-demo-version")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    let w = resp
                        .headers()
                        .get("x-testbed-workload")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    out.push((v, w));
                }
                out
            }
        };
        let before = versions(20).await;
        assert!(before.iter().all(|(v, w)| v == "1.0.0" && w == "podinfo-primary"), "{before:?}");
        let pods: std::collections::BTreeSet<String> = {
            let mut set = std::collections::BTreeSet::new();
            for _ in 0..4 {
                let resp = http.get(&url).send().await.expect("request");
                set.insert(
                    resp.headers().get("x-demo-pod").and_then(|v| v.to_str().ok()).unwrap_or("").to_string(),
                );
            }
            set
        };
        assert_eq!(pods.len(), 2, "round robin over both primary pods: {pods:?}");

        // What Serin's kubernetes router does to send everything to the canary.
        services
            .patch(
                "podinfo",
                &PatchParams::default(),
                &Patch::Merge(&json!({"spec": {"selector": {"app": "podinfo"}}})),
            )
            .await
            .expect("switch selector");
        let mut switched = false;
        for _ in 0..100 {
            if versions(1).await[0].0 == "2.0.0" {
                switched = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(switched, "the proxy never followed the selector");
        let after = versions(20).await;
        assert!(after.iter().all(|(v, w)| v == "2.0.0" && w == "podinfo"), "{after:?}");

        // Unknown services are 404; the metrics page has the Istio series.
        let missing = http.get(proxy.service_url("default", "nope")).send().await.expect("request");
        assert_eq!(missing.status(), 404);
        let metrics = http
            .get(format!("{}/metrics", proxy.url()))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("body");
        let series = [
            "istio_requests_total{destination_app=\"podinfo\",destination_service_name=\"podinfo\",",
            "destination_service_namespace=\"default\",destination_workload=\"podinfo\",",
            "destination_workload_namespace=\"default\",reporter=\"destination\",response_code=\"200\",",
            "source_workload=\"testbed-proxy\"} 21\n",
        ]
        .concat();
        assert!(metrics.contains(&series), "{metrics}");
        assert!(metrics.contains("istio_request_duration_milliseconds_bucket{"), "{metrics}");
        drop(proxy);
        sim.shutdown().await;
        server.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_splits_by_httproute_weights() {
    init_tracing();
    crate::common::bed_bounded(async {
        let bed = serin_e2e::TestBed::start(crate::common::bed_config()).await.expect("test bed");
        let client = bed.client();
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
        let services: Api<Service> = Api::namespaced(client.clone(), "default");
        for (name, image) in [("podinfo-primary", "demo:1.0.0"), ("podinfo", "demo:2.0.0")] {
            let d: Deployment =
                serde_json::from_value(manifests::deployment("default", name, image, 1)).expect("deployment");
            deployments.create(&PostParams::default(), &d).await.expect("create deployment");
            bed.wait_deployment_ready("default", name, Duration::from_secs(10)).await.expect("ready");
        }
        for (svc, app) in [("podinfo-primary", "podinfo-primary"), ("podinfo-canary", "podinfo")] {
            let s: Service =
                serde_json::from_value(manifests::service("default", svc, app)).expect("service");
            services.create(&PostParams::default(), &s).await.expect("create service");
        }
        let ar = kube::api::ApiResource::from_gvk_with_plural(
            &kube::api::GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute"),
            "httproutes",
        );
        let routes: Api<kube::api::DynamicObject> = Api::namespaced_with(client.clone(), "default", &ar);
        let route = json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "podinfo", "namespace": "default"},
            "spec": {"rules": [{"backendRefs": [
                {"name": "podinfo-primary", "port": 80, "weight": 90},
                {"name": "podinfo-canary", "port": 80, "weight": 10},
            ]}]},
        });
        routes
            .patch("podinfo", &PatchParams::apply("serin").force(), &Patch::Apply(&route))
            .await
            .expect("route");
        let mut up = false;
        for _ in 0..100 {
            if bed.send_traffic("default", "podinfo", 1).await.by_status.contains_key(&200) {
                up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(up, "the proxy never saw the route");
        let traffic = bed.send_traffic("default", "podinfo", 100).await;
        assert_eq!(traffic.by_version.get("1.0.0"), Some(&90), "{traffic:?}");
        assert_eq!(traffic.by_version.get("2.0.0"), Some(&10), "{traffic:?}");

        // Promote: all weight to the canary backend.
        let weights = json!({"spec": {"rules": [{"backendRefs": [
            {"name": "podinfo-primary", "port": 80, "weight": 0},
            {"name": "podinfo-canary", "port": 80, "weight": 100},
        ]}]}});
        routes.patch("podinfo", &PatchParams::default(), &Patch::Merge(&weights)).await.expect("weights");
        let mut moved = false;
        for _ in 0..100 {
            if bed.send_traffic("default", "podinfo", 10).await.by_version.get("2.0.0") == Some(&10) {
                moved = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(moved, "the proxy never followed the new weights");
        let traffic = bed.send_traffic("default", "podinfo", 20).await;
        assert_eq!(traffic.by_version.get("2.0.0"), Some(&20), "{traffic:?}");
        bed.shutdown().await;
    })
    .await;
}
