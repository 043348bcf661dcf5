//! `strategy = "blue_green"` on one host: find the live slot and stage the change into the
//! idle slot (the flip of the link, and back, is in `flip.rs`).
//!
//! The agent reads its files through a symlink (`link`) that names one of two slot
//! directories. Staging rebuilds the idle slot as a copy of the live one and writes the edited
//! files into the copy, so nothing the agent reads changes until the flip. The flip is one
//! `rename(2)` of a new symlink over the old one (`mv -T`), announced in the record before it
//! happens; a revert is the same rename back, so it is as fast as the flip and needs no
//! snapshot: the old slot was never touched.

use super::error::HostError;
use super::host::Prepared;
pub use super::slots::BlueGreenHost;
use crate::config::playbook::trim_slashes;
use crate::record::{EventKind, RunDir};
use crate::ssh::{Connection, WriteOptions};
use std::time::Duration;

/// Copying a large slot can take a while; the copy is bounded all the same.
const STAGE_TIMEOUT: Duration = Duration::from_secs(600);

/// `target` relative to the directory `base` (both absolute and canonical).
fn relative(target: &str, base: &str) -> String {
    let t: Vec<&str> = target.split('/').filter(|c| !c.is_empty()).collect();
    let b: Vec<&str> = base.split('/').filter(|c| !c.is_empty()).collect();
    let common = t.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut parts: Vec<&str> = vec![".."; b.len() - common];
    parts.extend(&t[common..]);
    if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    }
}

/// Read the link and both slots; Err says what is wrong on this host. Changes nothing (the
/// `mv -T` probe works in a temporary directory of its own).
pub async fn inspect(conn: &Connection, link: &str, slots: [&str; 2]) -> Result<BlueGreenHost, String> {
    let link = trim_slashes(link).to_string();
    let slots = [trim_slashes(slots[0]).to_string(), trim_slashes(slots[1]).to_string()];
    let script = super::slot_scripts::inspect(&link, [&slots[0], &slots[1]]);
    let out = conn
        .run(script.text(), None, conn.command_timeout(), None)
        .await
        .map_err(|e| format!("inspecting {link}: {e}"))?;
    let text = out.stdout_text();
    let lines: Vec<&str> = text.lines().collect();
    let want = format!(
        "a blue_green playbook needs {link} to be a symlink to one of its slots {} or {}",
        slots[0], slots[1]
    );
    match lines.first().copied() {
        Some("MISSING") => return Err(format!("{link} does not exist; {want}")),
        Some("NOTLINK") => return Err(format!("{link} is not a symlink; {want}")),
        Some("LINK") if lines.len() == 12 => {}
        _ => {
            return Err(format!(
                "unexpected answer while inspecting {link} (exit {}): {:?} {}",
                out.status,
                text.trim(),
                out.stderr_text()
            ))
        }
    }
    let (raw, resolved, link_dir) = (lines[1], lines[2], lines[3]);
    let slot = |i: usize| (lines[4 + 3 * i], lines[5 + 3 * i], lines[6 + 3 * i]);
    let live_i = (0..2)
        .find(|i| !resolved.is_empty() && slot(*i).0 == resolved)
        .ok_or_else(|| {
            format!(
                "{link} points at {raw:?} (resolves to {resolved}), which is neither slot {} nor {}; {want}",
                slots[0], slots[1]
            )
        })?;
    let idle_i = 1 - live_i;
    let (live, idle) = (&slots[live_i], &slots[idle_i]);
    check_slots(live, idle, slot(live_i), slot(idle_i))?;
    check_link_dir(&link, link_dir, lines[10], lines[11])?;
    let to = if raw.starts_with('/') {
        slot(idle_i).0.to_string()
    } else {
        relative(slot(idle_i).0, link_dir)
    };
    Ok(BlueGreenHost {
        link,
        live: live.clone(),
        idle: idle.clone(),
        from: raw.to_string(),
        to,
    })
}

/// One slot as `inspect` reads it: resolved path, kind, "w" if its directory is writable.
type Slot<'a> = (&'a str, &'a str, &'a str);

/// The live slot must be a directory; the idle one a directory or absent (it is replaced by a
/// copy of the live one) whose parent directory exists and is writable.
fn check_slots(live: &str, idle: &str, live_slot: Slot, idle_slot: Slot) -> Result<(), String> {
    if live_slot.1 != "dir" {
        return Err(format!("the live slot {live} is not a directory ({})", live_slot.1));
    }
    match idle_slot.1 {
        "dir" | "absent" => {}
        kind => {
            return Err(format!(
                "the idle slot {idle} is a {kind}, not a directory; bellwether replaces the idle slot with a copy of the live one and will not remove a {kind}"
            ))
        }
    }
    if idle_slot.0.is_empty() {
        return Err(format!("the idle slot {idle}: its parent directory does not exist"));
    }
    if idle_slot.2 != "w" {
        return Err(format!(
            "the directory of the idle slot {idle} is not writable: staging builds the slot beside it and renames it into place"
        ));
    }
    Ok(())
}

/// The flip renames a new symlink over the link: its directory must be writable and `mv -T`
/// (`link_w` and `mv_t`, `inspect`'s last two lines) must work.
fn check_link_dir(link: &str, link_dir: &str, link_w: &str, mv_t: &str) -> Result<(), String> {
    if link_w != "w" || link_dir.is_empty() {
        return Err(format!(
            "the directory of {link} is not writable: the flip renames a new symlink over it"
        ));
    }
    if mv_t != "mvT" {
        return Err(
            "`mv -T` (GNU coreutils) is not available on the host; the atomic flip of the link needs it".into(),
        );
    }
    Ok(())
}

/// Preflight of one edited file: its directory exists in the live slot (the idle copy will
/// have it) and is writable (the copy keeps its mode, and the write renames a temp file in it).
pub async fn check_dir(conn: &Connection, live_path: &str) -> Result<(), String> {
    let script = super::slot_scripts::check_dir(live_path);
    let out = conn
        .run(script.text(), None, conn.command_timeout(), None)
        .await
        .map_err(|e| format!("{live_path}: {e}"))?;
    if out.status == 0 {
        Ok(())
    } else {
        Err(out.stdout_text().trim().to_string())
    }
}

/// Make the idle slot a fresh copy of the live one (`cp -a` into a `mktemp -d` beside it, then
/// renamed into place; the old idle slot is removed), then write the edited files into it.
/// Refuses if the link no longer points at the live slot: the slot it would replace might be
/// the one the agent reads.
pub(crate) async fn stage(run: &RunDir, h: &Prepared, bg: &BlueGreenHost) -> Result<(), HostError> {
    run.emit(EventKind::StageStarted {
        host: h.name.clone(),
        live: bg.live.clone(),
        idle: bg.idle.clone(),
    })?;
    let script = super::slot_scripts::stage(&bg.link, &bg.live, &bg.idle);
    let out = h
        .conn
        .run(script.text(), None, STAGE_TIMEOUT.max(h.conn.command_timeout()), None)
        .await
        .map_err(|e| format!("staging {} from {}: {e}", bg.idle, bg.live))?;
    if out.status != 0 {
        return Err(HostError::Failed(format!(
            "staging {} from {} failed (exit {}): {}",
            bg.idle,
            bg.live,
            out.status,
            out.stderr_text()
        )));
    }
    for f in h.files.iter().filter(|f| f.changes()) {
        let path = bg.idle_path(&f.path);
        let before = f.before.as_ref().map(|b| b.sha256.clone());
        let opts = WriteOptions {
            mode: if f.before.is_none() { f.create_mode } else { None },
            owner: None,
            // The fresh copy holds the live slot's bytes: anything else is not our copy.
            expect: Some(before.clone()),
        };
        let sha = h
            .conn
            .write_file(&path, &f.after, &opts)
            .await
            .map_err(|e| format!("stage {path}: {e}"))?;
        run.emit(EventKind::Staged {
            host: h.name.clone(),
            path,
            before,
            sha256: sha,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_targets() {
        assert_eq!(relative("/h/agent/green", "/h/agent"), "green");
        assert_eq!(relative("/h/slots/green", "/h/agent"), "../slots/green");
        assert_eq!(relative("/srv/green", "/h/agent"), "../../srv/green");
        assert_eq!(relative("/h/agent/x/green", "/h/agent"), "x/green");
        assert_eq!(relative("/green", "/"), "green");
    }

    #[test]
    fn paths_map_through_the_link() {
        let bg = BlueGreenHost {
            link: "agent/current".into(),
            live: "agent/blue".into(),
            idle: "agent/green".into(),
            from: "blue".into(),
            to: "green".into(),
        };
        assert_eq!(bg.idle_path("agent/current/config.toml"), "agent/green/config.toml");
        assert_eq!(bg.live_path("agent/current/sub/x.env"), "agent/blue/sub/x.env");
        assert_eq!(bg.in_slot("agent/currently/x", "agent/green"), None);
        assert_eq!(bg.in_slot("agent/current", "agent/green"), None);
    }
}
