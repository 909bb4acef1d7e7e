//! The Deployment simulator runs demo app processes for Deployments, reports rollout status like
//! the deployment controller, rolls on template changes, and stops processes on scale-down and
//! deletion.

use std::time::Duration;

use crate::common::{bed_bounded, init_tracing};
use k8s_openapi::api::apps::v1::Deployment;
use kube::{
    Api,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use serde_json::json;
use serin_e2e::{
    ApiServer, ServerConfig, demo, manifests,
    simulator::{Simulator, SimulatorConfig},
};

async fn get_version(addr: std::net::SocketAddr) -> Option<String> {
    let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(2)).build().ok()?;
    let resp = client.get(format!("http://{addr}/")).send().await.ok()?;
    resp.headers().get(demo::VERSION_HEADER)?.to_str().ok().map(str::to_string)
}

/// Waits (at most 5 s) until nothing answers at `addr` any more (a retired pod drains first).
async fn wait_gone(addr: std::net::SocketAddr) -> bool {
    for _ in 0..100 {
        if get_version(addr).await.is_none() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

async fn wait_status(api: &Api<Deployment>, name: &str, pred: impl Fn(&Deployment) -> bool) -> Deployment {
    for _ in 0..200 {
        let d = api.get(name).await.expect("get deployment");
        if pred(&d) {
            return d;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "deployment {name} never reached the expected status: {:?}",
        api.get(name).await.ok().map(|d| d.status)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulator_runs_pods_reports_status_and_rolls() {
    init_tracing();
    bed_bounded(async {
        let server = ApiServer::start(ServerConfig::default()).await.expect("api");
        let client = server.client().expect("client");
        let sim = Simulator::start(
            client.clone(),
            SimulatorConfig::new(env!("CARGO_BIN_EXE_serin-demo-app").into()),
        )
        .expect("simulator");
        let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
        let obj: Deployment =
            serde_json::from_value(manifests::deployment("default", "podinfo", "demo:1.0.0", 2))
                .expect("deployment");
        api.create(&PostParams::default(), &obj).await.expect("create");

        // Two processes, status written like the deployment controller.
        let d = wait_status(&api, "podinfo", serin_e2e::bed::deployment_rolled_out).await;
        let status = d.status.expect("status");
        assert_eq!(status.observed_generation, Some(1));
        assert_eq!(
            (status.replicas, status.updated_replicas, status.ready_replicas, status.available_replicas),
            (Some(2), Some(2), Some(2), Some(2))
        );
        let progressing =
            status.conditions.iter().flatten().find(|c| c.type_ == "Progressing").expect("Progressing");
        assert_eq!(progressing.reason.as_deref(), Some("NewReplicaSetAvailable"));
        let pods = sim.endpoints().of_deployment("default", "podinfo");
        assert_eq!(pods.len(), 2);
        let re = regex::Regex::new("^podinfo-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)$").expect("regex");
        for pod in &pods {
            assert!(re.is_match(&pod.pod_name), "{}", pod.pod_name);
            assert_eq!(get_version(pod.addr).await.as_deref(), Some("1.0.0"));
        }

        // A template change rolls: new processes with the new image, old ones stopped.
        let container = json!({"name": "demo", "image": "demo:2.0.0"});
        let patch = json!({"spec": {"template": {"spec": {"containers": [container]}}}});
        api.patch("podinfo", &PatchParams::default(), &Patch::Strategic(&patch)).await.expect("patch image");
        let d = wait_status(&api, "podinfo", |d| {
            d.status.as_ref().and_then(|s| s.observed_generation) == Some(2)
                && serin_e2e::bed::deployment_rolled_out(d)
        })
        .await;
        assert_eq!(d.status.and_then(|s| s.replicas), Some(2));
        let new_pods = sim.endpoints().of_deployment("default", "podinfo");
        assert_eq!(new_pods.len(), 2);
        for pod in &new_pods {
            assert_eq!(pod.image, "demo:2.0.0");
            assert_eq!(get_version(pod.addr).await.as_deref(), Some("2.0.0"));
        }
        for old in &pods {
            assert!(wait_gone(old.addr).await, "old pod {} still answers", old.pod_name);
        }

        // Scale to zero stops every process and reports zero replicas.
        api.patch("podinfo", &PatchParams::default(), &Patch::Merge(&json!({"spec": {"replicas": 0}})))
            .await
            .expect("scale down");
        wait_status(&api, "podinfo", |d| {
            d.status.as_ref().is_some_and(|s| s.observed_generation == Some(3) && s.replicas == Some(0))
        })
        .await;
        assert!(sim.endpoints().of_deployment("default", "podinfo").is_empty());
        for pod in &new_pods {
            assert!(wait_gone(pod.addr).await, "pod {} still answers", pod.pod_name);
        }

        // Scale up again, then delete: the processes go away with the Deployment.
        api.patch("podinfo", &PatchParams::default(), &Patch::Merge(&json!({"spec": {"replicas": 1}})))
            .await
            .expect("scale up");
        wait_status(&api, "podinfo", serin_e2e::bed::deployment_rolled_out).await;
        let last = sim.endpoints().of_deployment("default", "podinfo");
        assert_eq!(last.len(), 1);
        api.delete("podinfo", &DeleteParams::default()).await.expect("delete");
        for _ in 0..100 {
            if sim.endpoints().all().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(sim.endpoints().all().is_empty());
        assert!(wait_gone(last[0].addr).await, "pod {} still answers", last[0].pod_name);
        sim.shutdown().await;
        server.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_pod_is_replaced() {
    init_tracing();
    bed_bounded(async {
        let server = ApiServer::start(ServerConfig::default()).await.expect("api");
        let client = server.client().expect("client");
        let sim = Simulator::start(
            client.clone(),
            SimulatorConfig::new(env!("CARGO_BIN_EXE_serin-demo-app").into()),
        )
        .expect("simulator");
        let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
        let obj: Deployment =
            serde_json::from_value(manifests::deployment("default", "crashy", "demo:1.0.0", 1))
                .expect("deployment");
        api.create(&PostParams::default(), &obj).await.expect("create");
        wait_status(&api, "crashy", serin_e2e::bed::deployment_rolled_out).await;
        let first = sim.endpoints().of_deployment("default", "crashy");
        assert_eq!(first.len(), 1);
        // Kill the pod's process by its PID, found in /proc by the pod name on its command line.
        let pid = find_pid(&first[0].pod_name).expect("pod process found");
        let status =
            std::process::Command::new("kill").arg("-9").arg(pid.to_string()).status().expect("kill");
        assert!(status.success());
        let mut replaced = None;
        for _ in 0..200 {
            let now = sim.endpoints().of_deployment("default", "crashy");
            if now.len() == 1 && now[0].pod_name != first[0].pod_name {
                replaced = Some(now[0].clone());
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let replaced = replaced.expect("the crashed pod was replaced");
        assert_eq!(get_version(replaced.addr).await.as_deref(), Some("1.0.0"));
        sim.shutdown().await;
        server.shutdown().await;
    })
    .await;
}

/// The PID of the demo app process started for `pod_name` (its command line names the pod).
fn find_pid(pod_name: &str) -> Option<u32> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        if args.contains(&pod_name.as_bytes()) {
            return Some(pid);
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_that_never_starts_exceeds_the_progress_deadline_and_old_pods_keep_serving() {
    init_tracing();
    bed_bounded(async {
        let server = ApiServer::start(ServerConfig::default()).await.expect("api");
        let client = server.client().expect("client");
        let sim = Simulator::start(
            client.clone(),
            SimulatorConfig::new(env!("CARGO_BIN_EXE_serin-demo-app").into()),
        )
        .expect("simulator");
        let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
        let mut obj = manifests::deployment("default", "stuck", "demo:1.0.0", 1);
        obj["spec"]["progressDeadlineSeconds"] = json!(1);
        let obj: Deployment = serde_json::from_value(obj).expect("deployment");
        api.create(&PostParams::default(), &obj).await.expect("create");
        wait_status(&api, "stuck", serin_e2e::bed::deployment_rolled_out).await;
        let old = sim.endpoints().of_deployment("default", "stuck");

        let container = json!({"name": "demo", "image": "demo:2.0.0-crash"});
        let patch = json!({"spec": {"template": {"spec": {"containers": [container]}}}});
        api.patch("stuck", &PatchParams::default(), &Patch::Strategic(&patch)).await.expect("patch image");
        let d = wait_status(&api, "stuck", |d| {
            d.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|cs| {
                cs.iter().any(|c| {
                    c.type_ == "Progressing" && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
                })
            })
        })
        .await;
        let status = d.status.expect("status");
        assert_eq!(status.observed_generation, Some(2));
        assert_eq!(status.updated_replicas, Some(0));
        assert_eq!(status.replicas, Some(1), "the old pod stays");
        assert!(!serin_e2e::bed::deployment_rolled_out(&api.get("stuck").await.expect("get")));
        assert_eq!(sim.endpoints().of_deployment("default", "stuck"), old);
        assert_eq!(get_version(old[0].addr).await.as_deref(), Some("1.0.0"));
        sim.shutdown().await;
        server.shutdown().await;
    })
    .await;
}
