//! The `serin` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::Parser;

/// jemalloc instead of glibc malloc: a reconcile allocates and frees many small JSON values,
/// and glibc's malloc and free were the leaf of about a quarter of the controller's profile
/// samples (BENCHMARKS.md, fix 14).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = serin::cli::Cli::parse();
    let runtime = match cli.runtime() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("serin: starting the async runtime: {err}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(async {
        match serin::cli::run(cli).await {
            Ok(code) => code,
            Err(err) => {
                eprintln!("serin: {err}");
                ExitCode::from(2)
            }
        }
    })
}
