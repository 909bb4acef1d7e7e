//! The `serin` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = serin::cli::Cli::parse();
    match serin::cli::run(cli).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("serin: {err}");
            ExitCode::from(2)
        }
    }
}
