//! Log setup: JSON lines for production, human-readable text for terminals. The filter comes
//! from `RUST_LOG` (default `info`).

use tracing_subscriber::EnvFilter;

/// Log output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line, with span fields (canary namespace and name).
    Json,
    /// Human-readable lines.
    Text,
}

/// Installs the global subscriber; a second call is a no-op (returns `false`).
pub fn init(format: LogFormat) -> bool {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().with_current_span(true).with_span_list(false).try_init().is_ok(),
        LogFormat::Text => builder.try_init().is_ok(),
    }
}
