//! The per-host run marker (`.bellwether.lock` in the login directory): stops a second run,
//! from any machine, changing a host this run is working on.

use crate::ssh::Connection;
use std::time::Duration;

/// The marker file name, relative to the remote login directory.
pub const MARKER: &str = ".bellwether.lock";

/// Place the marker for `run_id`; Err(holder) if another run's marker is there.
pub async fn place(conn: &Connection, run_id: &str, who: &str) -> Result<(), String> {
    let content = format!("{run_id} {who}");
    let script = format!(
        "if ( set -C; printf '%s\\n' {c} > {m} ) 2>/dev/null; then exit 0; fi; h=$(head -n1 {m}); case \"$h\" in {id}\\ *) exit 0;; esac; printf '%s' \"$h\"; exit 9",
        c = crate::ssh::quote::quote(&content),
        m = MARKER,
        id = crate::ssh::quote::quote(run_id).replace(' ', "\\ "),
    );
    let out = conn
        .run(&script, None, Duration::from_secs(20), None)
        .await
        .map_err(|e| e.to_string())?;
    match out.status {
        0 => Ok(()),
        9 => Err(out.stdout_text().trim().to_string()),
        s => Err(format!("cannot place the run marker (exit {s}): {}", out.stderr_text())),
    }
}

/// Remove the marker if it is ours (or unconditionally with `force`).
pub async fn remove(conn: &Connection, run_id: &str, force: bool) {
    let script = if force {
        format!("rm -f {MARKER}")
    } else {
        format!(
            "[ -f {m} ] && case \"$(head -n1 {m})\" in {id}\\ *) rm -f {m};; esac; true",
            m = MARKER,
            id = crate::ssh::quote::quote(run_id).replace(' ', "\\ ")
        )
    };
    let _ = conn.run(&script, None, Duration::from_secs(20), None).await;
}
