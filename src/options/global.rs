//! The flags every command takes (`--fleet`, `-v`, `--log-format`, ...), and what they imply.

use clap::{Args, ValueEnum, ValueHint};
use std::path::PathBuf;

/// Flags every command takes.
#[derive(Debug, Args, Clone)]
pub struct Global {
    /// The fleet file.
    #[arg(long, global = true, env = "BELLWETHER_FLEET", default_value = "fleet.toml", value_hint = ValueHint::FilePath)]
    pub fleet: PathBuf,
    /// Where run records live (default: `runs/` beside the fleet file).
    #[arg(long, global = true, env = "BELLWETHER_RUNS_DIR", value_hint = ValueHint::DirPath)]
    pub runs_dir: Option<PathBuf>,
    /// More log output (-v info, -vv debug, -vvv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Colour in diffs and tables.
    #[arg(long, global = true, value_enum, default_value_t = Color::Auto)]
    pub color: Color,
    /// Hosts worked on at once (overrides the fleet's `concurrency`).
    #[arg(short = 'j', long, global = true)]
    pub concurrency: Option<usize>,
    /// Record unknown host keys instead of refusing (OpenSSH accept-new; a changed key is
    /// still refused).
    #[arg(long, global = true)]
    pub accept_new: bool,
}

/// Log output format.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Colour choice.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Color {
    Auto,
    Always,
    Never,
}

impl Global {
    /// The runs folder to use.
    pub fn runs_dir(&self) -> PathBuf {
        self.runs_dir.clone().unwrap_or_else(|| {
            self.fleet
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map(|p| p.join("runs"))
                .unwrap_or_else(|| PathBuf::from("runs"))
        })
    }

    /// Whether to colour output on stdout.
    pub fn colored(&self) -> bool {
        use std::io::IsTerminal;
        match self.color {
            Color::Always => true,
            Color::Never => false,
            Color::Auto => std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal(),
        }
    }
}
