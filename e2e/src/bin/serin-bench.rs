//! `serin-bench`: benchmarks of the real `serin controller` against the API stand-in.
//!
//! ```sh
//! cargo run --release -p serin-e2e --bin serin-bench -- controller --canaries 100,1000 --serin target/release/serin
//! cargo run --release -p serin-e2e --bin serin-bench -- rollback --rollbacks 100 --serin target/release/serin
//! ```

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};
use serin_e2e::bench::{controller, rollback};

#[derive(Parser)]
#[command(about = "Benchmarks of serin controller on the Kubernetes API stand-in (see BENCHMARKS.md)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Tick lateness, memory, CPU and API/Prometheus requests for fleets of N canaries.
    Controller {
        /// Fleet sizes, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "100,1000")]
        canaries: Vec<u32>,
        /// The serin binary (build it with `cargo build --release`).
        #[arg(long, default_value = "target/release/serin")]
        serin: PathBuf,
        /// analysis.interval in seconds.
        #[arg(long, default_value_t = 60)]
        interval: u64,
        /// Seconds of the progressing window judged for lateness.
        #[arg(long, default_value_t = 120)]
        window: u64,
        /// Upper bound in seconds for setting a point up.
        #[arg(long, default_value_t = 600)]
        setup_timeout: u64,
        /// Keep the controller logs in this directory.
        #[arg(long)]
        log_dir: Option<PathBuf>,
    },
    /// Verdict "roll back" → HTTPRoute weights back on the primary, over N rollbacks.
    Rollback {
        /// Number of rollbacks (one canary each).
        #[arg(long, default_value_t = 100)]
        rollbacks: u32,
        /// The serin binary.
        #[arg(long, default_value = "target/release/serin")]
        serin: PathBuf,
        /// analysis.interval in seconds.
        #[arg(long, default_value_t = 5)]
        interval: u64,
        /// Upper bound in seconds for each phase.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Controller { canaries, serin, interval, window, setup_timeout, log_dir } => {
            let interval = Duration::from_secs(interval.max(1));
            let mut results = Vec::new();
            for n in canaries {
                let config = controller::PointConfig {
                    serin: serin.clone(),
                    canaries: n,
                    interval,
                    window: Duration::from_secs(window.max(1)),
                    setup_timeout: Duration::from_secs(setup_timeout),
                    log_dir: log_dir.clone(),
                };
                match controller::run_point(&config).await {
                    Ok(result) => {
                        // A point that measured nothing is a failed run, not a number.
                        let invalid = result.ticks_done == 0 || result.progressing < n as usize;
                        let (ticks, progressing) = (result.ticks_done, result.progressing);
                        results.push(result);
                        println!("{}", controller::table(&results, interval));
                        if invalid {
                            eprintln!(
                                "N={n}: invalid point: {ticks} ticks in the window, {progressing} of {n} canaries in a release"
                            );
                            return ExitCode::FAILURE;
                        }
                    }
                    Err(e) => {
                        eprintln!("N={n}: {e}");
                        println!("{}", controller::table(&results, interval));
                        return ExitCode::FAILURE;
                    }
                }
            }
            ExitCode::SUCCESS
        }
        Command::Rollback { rollbacks, serin, interval, timeout } => {
            let interval = Duration::from_secs(interval.max(1));
            let config = rollback::RollbackConfig {
                serin,
                rollbacks,
                interval,
                timeout: Duration::from_secs(timeout),
            };
            match rollback::run(&config).await {
                Ok(result) => {
                    println!("{}", rollback::table(&result, interval));
                    if result.missing > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS }
                }
                Err(e) => {
                    eprintln!("rollback bench: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
