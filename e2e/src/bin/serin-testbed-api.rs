//! `serin-testbed-api`: serves the Kubernetes API stand-in on 127.0.0.1 and writes a kubeconfig.

use std::{path::PathBuf, time::Duration};
use tokio::signal::unix::{SignalKind, signal};

use clap::Parser;
use serin_e2e::{ApiServer, ServerConfig};

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(about = "Kubernetes API stand-in for the Serin e2e test bed (plain HTTP on 127.0.0.1)")]
struct Args {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Where to write the kubeconfig.
    #[arg(long)]
    kubeconfig: PathBuf,
    /// Seconds between watch bookmarks.
    #[arg(long, default_value_t = 5.0)]
    bookmark_interval: f64,
    /// Changes kept for watch replay; older resourceVersions get 410 Gone.
    #[arg(long, default_value_t = 10_000)]
    history_limit: usize,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let config = ServerConfig {
        bookmark_interval: Duration::from_secs_f64(args.bookmark_interval.max(0.05)),
        history_limit: args.history_limit,
    };
    let server = ApiServer::bind(args.port, config).await?;
    server.write_kubeconfig(&args.kubeconfig)?;
    // Handlers first: whoever reads the line below may signal at once.
    let mut term = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    println!("serving {} (kubeconfig {})", server.url(), args.kubeconfig.display());
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = term.recv() => {}
    }
    server.shutdown().await;
    Ok(())
}
