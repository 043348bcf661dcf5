//! Every file script, run by a real `sh` on hostile file names: it acts on exactly the file
//! named, and nothing in a name ever runs.

use super::*;
use crate::ssh::files::sha256_hex;
use crate::ssh::hostile::{assert_clean, names, run, tree};
use std::collections::BTreeSet;
use std::os::unix::fs::symlink;

const SEED: u64 = 0xbe11_7e7e;

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The bytes after the marker line of a read.
fn read_bytes(out: &[u8]) -> Vec<u8> {
    let m = format!("{MARK}\n");
    let i = out.windows(m.len()).position(|w| w == m.as_bytes()).expect("marker") + m.len();
    out[i..].to_vec()
}

#[test]
fn read_check_write_remove_touch_only_the_named_file() {
    for name in names(120, SEED) {
        let what = format!("name {name:?} (seed {SEED:#x})");
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        let file = d.path().join("sub").join(&name);
        let path = file.to_str().unwrap();
        std::fs::write(&file, "old\n").unwrap();
        let files = set(&["sub", &format!("sub/{name}")]);

        let out = run(&read(path, crate::ssh::files::MAX_FILE_BYTES), d.path(), b"");
        assert!(
            out.status.success(),
            "{what}: read: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got = read_bytes(&out.stdout);
        assert!(
            got.ends_with(b"\nold\n"),
            "{what}: read {:?}",
            String::from_utf8_lossy(&got)
        );

        let out = run(&check(path, false), d.path(), b"");
        assert!(
            out.status.success(),
            "{what}: check: {}",
            String::from_utf8_lossy(&out.stdout)
        );

        let opts = WriteOptions {
            expect: Some(Some(sha256_hex(b"old\n"))),
            ..WriteOptions::default()
        };
        let out = run(&write(path, 4, &sha256_hex(b"new\n"), &opts), d.path(), b"new\ngo\n");
        assert!(
            out.status.success(),
            "{what}: write: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(std::fs::read(&file).unwrap(), b"new\n", "{what}");
        assert_eq!(tree(d.path()), files, "{what}: only the file is there");

        // A stale expectation is refused and changes nothing.
        let out = run(&write(path, 1, &sha256_hex(b"x"), &opts), d.path(), b"xgo\n");
        assert_eq!(out.status.code(), Some(CHANGED as i32), "{what}");
        assert_eq!(std::fs::read(&file).unwrap(), b"new\n", "{what}");

        let out = run(&remove(path, Some(&sha256_hex(b"new\n"))), d.path(), b"");
        assert!(
            out.status.success(),
            "{what}: remove: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(tree(d.path()), set(&["sub"]), "{what}: removed");
        assert_clean(d.path(), &what);
    }
}

#[test]
fn a_link_loop_named_like_a_command_is_reported_not_run() {
    for name in names(30, SEED + 1) {
        let what = format!("name {name:?}");
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join(&name);
        let path = file.to_str().unwrap();
        symlink(&file, &file).unwrap();
        let out = run(&check(path, false), d.path(), b"");
        assert_eq!(out.status.code(), Some(1), "{what}");
        let msg = String::from_utf8_lossy(&out.stdout);
        assert!(
            msg.starts_with(&format!("cannot resolve the link {path} ")),
            "{what}: {msg}"
        );
        let out = run(
            &write(path, 1, &sha256_hex(b"x"), &WriteOptions::default()),
            d.path(),
            b"xgo\n",
        );
        assert_eq!(out.status.code(), Some(3), "{what}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(path), "{what}");
        assert_eq!(tree(d.path()), set(&[name.as_str()]), "{what}: nothing else appeared");
        assert_clean(d.path(), &what);
    }
}

#[test]
fn a_write_through_a_link_changes_the_target_only() {
    for name in names(30, SEED + 2) {
        let what = format!("name {name:?}");
        let d = tempfile::tempdir().unwrap();
        let (link, target) = (d.path().join(format!("L{name}")), d.path().join(format!("T{name}")));
        std::fs::write(&target, "old").unwrap();
        symlink(&target, &link).unwrap();
        let path = link.to_str().unwrap();
        // Root owns both the directory and the target here: the link is followed.
        let out = run(&check(path, false), d.path(), b"");
        assert!(out.status.success(), "{what}: {}", String::from_utf8_lossy(&out.stdout));
        let out = run(
            &write(path, 3, &sha256_hex(b"new"), &WriteOptions::default()),
            d.path(),
            b"newgo\n",
        );
        assert!(out.status.success(), "{what}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(std::fs::read(&target).unwrap(), b"new", "{what}");
        assert!(
            std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(),
            "{what}"
        );
        assert_clean(d.path(), &what);
    }
}

#[test]
fn without_root_a_file_that_would_change_hands_is_refused_and_never_rewritten() {
    use crate::ssh::hostile::run_as;
    use std::os::unix::fs::{chown, PermissionsExt};
    const NOBODY: u32 = 65534;
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("sub")).unwrap();
    chown(d.path().join("sub"), Some(NOBODY), Some(NOBODY)).unwrap();
    let file = d.path().join("sub/config");
    // Relative: the temp dir's parents are root's own.
    let path = "sub/config";
    std::fs::write(&file, "old").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
    let write_new = || {
        let w = write(path, 3, &sha256_hex(b"new"), &WriteOptions::default());
        run_as(Some(NOBODY), &w, d.path(), b"newgo\n")
    };
    for (uid, gid, why) in [
        (
            0,
            NOBODY,
            "sub/config belongs to root (uid 0), and nobody (uid 65534) cannot give",
        ),
        (
            NOBODY,
            0,
            "sub/config has group root (gid 0), which nobody is not a member of",
        ),
    ] {
        chown(&file, Some(uid), Some(gid)).unwrap();
        let out = run_as(Some(NOBODY), &check(path, false), d.path(), b"");
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stdout).starts_with(why), "{:?}", out);
        // Even unchecked, the write refuses rather than hand the file to nobody.
        let out = write_new();
        assert_eq!(out.status.code(), Some(19), "{out:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("cannot keep the owner of sub/config"));
        assert_eq!(std::fs::read(&file).unwrap(), b"old");
        assert_eq!(tree(d.path()), set(&["sub", "sub/config"]), "no temp file left");
    }
    chown(&file, Some(NOBODY), Some(NOBODY)).unwrap();
    assert!(run_as(Some(NOBODY), &check(path, false), d.path(), b"")
        .status
        .success());
    assert!(write_new().status.success());
    assert_eq!(std::fs::read(&file).unwrap(), b"new");
}

/// A write whose session ends before the controller's `go` (the connection was cut: the
/// script reads the end of its input) never replaces the file and leaves no temp file, even
/// when the whole content had arrived; with the `go` it does.
#[test]
fn a_write_without_the_controllers_go_never_replaces_the_file() {
    for name in names(20, SEED + 7) {
        let what = format!("name {name:?}");
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join(&name);
        std::fs::write(&file, "old").unwrap();
        let path = file.to_str().unwrap();
        let w = write(path, 3, &sha256_hex(b"new"), &WriteOptions::default());
        for cut in [&b"new"[..], b"newg", b"newno\n"] {
            let out = run(&w, d.path(), cut);
            assert_eq!(out.status.code(), Some(20), "{what}: {cut:?}");
            assert!(
                String::from_utf8_lossy(&out.stderr).contains("before the controller confirmed"),
                "{what}"
            );
            assert_eq!(std::fs::read(&file).unwrap(), b"old", "{what}: {cut:?}");
            assert_eq!(tree(d.path()), set(&[name.as_str()]), "{what}: no temp file left");
        }
        let out = run(&w, d.path(), b"newgo\n");
        assert!(out.status.success(), "{what}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(std::fs::read(&file).unwrap(), b"new", "{what}");
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            said.starts_with(&format!("{}\n", crate::ssh::exec::READY)),
            "{what}: {said}"
        );
        assert_clean(d.path(), &what);
    }
}

/// The write that waits for its `go` when the revert looks (a partition TCP could heal
/// later): the revert's read first removes the write's temp file, so a `go` that arrives
/// afterwards cannot replace the file the revert found unchanged. Other files stay.
#[test]
fn a_revert_read_disarms_a_write_still_waiting_for_its_go() {
    use std::io::{BufRead, Write};
    use std::process::{Command, Stdio};
    for name in names(12, SEED + 9) {
        let what = format!("name {name:?}");
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join(&name);
        std::fs::write(&file, "old").unwrap();
        std::fs::write(d.path().join(".bellwether.notmine"), "kept").unwrap();
        let path = file.to_str().unwrap();
        let w = write(path, 3, &sha256_hex(b"new"), &WriteOptions::default());
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(crate::ssh::quote::wrap_sh(w.text(), false))
            .current_dir(d.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"new").unwrap();
        let mut ready = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut ready)
            .unwrap();
        assert_eq!(ready.trim_end(), crate::ssh::exec::READY, "{what}");
        let out = run(&clear_orphans(path), d.path(), b"");
        assert!(out.status.success(), "{what}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("removed the temp file of an unfinished write"),
            "{what}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        stdin.write_all(b"go\n").unwrap();
        drop(stdin);
        let done = child.wait_with_output().unwrap();
        assert!(!done.status.success(), "{what}: the late rename failed");
        assert_eq!(std::fs::read(&file).unwrap(), b"old", "{what}");
        assert_eq!(
            tree(d.path()),
            set(&[name.as_str(), ".bellwether.notmine"]),
            "{what}: only the write's own temp file went"
        );
    }
}

/// `write_then` (write, apply and health in one remote command): the next script runs only
/// once the file is replaced and read back right — never after a write cut before its `go`,
/// nor after one refused because the file changed — and each part's output stays its own.
#[test]
fn the_script_after_a_write_runs_only_once_the_file_is_replaced() {
    let sh = |script: &str, dir: &std::path::Path, stdin: &[u8]| {
        use std::io::Write;
        let mut c = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(dir)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let _ = c.stdin.take().unwrap().write_all(stdin);
        c.wait_with_output().unwrap()
    };
    let then = "touch then-ran; echo then-err >&2; echo then-out";
    for name in names(12, SEED + 11) {
        let what = format!("name {name:?}");
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join(&name);
        let path = file.to_str().unwrap();
        let ran = d.path().join("then-ran");
        // (stdin, what the file holds instead of "old", the write's status)
        type Case = (&'static [u8], Option<&'static [u8]>, u32);
        let cases: [Case; 3] = [
            (b"new", None, 20),
            (b"newgo\n", Some(b"someone else's"), CHANGED),
            (b"newgo\n", None, 0),
        ];
        for (stdin, other, want_status) in cases {
            std::fs::write(&file, other.unwrap_or(b"old")).unwrap();
            let opts = WriteOptions {
                expect: Some(Some(sha256_hex(b"old"))),
                ..WriteOptions::default()
            };
            let w = write(path, 3, &sha256_hex(b"new"), &opts);
            let out = sh(&write_then(w.text(), then), d.path(), stdin);
            let said = String::from_utf8_lossy(&out.stdout);
            let err = String::from_utf8_lossy(&out.stderr);
            let (before, after) = said.split_once(WRITE_DONE).unwrap_or_else(|| panic!("{what}: {said}"));
            assert_eq!(
                after.lines().next(),
                Some(want_status.to_string().as_str()),
                "{what}: {said}"
            );
            if want_status == 0 {
                assert_eq!(std::fs::read(&file).unwrap(), b"new", "{what}");
                assert_eq!(before.lines().last(), Some(sha256_hex(b"new").as_str()), "{what}");
                assert_eq!(after.lines().nth(1), Some("then-out"), "{what}: {said}");
                assert!(ran.exists(), "{what}");
                let (_, then_err) = err.split_once(THEN_SPLIT).unwrap_or_else(|| panic!("{what}: {err}"));
                assert_eq!(then_err.trim(), "then-err", "{what}");
            } else {
                assert_eq!(
                    std::fs::read(&file).unwrap(),
                    other.unwrap_or(b"old"),
                    "{what}: untouched"
                );
                assert!(
                    !ran.exists(),
                    "{what}: the next script ran after a write that did not happen"
                );
                assert!(!said.contains("then-out") && !err.contains(THEN_SPLIT), "{what}");
            }
        }
        std::fs::remove_file(&ran).unwrap();
        assert_clean(d.path(), &what);
    }
}
