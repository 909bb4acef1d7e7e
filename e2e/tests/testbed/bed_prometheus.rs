//! Real Prometheus scrapes the proxy and the pods: the builtin Istio and kubernetes queries
//! return real values, and an `-errors-50` canary shows its error rate.

use std::{path::Path, time::Duration};

use crate::common::{bed_bounded, bed_config, init_tracing};
use k8s_openapi::api::{apps::v1::Deployment, core::v1::Service};
use kube::{Api, api::PostParams};
use serin_e2e::{
    TestBed,
    bed::{metric_template_query, render_query},
    manifests,
};

fn query(provider: &str, metric: &str, target: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../analysis/{provider}/{metric}.yaml"));
    render_query(&metric_template_query(&path).expect("template"), "default", target, "1m")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builtin_queries_see_real_traffic_and_errors() {
    init_tracing();
    bed_bounded(async {
        let bed = TestBed::start(bed_config()).await.expect("test bed");
        let client = bed.client();
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
        let services: Api<Service> = Api::namespaced(client.clone(), "default");
        for (name, image) in [("podinfo-primary", "demo:1.0.0"), ("podinfo", "demo:2.0.0-errors-50")] {
            let d: Deployment =
                serde_json::from_value(manifests::deployment("default", name, image, 1)).expect("deployment");
            deployments.create(&PostParams::default(), &d).await.expect("create deployment");
            bed.wait_deployment_ready("default", name, Duration::from_secs(10)).await.expect("ready");
        }
        // The apex sends to the primary; a second Service reaches the canary pods, as Serin's
        // `<name>-canary` Service does.
        for (svc, app) in [("podinfo", "podinfo-primary"), ("podinfo-canary", "podinfo")] {
            let s: Service =
                serde_json::from_value(manifests::service("default", svc, app)).expect("service");
            services.create(&PostParams::default(), &s).await.expect("create service");
        }

        // Background traffic (bounded: stops when told, or after 60 s).
        let load = bed
            .start_load(
                &[("default", "podinfo"), ("default", "podinfo-canary")],
                Duration::from_millis(10),
                Duration::from_secs(60),
            )
            .expect("load");

        let prom = bed.prometheus();
        let timeout = Duration::from_secs(30);
        let primary_sr = prom
            .wait_for_value(&query("istio", "request-success-rate", "podinfo-primary"), timeout, |v| v > 99.0)
            .await
            .expect("istio success rate of the primary");
        let canary_sr = prom
            .wait_for_value(&query("istio", "request-success-rate", "podinfo"), timeout, |v| {
                (40.0..=60.0).contains(&v)
            })
            .await
            .expect("istio success rate of the erroring canary");
        let count = prom
            .wait_for_value(&query("istio", "request-count", "podinfo"), timeout, |v| v > 0.0)
            .await
            .expect("istio request count");
        let duration = prom
            .wait_for_value(&query("istio", "request-duration", "podinfo"), timeout, |v| v > 0.0)
            .await
            .expect("istio p99 latency");
        let k8s_sr = prom
            .wait_for_value(&query("kubernetes", "request-success-rate", "podinfo"), timeout, |v| {
                (40.0..=60.0).contains(&v)
            })
            .await
            .expect("kubernetes (app metrics) success rate of the canary");
        let k8s_duration = prom
            .wait_for_value(&query("kubernetes", "request-duration", "podinfo"), timeout, |v| v > 0.0)
            .await
            .expect("kubernetes p99 latency");
        let traffic = load.stop().await;
        assert_eq!(traffic.failed, 0, "{traffic:?}");
        let sent: usize = traffic.by_status.values().sum();
        let errors = traffic.by_status.get(&500).copied().unwrap_or(0);
        assert!(errors > 0 && errors * 3 < sent, "about a quarter are 500s: {traffic:?}");
        eprintln!("sent {sent}; istio: primary {primary_sr:.1}% canary {canary_sr:.1}% count {count:.0}");
        eprintln!("istio p99 {duration:.1} ms; kubernetes: canary {k8s_sr:.1}% p99 {k8s_duration:.1} ms");
        bed.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_stops_and_restarts_by_pid() {
    init_tracing();
    bed_bounded(async {
        let mut bed = TestBed::start(bed_config()).await.expect("test bed");
        let pid = bed.prometheus().pid().expect("running");
        assert!(Path::new(&format!("/proc/{pid}")).exists());
        bed.prometheus_mut().stop();
        assert!(!bed.prometheus().is_running());
        assert!(bed.prometheus().query("up").await.is_err(), "a stopped Prometheus does not answer");
        bed.prometheus_mut().restart().await.expect("restart");
        let samples = bed.prometheus().query("vector(1)").await.expect("query after restart");
        assert_eq!(samples.len(), 1);
        bed.shutdown().await;
        assert!(!Path::new(&format!("/proc/{pid}")).exists() || !is_prometheus(pid));
    })
    .await;
}

fn is_prometheus(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.contains("prometheus"))
}
