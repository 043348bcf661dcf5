//! The `bellwether` binary: parse arguments, run one command, map the outcome to an exit code.

use clap::Parser;

fn main() {
    let cli = bellwether::cli::Cli::parse();
    let code = bellwether::cli::run(cli);
    std::process::exit(code);
}
