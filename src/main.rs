//! The `bellwether` binary: parse arguments, run one command, map the outcome to an exit code.

use clap::Parser;

fn main() {
    let cli = bellwether::cli::Cli::parse();
    // Commands that only read die quietly on a closed pipe (`bellwether runs | head`) like
    // other Unix tools. Commands that change hosts never do: a closed stdout (`| head`), or a
    // callback or agent that stops reading, must not kill a run before it reverts and records
    // its end — they keep SIGPIPE ignored (Rust's default) and handle the write error instead.
    if !cli.command.changes_hosts() {
        // SAFETY: restoring the default disposition of SIGPIPE before any other thread exists.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let code = bellwether::cli::run(cli);
    std::process::exit(code);
}
