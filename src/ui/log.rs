//! tracing setup: RUST_LOG-style filtering, text or JSON on stderr.

use crate::options::{Global, LogFormat};
use tracing_subscriber::EnvFilter;

static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Was `-q` given? (Progress lines are then left out; errors and results still print.)
pub fn is_quiet() -> bool {
    QUIET.load(std::sync::atomic::Ordering::Relaxed)
}

/// Install the global subscriber once (later calls are ignored).
pub fn init(g: &Global) {
    QUIET.store(g.quiet, std::sync::atomic::Ordering::Relaxed);
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
