//! `serin-testbed`: starts the whole test bed (`serin_e2e::TestBed`) as one process, prints its
//! addresses as one JSON line on stdout, and runs until SIGTERM or Ctrl-C, then stops every
//! process it started. For the demo and for driving the bed from outside Rust.
//!
//! The `serin-demo-app` binary must sit next to this one (Cargo builds both) or be named by
//! `$SERIN_DEMO_APP`. Logs go to stderr (`RUST_LOG`, default `info`).

use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};

use serin_e2e::{BedConfig, TestBed};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let bed = TestBed::start(BedConfig::from_env()?).await?;
    let info = serde_json::json!({
        "api": bed.api().url(),
        "kubeconfig": bed.kubeconfig_path(),
        "proxy": bed.proxy().url(),
        "prometheus": bed.prometheus().url(),
        "git": bed.git().url(),
        "alerts": bed.alerts().url(),
        "syncPath": "clusters/testbed",
        "dir": bed.dir(),
    });
    // Handlers first: whoever reads the line below may signal at once.
    let mut term = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    println!("{info}");
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = term.recv() => {}
    }
    tokio::time::timeout(Duration::from_secs(20), bed.shutdown()).await?;
    Ok(())
}
