//! tracing setup: RUST_LOG-style filtering, text or JSON on stderr.

use crate::cli::{Global, LogFormat};
use tracing_subscriber::EnvFilter;

/// Install the global subscriber once (later calls are ignored).
pub fn init(g: &Global) {
    let level = if g.quiet {
        "error"
    } else if g.log_format == LogFormat::Json && g.verbose == 0 {
        // JSON logs are for machines following a run: include its progress events.
        "info"
    } else {
        match g.verbose {
            0 => "warn",
            1 => "info",
            2 => "debug",
            _ => "trace",
        }
    };
    let filter = EnvFilter::try_from_env("BELLWETHER_LOG")
        .unwrap_or_else(|_| EnvFilter::new(format!("bellwether={level},russh=error")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match g.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.with_ansi(g.colored()).try_init(),
    };
}
