//! Whether a run folder may drive changes: `revert RUN` and `resume RUN` write files (often as
//! root, or through `sudo`) and run the commands `plan.json` holds, with the bytes in
//! `snapshots/` and the paths in `events.jsonl`. Whoever can write those files can make the
//! next revert put their bytes anywhere and run their commands on every host. So the folder
//! and those files must belong to the user running bellwether and be writable by nobody else.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A run folder, or a file in it, that someone else could have written.
#[derive(Debug, thiserror::Error)]
#[error(
    "refusing to use {}: it {why}. revert and resume write files and run commands on hosts from \
     what this run folder says, so it must belong to you and be writable only by you. Fix: {fix}",
    path.display()
)]
pub struct Untrusted {
    pub path: PathBuf,
    pub why: String,
    pub fix: String,
}

/// Check the run folder `dir`, its `events.jsonl` and `plan.json`, and everything under
/// `snapshots/`: each must be owned by the effective user and not group- or world-writable.
/// Links are followed (the file that would be read is the one checked).
pub fn check_trusted(dir: &Path) -> Result<(), Untrusted> {
    let mut paths = vec![dir.to_path_buf(), dir.join("events.jsonl"), dir.join("plan.json")];
    walk(&dir.join("snapshots"), &mut paths);
    // SAFETY: geteuid cannot fail and touches no memory.
    let me = unsafe { libc::geteuid() };
    for p in paths {
        let Ok(m) = std::fs::metadata(&p) else {
            // A missing plan.json or snapshots/ is the record's business (read_events and the
            // revert say what is missing); only what exists can be untrusted.
            continue;
        };
        let quoted = crate::ssh::quote::quote(&p.display().to_string());
        let whole = crate::ssh::quote::quote(&dir.display().to_string());
        if m.uid() != me {
            return Err(Untrusted {
                path: p,
                why: format!("is owned by uid {}, not by you (uid {me})", m.uid()),
                fix: format!(
                    "find out who changed it and why; if its content is yours, `chown -R {me} {whole}` \
                     and `chmod -R go-w {whole}`"
                ),
            });
        }
        let mode = m.mode() & 0o7777;
        if mode & 0o022 != 0 {
            let who = match (mode & 0o020 != 0, mode & 0o002 != 0) {
                (true, true) => "its group and everyone",
                (true, false) => "its group",
                _ => "everyone",
            };
            return Err(Untrusted {
                why: format!("is writable by {who} (mode {mode:04o})"),
                fix: format!("check that nobody else changed it, then `chmod go-w {quoted}`"),
                path: p,
            });
        }
    }
    Ok(())
}

/// Every path under `dir` (folders and files), depth first; nothing if it does not exist.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    out.push(dir.to_path_buf());
    for e in rd.flatten() {
        let p = e.path();
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn run_folder() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("events.jsonl"), "").unwrap();
        std::fs::write(d.path().join("plan.json"), "{}").unwrap();
        std::fs::create_dir_all(d.path().join("snapshots/h01")).unwrap();
        std::fs::write(d.path().join("snapshots/h01/%2Fetc%2Fx"), "x").unwrap();
        for p in ["events.jsonl", "plan.json", "snapshots/h01/%2Fetc%2Fx"] {
            chmod(&d.path().join(p), 0o600);
        }
        chmod(d.path(), 0o755);
        d
    }

    fn chmod(p: &Path, mode: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn an_own_folder_writable_only_by_its_owner_is_trusted() {
        let d = run_folder();
        check_trusted(d.path()).unwrap();
        std::fs::remove_file(d.path().join("plan.json")).unwrap();
        check_trusted(d.path()).unwrap();
    }

    #[test]
    fn group_or_world_writable_files_are_refused_with_the_fix() {
        for (rel, mode, who) in [
            ("events.jsonl", 0o620, "its group"),
            ("plan.json", 0o666, "its group and everyone"),
            ("snapshots/h01/%2Fetc%2Fx", 0o602, "everyone"),
            ("snapshots/h01", 0o777, "its group and everyone"),
            ("", 0o775, "its group"),
        ] {
            let d = run_folder();
            let p = d.path().join(rel);
            chmod(&p, mode);
            let e = check_trusted(d.path()).unwrap_err();
            assert_eq!(e.path, p);
            let msg = e.to_string();
            assert!(msg.contains(&format!("writable by {who}")), "{msg}");
            assert!(msg.contains("chmod go-w"), "{msg}");
        }
    }

    #[test]
    fn files_owned_by_another_user_are_refused() {
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return; // only root can give a file away
        }
        let d = run_folder();
        let p = d.path().join("plan.json");
        std::os::unix::fs::chown(&p, Some(65534), None).unwrap();
        let e = check_trusted(d.path()).unwrap_err();
        assert_eq!(e.path, p);
        assert!(e.to_string().contains("owned by uid 65534"), "{e}");
        assert!(e.to_string().contains("chown -R 0"), "{e}");
    }
}
