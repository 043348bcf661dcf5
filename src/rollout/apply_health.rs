//! Apply then health in ONE remote command: each remote command is a shell start on a host
//! that may be busy, and a push-restart-check is the common case. The script runs the apply
//! command, and only if it succeeded the health command once; the results come back on
//! stdout (`BW-APPLY n`, `BW-HEALTH n`), the apply's error output and the health output on
//! stderr, split by a record separator. Health is retried (one command each) only if that
//! first attempt failed. The events are the same as for separate steps (`apply`, `health`).
//!
//! A host with one file to write (and no pins to check between the write and apply) gets the
//! write in that same command too ([`write_apply_health`]): the apply runs only once the file
//! is replaced and read back right, so a host changes with one remote command after preflight.

use super::error::HostError;
use super::host::{FileChange, Prepared};
use crate::record::{EventKind, RunDir};
use crate::ssh::{Connection, Output};
use std::time::Duration;

/// Between the apply's error output and the health output on stderr.
const SPLIT: &str = "\u{1e}BW-HEALTH\n";

/// The script: both commands are the operator's, already rendered (values quoted).
fn script(apply: &str, health: &str) -> String {
    format!(
        "t=$(mktemp) || exit 70\n( {apply}\n) </dev/null >/dev/null 2>\"$t\"; a=$?\nhead -c 65536 \"$t\" >&2; rm -f \"$t\"\n\
         printf '\\nBW-APPLY %s\\n' \"$a\"\n[ \"$a\" -eq 0 ] || exit 0\nprintf '\\036BW-HEALTH\\n' >&2\n\
         ( {health}\n) </dev/null >&2 2>&1; h=$?\nprintf 'BW-HEALTH %s\\n' \"$h\"\n"
    )
}

/// `n` from the last `KEY n` line of `stdout`.
fn status(stdout: &str, key: &str) -> Option<i32> {
    stdout
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix(key)?.trim().parse().ok())
}

/// Apply, then health (retried while it fails), recorded as `apply` and `health` events.
pub(crate) async fn apply_then_health(
    run: &RunDir,
    conn: &Connection,
    host: &str,
    apply: Option<&str>,
    health: Option<&str>,
    timeouts: (Duration, Duration),
) -> Result<(), HostError> {
    let (apply_timeout, health_timeout) = timeouts;
    let (Some(a), Some(h)) = (apply, health) else {
        super::host::apply(run, conn, host, apply, apply_timeout).await?;
        return super::host::health(run, conn, host, health, health_timeout).await;
    };
    let r = conn
        .run(&script(a, h), None, apply_timeout + health_timeout, None)
        .await;
    record_results(run, conn, host, (a, h), health_timeout, r).await
}

/// Write `f` (snapshot and `write_intent` recorded first), then apply, then health, in one
/// remote command; recorded as `written` (or `write_refused`), `apply` and `health`, as the
/// separate steps are. A write that did not complete never reaches apply.
pub(crate) async fn write_apply_health(
    run: &RunDir,
    host: &Prepared,
    f: &FileChange,
    commands: (&str, &str),
    timeouts: (Duration, Duration),
) -> Result<(), HostError> {
    let (a, h) = commands;
    let (apply_timeout, health_timeout) = timeouts;
    let opts = super::host::before_write(run, host, f)?;
    let r = host
        .conn
        .write_file_then(&f.path, &f.after, &opts, &script(a, h), apply_timeout + health_timeout)
        .await;
    // Unknown whether the write happened (a timeout, a cut connection before the script
    // said): as a failed write; the revert finds out from the file itself (its hash against
    // `write_intent`).
    let wt = r.map_err(|e| HostError::Failed(format!("write {}: {e}", f.path)))?;
    super::host::after_write(run, host, f, wt.written)?;
    // Written: whatever happened next is apply's (recorded as a failed `apply`).
    let then = match wt.then {
        Some(t) => t,
        None => Err(crate::ssh::SshError::Protocol("no result after the write".into())),
    };
    record_results(run, &host.conn, &host.name, commands, health_timeout, then).await
}

/// Record what the apply-then-health script said (`apply`, then `health`, retrying health
/// while it fails).
async fn record_results(
    run: &RunDir,
    conn: &Connection,
    host: &str,
    commands: (&str, &str),
    health_timeout: Duration,
    r: Result<Output, crate::ssh::SshError>,
) -> Result<(), HostError> {
    let (a, h) = commands;
    let (out, err) = match &r {
        Ok(o) => (o.stdout_text(), o.stderr_text()),
        Err(e) => (String::new(), e.to_string()),
    };
    let (apply_err, health_out) = err.split_once(SPLIT).unwrap_or((err.as_str(), ""));
    let apply_status = status(&out, "BW-APPLY ");
    let ok = apply_status == Some(0);
    let detail = run.secrets().text(apply_err.trim_end());
    run.emit(EventKind::Apply {
        host: host.to_string(),
        command: a.to_string(),
        status: apply_status.map(|s| s as u32),
        ok,
        detail: detail.clone(),
    })?;
    if !ok {
        return Err(HostError::Failed(match apply_status {
            Some(s) => format!("apply command `{a}` exited {s}: {detail}"),
            None => format!("apply command `{a}` failed: {detail}"),
        }));
    }
    let first = (status(&out, "BW-HEALTH "), health_out.to_string());
    super::host::health_after(run, conn, host, Some(h), health_timeout, Some(first)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_runs_apply_then_health_and_reports_both_through_a_real_sh() {
        let d = tempfile::tempdir().unwrap();
        let run = |a: &str, h: &str| {
            std::process::Command::new("sh")
                .arg("-c")
                .arg(script(a, h))
                .current_dir(d.path())
                .output()
                .unwrap()
        };
        let o = run(
            "echo started; echo warn >&2; touch applied",
            "test -f applied && echo healthy",
        );
        let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        assert_eq!(status(&out, "BW-APPLY "), Some(0), "{out}");
        assert_eq!(status(&out, "BW-HEALTH "), Some(0), "{out}");
        assert!(!out.contains("started"), "apply's stdout is not kept: {out}");
        let (a, h) = err.split_once(SPLIT).unwrap();
        assert_eq!(a.trim(), "warn");
        assert_eq!(h.trim(), "healthy");
        // A failed apply: health does not run.
        let o = run("echo nope >&2; exit 3", "touch health-ran");
        let out = String::from_utf8_lossy(&o.stdout);
        assert_eq!(status(&out, "BW-APPLY "), Some(3));
        assert_eq!(status(&out, "BW-HEALTH "), None);
        assert!(!d.path().join("health-ran").exists());
        // A command ending in a comment cannot swallow the rest of the script.
        let o = run("true # a comment", "exit 4 # another");
        let out = String::from_utf8_lossy(&o.stdout);
        assert_eq!(
            (status(&out, "BW-APPLY "), status(&out, "BW-HEALTH ")),
            (Some(0), Some(4))
        );
    }
}
