//! Test support: hostile file names and values, and running a remote script through a real
//! local `sh` exactly as a host would (`sh -c` of the command SSH carries).

use super::quote::{wrap_sh, Script};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Pieces that try to break out of whatever quoting they land in. Every payload creates a
/// file named `pwned`; a run is clean when no such file exists afterwards.
const PIECES: &[&str] = &[
    "$(touch pwned)",
    "`touch pwned`",
    ";touch pwned;",
    "'",
    "\"",
    "\\",
    "|",
    "&",
    "\n",
    " ",
    "$HOME",
    "${x:-y}",
    "*",
    "#",
    "a",
    "-",
    "'$(touch pwned)'",
    "\"$(touch pwned)\"",
    "' ; touch pwned ; '",
    "\" ; touch pwned ; \"",
    ")",
    "(",
    "<",
    ">",
];

/// Hand-written nasty names, then `random` more built from [`PIECES`] by a seeded generator
/// (the seed is in the name of any failure, so a failure can be replayed).
pub fn names(random: usize, seed: u64) -> Vec<String> {
    let mut out: Vec<String> = [
        "x$(touch pwned)",
        "x`touch pwned`",
        "a b",
        "it's",
        "say \"hi\"",
        "semi;touch pwned",
        "pipe|touch pwned",
        "amp&touch pwned&",
        "new\nline;touch pwned",
        "back\\slash",
        "-n",
        "--",
        " lead",
        "$HOME",
        "'\"$\\`;|&\n ",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut rng = StdRng::seed_from_u64(seed);
    while out.len() < 15 + random {
        let n = rng.random_range(1..6);
        let name: String = (0..n).map(|_| PIECES[rng.random_range(0..PIECES.len())]).collect();
        // A file name: no slash (none is in PIECES), not `.`/`..`, not too long.
        if name != "." && name != ".." && name.len() < 200 && !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

/// Run `script` as a host would, in `cwd`, with `stdin`.
pub fn run(script: &Script, cwd: &Path, stdin: &[u8]) -> Output {
    run_as(None, script, cwd, stdin)
}

/// [`run`] as the user `uid` (with that group and no others) when given, as a login user
/// without root would run it.
pub fn run_as(uid: Option<u32>, script: &Script, cwd: &Path, stdin: &[u8]) -> Output {
    use std::io::Write;
    let mut cmd = match uid {
        Some(u) => {
            let mut c = Command::new("setpriv");
            c.args([
                format!("--reuid={u}"),
                format!("--regid={u}"),
                "--clear-groups".into(),
                "sh".into(),
            ]);
            c
        }
        None => Command::new("sh"),
    };
    let mut child = cmd
        .arg("-c")
        .arg(wrap_sh(script.text(), false))
        .current_dir(cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run sh");
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(stdin);
    }
    child.wait_with_output().expect("wait for sh")
}

/// Every path below `dir` (relative, `/`-separated), links not followed.
pub fn tree(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            out.insert(p.strip_prefix(dir).unwrap_or(&p).to_string_lossy().to_string());
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(p);
            }
        }
    }
    out
}

/// Fail if any payload ran (a `pwned` file anywhere below `dir`).
#[track_caller]
pub fn assert_clean(dir: &Path, what: &str) {
    let hit: Vec<String> = tree(dir)
        .into_iter()
        .filter(|p| p.rsplit('/').next() == Some("pwned"))
        .collect();
    assert!(hit.is_empty(), "{what}: a payload ran: {hit:?}");
}
