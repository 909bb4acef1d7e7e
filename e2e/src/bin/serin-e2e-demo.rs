//! `serin-e2e-demo`: the README's demo. Starts the test bed and `serin controller`, commits an
//! app with its Canary to Git, then releases a healthy version (promoted step by step) and an
//! erroring one (rolled back and reverted in Git), printing the Canary's phase, weight and
//! metric values as they change, and ends with the Git log that holds the revert commit.
//!
//! `scripts/demo.sh` builds and runs it. The `serin` binary comes from `--serin`, `$SERIN_BIN`
//! or the directory of this executable; `serin-demo-app` likewise (`$SERIN_DEMO_APP`). Exit
//! code 0 when both scenarios behaved as expected, 1 otherwise.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::Parser;
use serin_e2e::{
    BedConfig, BedError,
    scenario::{Harness, HarnessConfig, controller::find_serin, scenarios},
};

/// Command line of the demo.
#[derive(Parser)]
#[command(about = "Serin's end-to-end demo on the local test bed")]
struct Args {
    /// The `serin` binary to run as the controller.
    #[arg(long)]
    serin: Option<PathBuf>,
    /// Image of the healthy release.
    #[arg(long, default_value = "demo:2.0.0")]
    good: String,
    /// Image of the bad release (`-errors-N`: N % of answers are 500; `-slow-M`: +M ms).
    #[arg(long, default_value = "demo:3.0.0-errors-20")]
    bad: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\ndemo failed: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), BedError> {
    let serin = args.serin.or_else(find_serin).ok_or_else(|| BedError::Missing {
        program: "serin".into(),
        hint: "pass --serin PATH or build it with `cargo build --bin serin`".into(),
    })?;
    let mut config = HarnessConfig::new(serin, BedConfig::from_env()?);
    config.live = true;
    println!(
        "==> starting the test bed (API stand-in, Prometheus, git daemon, sync loop) and serin controller"
    );
    let mut h = Harness::start(config).await?;
    println!(
        "    kubeconfig {}\n    prometheus {}\n    git        {}\n    app        {}",
        h.bed.kubeconfig_path().display(),
        h.bed.prometheus().url(),
        h.bed.git().url(),
        h.bed.service_url(&h.app.namespace, &h.app.name)
    );
    let result = demo(&mut h, &args.good, &args.bad).await;
    if result.is_err() {
        for c in &h.controllers {
            eprintln!("--- controller log {}\n{}", c.log_file().display(), c.log_tail(60));
        }
    }
    tokio::time::timeout(Duration::from_secs(30), h.shutdown())
        .await
        .map_err(|_| BedError::Timeout(Duration::from_secs(30), "test bed shutdown".into()))?;
    result
}

async fn demo(h: &mut Harness, good: &str, bad: &str) -> Result<(), BedError> {
    h.install("demo:1.0.0").await?;
    println!("\n### Scenario 1: a healthy release is promoted");
    let promoted = scenarios::healthy_release_is_promoted(h, good).await?;
    println!(
        "    promoted {good} (commit {}) through weights {:?} in {:.1}s",
        short(&promoted.commit),
        promoted.weights,
        promoted.duration.as_secs_f64()
    );
    println!("\n### Scenario 2: a bad release is rolled back and reverted in Git");
    // A slow image fails on latency, an erroring one on the success rate.
    let metric = if bad.contains("-slow-") { "request-duration" } else { "request-success-rate" };
    let rollback = scenarios::bad_release_is_rolled_back(h, bad, metric).await?;
    scenarios::check_rollback_time(h, &rollback)?;
    println!(
        "    rolled back {bad} on {}: {:.1}s after the first failed check, {:.1}s after it first got traffic",
        rollback.failing_metric,
        rollback.rollback_time.as_secs_f64(),
        rollback.exposure.as_secs_f64()
    );
    println!("\n==> git log of the GitOps repository (newest first)");
    for commit in h.bed.git().log().await? {
        println!("    {} {}", short(&commit.sha), commit.subject);
    }
    println!("\n==> the revert commit {}", short(&rollback.revert));
    for line in h
        .bed
        .git()
        .log()
        .await?
        .iter()
        .find(|c| c.sha == rollback.revert)
        .into_iter()
        .flat_map(|c| c.message.lines())
    {
        println!("    {line}");
    }
    let alerts = h.bed.alerts().received();
    println!("\n==> {} alerts received; the last one:", alerts.len());
    if let Some(alert) = alerts.last() {
        println!("    {}", alert.body["text"].as_str().unwrap_or_default());
    }
    println!("\ndemo finished: one release promoted, one rolled back with a Git revert");
    Ok(())
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(10)]
}
