//! The per-host run marker (`.bellwether.lock` in the login directory): stops a second run,
//! from any machine, changing a host this run is working on.
//!
//! It holds `RUN_ID USER@MACHINE PID`. A marker left by a killed run (same machine, dead pid)
//! is stale; `--break-lock` replaces it (and the run records that it did).

use crate::record::lock::hostname;
use crate::ssh::quote::Script;
use crate::ssh::Connection;

/// The marker file name, relative to the remote login directory.
pub const MARKER: &str = ".bellwether.lock";

/// The marker line for this process.
pub fn line(run_id: &str) -> String {
    format!(
        "{run_id} {}@{} {}",
        crate::record::lock::username(),
        hostname(),
        std::process::id()
    )
}

/// Is a marker line from a process on this machine that no longer runs?
pub fn is_stale(holder: &str) -> bool {
    let mut w = holder.split_whitespace();
    let (_run, who, pid) = (w.next(), w.next(), w.next().and_then(|p| p.parse::<i32>().ok()));
    let machine = who.and_then(|w| w.rsplit_once('@')).map(|(_, m)| m);
    match (machine, pid) {
        (Some(m), Some(pid)) if m == hostname() => crate::record::lock::pid_is_dead(pid),
        _ => false,
    }
}

/// Create the marker holding `content` unless one exists (`set -C`): exit 0 when placed (or
/// when it is already this run's, which is rewritten), else the holder's line and exit 9.
/// The placing script for `run_id`, for folding into preflight's one remote command:
/// exit 0 placed (or already ours), exit 9 with the holder's line on stdout.
pub(crate) fn place_script_for(run_id: &str) -> Script {
    place_script(run_id, &line(run_id))
}

/// After a fold-in placement found `holder`: break it when asked and it is stale (one more
/// command, the rare path), else Err(holder).
pub async fn after_held(
    conn: &Connection,
    run_id: &str,
    holder: String,
    break_stale: bool,
) -> Result<Option<String>, String> {
    if break_stale && is_stale(&holder) {
        conn.run(force_script(&line(run_id)).text(), None, conn.command_timeout(), None)
            .await
            .map_err(|e| e.to_string())?;
        return Ok(Some(holder));
    }
    Err(holder)
}

fn place_script(run_id: &str, content: &str) -> Script {
    Script::new().set("c", content).set("m", MARKER).set("id", run_id).body(
        r#"if ( set -C; printf '%s\n' "$c" > "$m" ) 2>/dev/null; then exit 0; fi
h=$(head -n1 "$m")
case "$h" in "$id "*) printf '%s\n' "$c" > "$m"; exit 0;; esac
printf '%s' "$h"; exit 9"#,
    )
}

/// Overwrite the marker (a stale one, with `--break-lock`).
fn force_script(content: &str) -> Script {
    Script::new()
        .set("c", content)
        .set("m", MARKER)
        .body(r#"printf '%s\n' "$c" > "$m""#)
}

/// Remove the marker if its line starts with this run's id.
fn remove_script(run_id: &str) -> Script {
    Script::new()
        .set("m", MARKER)
        .set("id", run_id)
        .body(r#"if [ -f "$m" ]; then case "$(head -n1 "$m")" in "$id "*) rm -f -- "$m" || exit 1;; esac; fi; exit 0"#)
}

/// Place the marker for `run_id`; Err(holder line) if another run's marker is there (a stale
/// one is replaced when `break_stale`).
pub async fn place(conn: &Connection, run_id: &str, break_stale: bool) -> Result<Option<String>, String> {
    let content = line(run_id);
    let script = place_script(run_id, &content);
    let out = conn
        .run(script.text(), None, conn.command_timeout(), None)
        .await
        .map_err(|e| e.to_string())?;
    match out.status {
        0 => Ok(None),
        9 => {
            let text = out.stdout_text();
            let holder = text
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim()
                .to_string();
            if break_stale && is_stale(&holder) {
                conn.run(force_script(&content).text(), None, conn.command_timeout(), None)
                    .await
                    .map_err(|e| e.to_string())?;
                return Ok(Some(holder));
            }
            Err(holder)
        }
        s => Err(format!("cannot place the run marker (exit {s}): {}", out.stderr_text())),
    }
}

/// Why a host is refused: another run's marker is on it (`holder`), with the way out when
/// that run's process is gone.
pub fn held(host: &str, holder: &str) -> String {
    let hint = if is_stale(holder) {
        ". Its process is gone: if that run was killed, finish it (bellwether revert RUN) or rerun with --break-lock"
    } else {
        ""
    };
    format!("{host} is held by run {holder}; nothing was changed{hint}")
}

/// Remove the marker if it is ours; Err says why it could not be checked or removed.
pub async fn remove(conn: &Connection, run_id: &str) -> Result<(), String> {
    let script = remove_script(run_id);
    let out = conn
        .run(script.text(), None, conn.command_timeout(), None)
        .await
        .map_err(|e| e.to_string())?;
    if out.status == 0 {
        Ok(())
    } else {
        Err(format!(
            "cannot remove {MARKER} (exit {}): {}",
            out.status,
            out.stderr_text()
        ))
    }
}

/// Take this run's marker off each of `hosts` (through `conns`), recording each release.
/// Hosts that cannot be reached keep it and come back with why (`status` lists them).
pub async fn release(
    run: &crate::record::RunDir,
    conns: &std::collections::BTreeMap<String, std::sync::Arc<Connection>>,
    hosts: &[String],
) -> Vec<(String, String)> {
    use futures::stream::{self, StreamExt};
    // Hosts whose connection is still open go first: with more hosts than the connection
    // budget, they are released before the parked ones are reopened (which parks them).
    let mut order: Vec<&String> = hosts.iter().collect();
    order.sort_by_key(|h| conns.get(*h).is_none_or(|c| c.is_parked()));
    // Hosts in parallel (bounded): one at a time took ~100 ms per host at the end of a run.
    let results: Vec<(String, Result<(), String>)> = stream::iter(order)
        .map(|h| async move {
            let r = match conns.get(h) {
                Some(c) => remove(c, &run.id).await,
                None => Err("not reachable".to_string()),
            };
            (h.clone(), r)
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let mut kept = Vec::new();
    for (h, r) in results {
        match r {
            Ok(()) => {
                if let Err(e) = run.emit(crate::record::EventKind::MarkerReleased { host: h.clone() }) {
                    kept.push((h, format!("released, but the record could not say so: {e}")));
                }
            }
            Err(e) => kept.push((h, e)),
        }
    }
    kept.sort();
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_only_for_dead_pids_on_this_machine() {
        let me = format!("r1 u@{} {}", hostname(), std::process::id());
        assert!(!is_stale(&me));
        assert!(is_stale(&format!("r1 u@{} 999999999", hostname())));
        assert!(!is_stale("r1 u@some-other-machine 999999999"));
        assert!(!is_stale("garbage"));
    }

    #[test]
    fn markers_with_hostile_run_ids_are_placed_and_removed_exactly() {
        use crate::ssh::hostile::{assert_clean, names, run, tree};
        for id in names(40, 0x10c4).into_iter().filter(|n| !n.contains('\n')) {
            let what = format!("run id {id:?}");
            let d = tempfile::tempdir().unwrap();
            let line = format!("{id} me@here 1");
            let out = run(&place_script(&id, &line), d.path(), b"");
            assert!(out.status.success(), "{what}: {}", String::from_utf8_lossy(&out.stderr));
            let marker = d.path().join(MARKER);
            assert_eq!(std::fs::read_to_string(&marker).unwrap(), format!("{line}\n"), "{what}");
            // Another run's id: refused, the holder named, the marker kept.
            let out = run(&place_script("other", "other x 2"), d.path(), b"");
            assert_eq!(out.status.code(), Some(9), "{what}");
            assert_eq!(String::from_utf8_lossy(&out.stdout), line, "{what}");
            let out = run(&remove_script("other"), d.path(), b"");
            assert!(out.status.success() && marker.exists(), "{what}: not ours, kept");
            let out = run(&force_script(&line), d.path(), b"");
            assert!(out.status.success(), "{what}");
            let out = run(&remove_script(&id), d.path(), b"");
            assert!(out.status.success(), "{what}");
            assert!(tree(d.path()).is_empty(), "{what}: {:?}", tree(d.path()));
            assert_clean(d.path(), &what);
        }
    }
}
