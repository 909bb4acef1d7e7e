//! The `serin-testbed-api` binary: serves on the given port and writes a working kubeconfig.

use std::{process::Stdio, time::Duration};

use crate::common::bounded;
use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api,
    config::{KubeConfigOptions, Kubeconfig},
};
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test]
async fn binary_serves_and_writes_kubeconfig() {
    let dir = std::env::temp_dir().join(format!("serin-testbed-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let kubeconfig = dir.join("kubeconfig");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_serin-testbed-api"))
        .args(["--port", "0", "--bookmark-interval", "0.5", "--kubeconfig"])
        .arg(&kubeconfig)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("binary starts");
    let stdout = child.stdout.take().expect("stdout");
    let result = bounded(async {
        let line = BufReader::new(stdout).lines().next_line().await.expect("read").expect("banner line");
        assert!(line.starts_with("serving http://127.0.0.1:"), "{line}");
        let kc = Kubeconfig::read_from(&kubeconfig).expect("kubeconfig");
        let config =
            kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.expect("config");
        let client = kube::Client::try_from(config).expect("client");
        let nss: Api<Namespace> = Api::all(client);
        let names: Vec<String> = nss
            .list(&Default::default())
            .await
            .expect("list")
            .items
            .into_iter()
            .filter_map(|n| n.metadata.name)
            .collect();
        assert!(names.contains(&"default".to_string()));
    })
    .await;
    // SIGTERM by pid: the binary shuts down gracefully and exits 0.
    let pid = child.id().expect("child pid");
    let term =
        std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().expect("kill runs");
    assert!(term.success());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("child exits")
        .expect("wait");
    assert!(status.success(), "graceful exit: {status}");
    std::fs::remove_dir_all(&dir).expect("cleanup");
    result
}
