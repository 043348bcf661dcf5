//! `bellwether man`: the manual page, rendered by `clap_mangen` from the same clap definition
//! the parser uses (help texts, flags, defaults), so the page and `--help` always agree.

use crate::exit::{Exit, Failure};
use std::io::Write;
use std::path::Path;

/// Print `bellwether.1` on stdout, or with `out` write it and one page per subcommand
/// (`bellwether-rollout.1`, …) into that folder.
pub fn run(cli: clap::Command, out: Option<&Path>) -> Result<Exit, Failure> {
    let fail = |what: String, e: std::io::Error| Failure::new(Exit::NeedsAttention, format!("{what}: {e}"));
    let Some(dir) = out else {
        let mut page = Vec::new();
        clap_mangen::Man::new(cli)
            .render(&mut page)
            .map_err(|e| fail("cannot render the man page".into(), e))?;
        std::io::stdout()
            .write_all(&page)
            .and_then(|()| std::io::stdout().flush())
            .map_err(|e| fail("cannot write the man page".into(), e))?;
        return Ok(Exit::Done);
    };
    if !dir.is_dir() {
        return Err(Failure::input(format!(
            "--out {}: no such folder (create it first, e.g. mkdir -p {})",
            dir.display(),
            dir.display()
        )));
    }
    clap_mangen::generate_to(cli, dir)
        .map_err(|e| fail(format!("cannot write the man pages into {}", dir.display()), e))?;
    Ok(Exit::Done)
}
