//! tracing setup: RUST_LOG-style filtering, text or JSON on stderr; and the few lines written
//! to stderr outside tracing (notices, the final error), in the same format.

use crate::options::{Global, LogFormat};
use std::sync::atomic::{AtomicBool, Ordering};
use tracing_subscriber::EnvFilter;

static QUIET: AtomicBool = AtomicBool::new(false);
static JSON: AtomicBool = AtomicBool::new(false);

/// Was `-q` given? (Progress lines are then left out; errors and results still print.)
pub fn is_quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// Was `--log-format json` given? Then every line on stderr is a JSON object
/// (see [`super::json_log`]) and stdout carries only the command's own output.
pub fn is_json() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// Install the global subscriber once (later calls are ignored).
pub fn init(g: &Global) {
    QUIET.store(g.quiet, Ordering::Relaxed);
    JSON.store(g.log_format == LogFormat::Json, Ordering::Relaxed);
    // A run's progress reaches a JSON log as progress lines and events of its own (see
    // `record::run_dir::Progress::Json`), so JSON needs no lower level than text.
    let level = if g.quiet {
        "error"
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
        // Through the live view, so a warning during a run on a terminal does not tear its bars.
        .with_writer(|| super::live::LogWriter);
    let _ = match g.log_format {
        LogFormat::Json => builder
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .event_format(super::json_log::JsonLine)
            .try_init(),
        LogFormat::Text => builder.with_ansi(g.colored()).try_init(),
    };
}

/// A line for people on stderr (not part of the command's output): as it is, or as a JSON
/// object with `message` (and `host`, when it is about one host).
pub fn notice(host: Option<&str>, msg: &str) {
    if is_json() {
        let mut m = super::json_log::object("info");
        if let Some(h) = host {
            m.insert("host".into(), h.into());
        }
        m.insert("message".into(), msg.into());
        super::json_log::write_line(m);
    } else {
        eprintln!("{msg}");
    }
}

/// The last line of a failed command: `error: MESSAGE`, or a JSON object with `message` and
/// `exit`.
pub fn error(msg: &str, exit: i32) {
    if is_json() {
        let mut m = super::json_log::object("error");
        m.insert("message".into(), msg.into());
        m.insert("exit".into(), exit.into());
        super::json_log::write_line(m);
    } else {
        eprintln!("error: {msg}");
    }
}
