//! The `serin-testbed` binary starts the bed, prints its addresses, and stops everything on
//! SIGTERM.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

#[test]
fn binary_prints_addresses_and_stops_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_serin-testbed"))
        .env("SERIN_DEMO_APP", env!("CARGO_BIN_EXE_serin-demo-app"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start serin-testbed");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(line) => line,
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no address line in time");
        }
    };
    let info: serde_json::Value = serde_json::from_str(&line).expect("json line");
    for key in ["api", "proxy", "prometheus", "git", "alerts", "kubeconfig", "dir"] {
        assert!(info[key].is_string(), "{key} missing in {info}");
    }
    let kubeconfig = std::fs::read_to_string(info["kubeconfig"].as_str().expect("path")).expect("kubeconfig");
    assert!(kubeconfig.contains(info["api"].as_str().expect("api")));
    let prometheus_pid = find_child_pid(child.id(), "prometheus");
    assert!(prometheus_pid.is_some(), "prometheus runs as a child");

    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(status.success(), "exit status {status}");
            break;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("serin-testbed did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if let Some(pid) = prometheus_pid {
        let alive =
            std::fs::read_to_string(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.contains("prometheus"));
        assert!(!alive, "prometheus {pid} survived");
    }
    assert!(!std::path::Path::new(info["dir"].as_str().expect("dir")).exists());
}

/// The PID of a direct child of `parent` whose command line contains `needle`.
fn find_child_pid(parent: u32, needle: &str) -> Option<u32> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // Field 4 (after the parenthesised command) is the parent PID.
        let ppid =
            stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        let cmdline = std::fs::read_to_string(entry.path().join("cmdline")).unwrap_or_default();
        if ppid == Some(parent) && cmdline.contains(needle) {
            return Some(pid);
        }
    }
    None
}
