//! `bellwether completions` and `bellwether man` run as a user runs them: the output is a real
//! completion script (the shell accepts it) and a real man page (groff renders it), and both
//! name every visible subcommand of the CLI definition they are generated from.

use clap::CommandFactory;
use std::process::{Command, Stdio};

fn bw(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bellwether"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run bellwether");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The visible subcommands, read from the same definition the binary parses with.
fn subcommands() -> Vec<String> {
    bellwether::cli::Cli::command()
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| c.get_name().to_string())
        .collect()
}

/// Does `prog` exist on this machine? (CI is a bare Debian: zsh, fish, groff may be absent.)
fn have(prog: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {prog}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Terminal text without overstriking: `X\bY` shows as `Y`.
fn unstrike(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c == '\x08' {
            out.pop();
        } else {
            out.push(c);
        }
    }
    out
}

/// `shell -n` (parse, run nothing) on `script`.
fn parses(shell: &str, script: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("completion");
    std::fs::write(&path, script).unwrap();
    let out = Command::new(shell).arg("-n").arg(&path).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn bash_completion_is_a_script_bash_accepts_and_completes_every_subcommand() {
    let (code, out, err) = bw(&["completions", "bash"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("complete -F _bellwether"), "{out}");
    for sub in subcommands() {
        assert!(out.contains(&sub), "bash completion lacks {sub}");
    }
    assert!(out.contains("--fleet") && out.contains("--dry-run"), "flags missing");
    let (ok, why) = parses("bash", &out);
    assert!(ok, "bash -n rejects the script: {why}");
    // Sourced in a real bash, the function exists and offers `rollout` for `bellwether ro`.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bellwether.bash");
    std::fs::write(&path, &out).unwrap();
    let probe = format!(
        "source {}; COMP_WORDS=(bellwether ro); COMP_CWORD=1; _bellwether bellwether ro bellwether; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        path.display()
    );
    let o = Command::new("bash").args(["--norc", "-c", &probe]).output().unwrap();
    let words = String::from_utf8_lossy(&o.stdout);
    assert!(
        words.lines().any(|w| w == "rollout"),
        "bash offered {words:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn zsh_and_fish_completions_name_every_subcommand_and_parse_where_the_shell_exists() {
    for (shell, marker) in [("zsh", "#compdef bellwether"), ("fish", "complete -c bellwether")] {
        let (code, out, err) = bw(&["completions", shell]);
        assert_eq!(code, 0, "{shell}: {err}");
        assert!(out.contains(marker), "{shell}: no {marker:?}");
        for sub in subcommands() {
            assert!(out.contains(&sub), "{shell} completion lacks {sub}");
        }
        if have(shell) {
            let (ok, why) = parses(shell, &out);
            assert!(ok, "{shell} -n rejects the script: {why}");
        }
    }
}

#[test]
fn an_unknown_shell_is_bad_input_naming_the_choices() {
    let (code, out, err) = bw(&["completions", "tcsh"]);
    assert_eq!(code, 2);
    assert!(out.is_empty());
    assert!(
        err.contains("bash") && err.contains("zsh") && err.contains("fish"),
        "{err}"
    );
}

#[test]
fn man_prints_one_roff_page_naming_every_subcommand() {
    let (code, out, err) = bw(&["man"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(".TH bellwether 1"), "{out}");
    assert!(out.contains(".SH NAME") && out.contains(".SH SYNOPSIS") && out.contains(".SH OPTIONS"));
    for sub in subcommands() {
        let entry = format!("bellwether\\-{}(1)", sub.replace('-', "\\-"));
        assert!(out.contains(&entry), "man page lacks {entry}");
    }
    if have("groff") {
        let mut g = Command::new("groff")
            .args(["-man", "-Tutf8", "-ww"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        g.stdin.take().unwrap().write_all(out.as_bytes()).unwrap();
        let o = g.wait_with_output().unwrap();
        // groff's tty output emboldens by overstriking (`N\bN`): keep the last character.
        let text = unstrike(&String::from_utf8_lossy(&o.stdout));
        assert!(
            o.status.success(),
            "groff failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            o.stderr.is_empty(),
            "groff warns: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(text.contains("SYNOPSIS") && text.contains("rollout"), "{text}");
    }
}

#[test]
fn man_out_writes_a_page_per_subcommand_and_refuses_a_missing_folder() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = bw(&["man", "--out", dir.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let main = std::fs::read_to_string(dir.path().join("bellwether.1")).unwrap();
    assert!(main.contains(".TH bellwether 1"));
    for sub in subcommands() {
        let page = std::fs::read_to_string(dir.path().join(format!("bellwether-{sub}.1")))
            .unwrap_or_else(|e| panic!("bellwether-{sub}.1: {e}"));
        assert!(page.contains(".TH bellwether-"), "{sub}: {page}");
    }
    // Hidden subcommands (sandbox serve) get no page.
    assert!(!dir.path().join("bellwether-sandbox-serve.1").exists());
    let missing = dir.path().join("nope");
    let (code, _, err) = bw(&["man", "--out", missing.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no such folder"), "{err}");
}
