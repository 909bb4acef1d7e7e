//! The `serin` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::Parser;

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
