//! `TestBed::start` brings everything up fast, writes a working kubeconfig with Serin's CRDs
//! registered, the alert receiver stores what it gets, and shutdown kills every process.

use std::{path::Path, time::Duration};

use crate::common::{bed_bounded, bed_config, init_tracing};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{Api, api::ListParams};
use serde_json::json;
use serin_e2e::TestBed;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bed_starts_fast_and_stops_clean() {
    init_tracing();
    bed_bounded(async {
        let started = std::time::Instant::now();
        let bed = TestBed::start(bed_config()).await.expect("test bed");
        let elapsed = started.elapsed();
        eprintln!("test bed up in {elapsed:?}: {bed:?}");
        assert!(elapsed < Duration::from_secs(10), "startup took {elapsed:?}");

        // The kubeconfig works for a fresh client, and Serin's CRDs are there.
        let kubeconfig = kube::config::Kubeconfig::read_from(bed.kubeconfig_path()).expect("kubeconfig");
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.expect("config");
        let client = kube::Client::try_from(config).expect("client");
        let crds: Api<CustomResourceDefinition> = Api::all(client);
        let names: Vec<String> = crds
            .list(&ListParams::default())
            .await
            .expect("list crds")
            .items
            .into_iter()
            .filter_map(|c| c.metadata.name)
            .collect();
        for want in ["canaries.serin.dev", "metrictemplates.serin.dev", "alertproviders.serin.dev"] {
            assert!(names.iter().any(|n| n == want), "{want} missing from {names:?}");
        }

        // The alert receiver stores JSON bodies, per path, and lists them over HTTP.
        let http = reqwest::Client::builder().no_proxy().build().expect("http");
        let fields = json!([{"title": "sha", "value": "abc"}]);
        let body = json!({"text": "podinfo rolled back", "attachments": [{"fields": fields}]});
        let resp = http.post(format!("{}/slack", bed.alerts().url())).json(&body).send().await.expect("post");
        assert!(resp.status().is_success());
        let alert =
            bed.alerts().wait_for(Duration::from_secs(2), |a| a.path == "/slack").await.expect("alert");
        assert_eq!(alert.body, body);
        let listed: serde_json::Value = http
            .get(format!("{}/alerts", bed.alerts().url()))
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        assert_eq!(listed[0]["body"], body);

        // Git is reachable and empty; Prometheus answers.
        assert_eq!(bed.git().head().await.expect("ls-remote"), "");
        assert_eq!(bed.prometheus().query("vector(1)").await.expect("query").len(), 1);

        let pids = [bed.prometheus().pid().expect("prometheus pid"), bed.git().pid().expect("git pid")];
        let dir = bed.dir().to_path_buf();
        bed.shutdown().await;
        for pid in pids {
            let alive = std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.contains("prometheus") || c.contains("git-daemon"));
            assert!(!alive, "process {pid} still running");
        }
        assert!(!Path::new(&dir).exists(), "the temporary directory is removed");
    })
    .await;
}
