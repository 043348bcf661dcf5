//! The per-host run marker (`.bellwether.lock` in the login directory): stops a second run,
//! from any machine, changing a host this run is working on.
//!
//! It holds `RUN_ID USER@MACHINE PID`. A marker left by a killed run (same machine, dead pid)
//! is stale; `--break-lock` replaces it (and the run records that it did).

use crate::record::lock::hostname;
use crate::ssh::quote::quote;
use crate::ssh::Connection;
use std::time::Duration;

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

/// Place the marker for `run_id`; Err(holder line) if another run's marker is there (a stale
/// one is replaced when `break_stale`).
pub async fn place(conn: &Connection, run_id: &str, break_stale: bool) -> Result<Option<String>, String> {
    let content = line(run_id);
    let script = format!(
        "if ( set -C; printf '%s\\n' {c} > {m} ) 2>/dev/null; then exit 0; fi; h=$(head -n1 {m}); case \"$h\" in {id}\\ *) printf '%s\\n' {c} > {m}; exit 0;; esac; printf '%s' \"$h\"; exit 9",
        c = quote(&content),
        m = MARKER,
        id = quote(run_id).replace(' ', "\\ "),
    );
    let out = conn
        .run(&script, None, Duration::from_secs(20), None)
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
                let force = format!("printf '%s\\n' {} > {MARKER}", quote(&content));
                conn.run(&force, None, Duration::from_secs(20), None)
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
    let script = format!(
        "if [ -f {m} ]; then case \"$(head -n1 {m})\" in {id}\\ *) rm -f {m} || exit 1;; esac; fi; exit 0",
        m = MARKER,
        id = quote(run_id).replace(' ', "\\ ")
    );
    let out = conn
        .run(&script, None, Duration::from_secs(20), None)
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
    let mut kept = Vec::new();
    for h in hosts {
        let Some(c) = conns.get(h) else {
            kept.push((h.clone(), "not reachable".to_string()));
            continue;
        };
        match remove(c, &run.id).await {
            Ok(()) => {
                if let Err(e) = run.emit(crate::record::EventKind::MarkerReleased { host: h.clone() }) {
                    kept.push((h.clone(), format!("released, but the record could not say so: {e}")));
                }
            }
            Err(e) => kept.push((h.clone(), e)),
        }
    }
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
}
