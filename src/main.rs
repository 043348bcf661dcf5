//! The `bellwether` binary: parse arguments, run one command, map the outcome to an exit code.

use clap::Parser;

fn main() {
    // Die quietly on a closed pipe (`bellwether runs | head`) like other Unix tools, instead of
    // panicking on the failed write.
    // SAFETY: restoring the default disposition of SIGPIPE before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = bellwether::cli::Cli::parse();
    let code = bellwether::cli::run(cli);
    std::process::exit(code);
}
