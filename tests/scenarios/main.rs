//! End-to-end scenarios: the real `serin` binary (`serin controller`) against the test bed —
//! Kubernetes API stand-in, simulated Deployments running the demo app, the weighted proxy,
//! real Prometheus, a real Git server with a Flux-like sync loop, and an alert receiver. The
//! scenario code lives in `serin_e2e::scenario` so the demo (`scripts/demo.sh`) runs the same.

use std::path::PathBuf;
use std::sync::Once;
use std::time::Duration;

use serin_e2e::BedConfig;
use serin_e2e::scenario::{Harness, HarnessConfig, scenarios};

/// Upper bound for one scenario, including start and shutdown.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(300);

fn init_tracing() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_env("SERIN_E2E_LOG")
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
            )
            .with_test_writer()
            .try_init();
    });
}

/// A harness with one controller, the `serin` binary Cargo built for this test, and the app
/// installed at `demo:1.0.0`.
async fn installed(replicas: usize) -> Harness {
    init_tracing();
    let bed =
        BedConfig::from_env().expect("serin-demo-app is built with the workspace (cargo test --workspace)");
    // `SERIN_BIN` runs the scenarios against another build (e.g. target/release/serin).
    let serin =
        std::env::var_os("SERIN_BIN").map_or_else(|| env!("CARGO_BIN_EXE_serin").into(), PathBuf::from);
    let mut config = HarnessConfig::new(serin, bed);
    config.replicas = replicas;
    let mut h = Harness::start(config).await.expect("test bed and controller start");
    h.install("demo:1.0.0").await.expect("app installed and initialised");
    h
}

async fn bounded<F: Future<Output = ()>>(f: F) {
    tokio::time::timeout(SCENARIO_TIMEOUT, f).await.expect("scenario finished in time");
}

/// Scenarios 1 and 2: a healthy release is promoted, then an erroring one is rolled back and
/// reverted in Git.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_release_is_promoted_then_erroring_release_is_reverted() {
    bounded(async {
        let mut h = installed(1).await;
        let promoted = scenarios::healthy_release_is_promoted(&mut h, "demo:2.0.0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        println!(
            "promoted {} through weights {:?} in {:?}",
            promoted.commit, promoted.weights, promoted.duration
        );
        let rollback =
            scenarios::bad_release_is_rolled_back(&mut h, "demo:3.0.0-errors-50", "request-success-rate")
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        scenarios::check_rollback_time(&h, &rollback).unwrap_or_else(|e| panic!("{e}"));
        println!(
            "rolled back {} on {} in {:?} after the first failed check ({:?} of exposure); revert {}",
            rollback.commit,
            rollback.failing_metric,
            rollback.rollback_time,
            rollback.exposure,
            rollback.revert
        );
        h.shutdown().await;
    })
    .await;
}

/// Scenario 3: a slow release is rolled back on latency.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_release_is_rolled_back_on_latency() {
    bounded(async {
        let mut h = installed(1).await;
        let rollback =
            scenarios::bad_release_is_rolled_back(&mut h, "demo:2.0.0-slow-800", "request-duration")
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        scenarios::check_rollback_time(&h, &rollback).unwrap_or_else(|e| panic!("{e}"));
        println!("rolled back on {} in {:?}", rollback.failing_metric, rollback.rollback_time);
        h.shutdown().await;
    })
    .await;
}

/// Scenario 7: Prometheus stopped mid-analysis holds the canary; when it is back the release
/// is promoted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_outage_holds_the_canary() {
    bounded(async {
        let mut h = installed(1).await;
        let promoted = scenarios::prometheus_outage_holds_the_canary(&mut h, "demo:2.0.0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        println!(
            "promoted after the outage through weights {:?} in {:?}",
            promoted.weights, promoted.duration
        );
        h.shutdown().await;
    })
    .await;
}

/// Scenario 9: invalid Canaries are refused or reported with the field path; the controller
/// keeps releasing the valid one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_reported_and_others_keep_going() {
    bounded(async {
        let mut h = installed(1).await;
        scenarios::bad_input_is_reported_and_others_keep_going(&mut h, "demo:2.0.0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        h.shutdown().await;
    })
    .await;
}

/// Scenario 4: a confirm-promotion gate holds the release until it is opened through the
/// load tester.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_gate_holds_promotion_until_opened() {
    bounded(async {
        let mut h = installed(1).await;
        scenarios::manual_gate_holds_promotion(&mut h, "demo:2.0.0").await.unwrap_or_else(|e| panic!("{e}"));
        h.shutdown().await;
    })
    .await;
}

/// Scenario 5: a failing pre-rollout webhook fails the release; a rollback webhook aborts
/// one in progress.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_webhooks_fail_the_release() {
    bounded(async {
        let mut h = installed(1).await;
        scenarios::failing_webhooks_fail_the_release(&mut h, "demo:2.0.0", "demo:2.0.1")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        h.shutdown().await;
    })
    .await;
}

/// Scenario 6: SIGKILL at random moments during scenarios 1 and 2 changes no outcome. The
/// seed comes from `SERIN_E2E_CHAOS_SEED` or the clock, and is printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_crashes_change_no_outcome() {
    bounded(async {
        let seed =
            std::env::var("SERIN_E2E_CHAOS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            });
        println!("chaos seed {seed} (SERIN_E2E_CHAOS_SEED={seed} repeats it)");
        let mut h = installed(1).await;
        let kills = scenarios::crashes_change_nothing(&mut h, "demo:2.0.0", "demo:3.0.0-errors-50", seed)
            .await
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        println!("{kills} kills, {} controller starts", h.controllers[0].starts());
        assert!(kills >= 3, "the controller was killed only {kills} times");
        h.shutdown().await;
    })
    .await;
}

/// Scenario 8: two replicas; only the leader acts; killing it hands over the release.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_failover_finishes_the_release() {
    bounded(async {
        let mut h = installed(2).await;
        scenarios::leader_failover(&mut h, "demo:2.0.0").await.unwrap_or_else(|e| panic!("{e}"));
        h.shutdown().await;
    })
    .await;
}
