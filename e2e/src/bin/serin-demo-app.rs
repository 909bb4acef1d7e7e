//! `serin-demo-app`: one "pod" of the demo app (see `serin_e2e::demo`).
//!
//! Prints `listening 127.0.0.1:<port>` as its first stdout line. Exits when its stdin reaches
//! end of file (so it dies with the simulator that started it), on SIGTERM or on Ctrl-C.

use clap::Parser;
use serin_e2e::demo::{self, Behaviour, DemoConfig};
use std::io::Read;

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(about = "Demo HTTP app for the Serin e2e test bed; behaviour follows the image tag")]
struct Args {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Image reference, e.g. `demo:1.0.0`, `demo:2.0.0-errors-20`, `demo:2.0.0-slow-800`.
    #[arg(long)]
    image: String,
    /// Pod name reported in the response headers.
    #[arg(long, default_value = "demo")]
    pod_name: String,
    /// Exit when stdin reaches end of file.
    #[arg(long)]
    exit_on_stdin_eof: bool,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let behaviour = Behaviour::from_image(&args.image);
    if behaviour.crash {
        eprintln!("image {} crashes at start", args.image);
        std::process::exit(1);
    }
    let (listener, addr) = demo::bind(args.port).await?;
    println!("listening {addr}");
    let config = DemoConfig { behaviour, pod_name: args.pod_name };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let (eof_tx, eof_rx) = tokio::sync::oneshot::channel::<()>();
    if args.exit_on_stdin_eof {
        // A plain thread: blocking stdin reads need no tokio feature and end with the process.
        std::thread::spawn(move || {
            let mut stdin = std::io::stdin();
            let mut buf = [0u8; 64];
            while let Ok(n) = stdin.read(&mut buf) {
                if n == 0 {
                    break;
                }
            }
            let _ = eof_tx.send(());
        });
    } else {
        std::mem::forget(eof_tx);
    }
    let stdin_closed = async {
        let _ = eof_rx.await;
    };
    tokio::select! {
        res = demo::serve(listener, config) => res?,
        _ = stdin_closed => {}
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(())
}
