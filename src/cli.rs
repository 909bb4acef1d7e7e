//! Command-line interface: `serin crds`, `serin validate`, `serin version`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::crd::{self, Provider};
use crate::manifest;

/// Serin: progressive delivery for Kubernetes with Git rollback.
#[derive(Debug, Parser)]
#[command(name = "serin", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the CustomResourceDefinitions as YAML (or write one file per CRD).
    Crds {
        /// Write `<crd-name>.yaml` files into this directory instead of printing.
        #[arg(long, value_name = "DIR", conflicts_with = "reference")]
        output_dir: Option<PathBuf>,
        /// Print the field reference as Markdown instead of the CRDs.
        #[arg(long)]
        reference: bool,
    },
    /// Check Canary, MetricTemplate and AlertProvider manifests offline: schema, CEL rules and
    /// semantic rules. Prints `file:doc: field.path: message` per problem; exits 1 on any.
    Validate {
        /// Files or directories (walked for .yaml, .yml and .json files).
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// Provider assumed for canaries without `spec.provider` (the controller's
        /// `--provider`); when not given, provider-specific rules apply only to canaries that name one.
        #[arg(long, value_parser = parse_provider)]
        default_provider: Option<Provider>,
    },
    /// Print the version.
    Version,
}

fn parse_provider(text: &str) -> Result<Provider, String> {
    Provider::ALL.into_iter().find(|p| p.as_str() == text).ok_or_else(|| {
        let names: Vec<&str> = Provider::ALL.iter().map(|p| p.as_str()).collect();
        format!("unknown provider {text:?}; one of: {}", names.join(", "))
    })
}

/// Failures of a command itself (not problems found in manifests).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Writing output or files failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A CRD could not be rendered as YAML.
    #[error("rendering YAML: {0}")]
    Yaml(#[from] serde_norway::Error),
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<ExitCode, CliError> {
    match cli.command {
        Command::Crds { reference: true, .. } => {
            print!("{}", crd::reference::markdown());
            Ok(ExitCode::SUCCESS)
        }
        Command::Crds { output_dir, reference: false } => {
            let crds = crd::all_crds();
            match output_dir {
                Some(dir) => {
                    std::fs::create_dir_all(&dir)?;
                    for crd in &crds {
                        let name = crd.metadata.name.as_deref().unwrap_or("crd");
                        std::fs::write(dir.join(format!("{name}.yaml")), crd::render_crd_yaml(crd)?)?;
                    }
                }
                None => {
                    let mut out = std::io::stdout().lock();
                    for crd in &crds {
                        write!(out, "---\n{}", crd::render_crd_yaml(crd)?)?;
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate { paths, default_provider } => {
            let report = manifest::validate_paths(&paths, default_provider);
            let mut out = std::io::stdout().lock();
            for line in &report.problems {
                writeln!(out, "{line}")?;
            }
            Ok(if report.problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Version => {
            println!("serin {}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
    }
}
