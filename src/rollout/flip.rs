//! The blue/green flip: repoint a host's link at the staged slot with one atomic rename,
//! announced in the record before and read back after; and the same rename back on revert.

use super::error::HostError;
use super::host::{FileChange, Prepared};
use super::slots::BlueGreenHost;
use crate::record::events::SlotFile;
use crate::record::history::FlippedLink;
use crate::record::{EventKind, RunDir};
use crate::ssh::Connection;

/// What [`set_link`] found.
enum LinkSet {
    /// The link was repointed; its target is read back.
    Set(String),
    /// It already pointed at the new target.
    Already,
}

/// Why [`set_link`] did nothing or failed.
enum LinkError {
    /// Refused before touching the link: it is not a symlink, or points somewhere else.
    Refused(String),
    /// The attempt failed; the link's state is unknown until read again.
    Failed(String),
}

impl LinkError {
    fn message(&self) -> &str {
        match self {
            LinkError::Refused(m) | LinkError::Failed(m) => m,
        }
    }
}

/// Atomically repoint `link` from `expect` to `new`: a new symlink beside it, renamed over it
/// with `mv -T` (so the agent sees the old target or the new one, never no link), the
/// directory synced, the target read back.
async fn set_link(conn: &Connection, link: &str, expect: &str, new: &str) -> Result<LinkSet, LinkError> {
    let script = super::slot_scripts::set_link(link, expect, new);
    let out = conn
        .run(script.text(), None, conn.command_timeout(), None)
        .await
        .map_err(|e| LinkError::Failed(format!("{link}: {e}")))?;
    let text = out.stdout_text();
    let mut lines = text.lines();
    match (out.status, lines.next()) {
        (0, Some("SAME")) => Ok(LinkSet::Already),
        (0, Some("SET")) => Ok(LinkSet::Set(lines.next().unwrap_or_default().to_string())),
        (20, _) => Err(LinkError::Refused(format!("{link} is no longer a symlink"))),
        (17, Some(l)) => Err(LinkError::Refused(format!(
            "{link} now points at {:?}, expected {expect:?}",
            l.strip_prefix("CHANGED ").unwrap_or(l)
        ))),
        (s, _) => Err(LinkError::Failed(format!(
            "repointing {link} failed (exit {s}): {}",
            out.stderr_text()
        ))),
    }
}

/// The edited files of the live slot with their hashes now (kept with the flip intent).
fn slot_files(bg: &BlueGreenHost, files: &[FileChange]) -> Vec<SlotFile> {
    files
        .iter()
        .map(|f| SlotFile {
            path: bg.live_path(&f.path),
            sha256: f.before.as_ref().map(|b| b.sha256.clone()),
        })
        .collect()
}

/// Flip the link to the staged slot: intent recorded first, the target read back after.
pub(crate) async fn flip(run: &RunDir, h: &Prepared, bg: &BlueGreenHost) -> Result<(), HostError> {
    run.emit(EventKind::FlipIntent {
        host: h.name.clone(),
        link: bg.link.clone(),
        from: bg.from.clone(),
        to: bg.to.clone(),
        slot_files: slot_files(bg, &h.files),
    })?;
    let r = set_link(&h.conn, &bg.link, &bg.from, &bg.to).await;
    let target = match r {
        Ok(LinkSet::Set(t)) => t,
        Ok(LinkSet::Already) => bg.to.clone(),
        Err(e) => {
            let untouched = matches!(e, LinkError::Refused(_));
            run.emit(EventKind::FlipFailed {
                host: h.name.clone(),
                link: bg.link.clone(),
                error: e.message().to_string(),
                untouched,
            })?;
            let msg = format!("flip: {}", e.message());
            return Err(if untouched {
                HostError::LeftAlone(msg)
            } else {
                HostError::Failed(msg)
            });
        }
    };
    if target != bg.to {
        let msg = format!("flip: {} reads back {target:?}, expected {:?}", bg.link, bg.to);
        run.emit(EventKind::FlipFailed {
            host: h.name.clone(),
            link: bg.link.clone(),
            error: msg.clone(),
            untouched: false,
        })?;
        return Err(HostError::Failed(msg));
    }
    run.emit(EventKind::Flipped {
        host: h.name.clone(),
        link: bg.link.clone(),
        target,
    })?;
    Ok(())
}

/// How a flip-back refusal that only a person can resolve ends: the old slot was restaged,
/// so no later `revert` can flip back to it either.
const FLIP_BY_HAND: &str = "Check the slot and flip by hand";

/// Is this revert problem one that retrying `revert` cannot fix?
pub fn needs_a_person(problem: &str) -> bool {
    problem.ends_with(FLIP_BY_HAND)
}

/// Revert one flip: check the old slot still holds what it held, then point the link back at
/// `from` (nothing to do if it already does) and read it back. A link that points somewhere
/// this run did not set, or an old slot that was restaged since, is left alone and reported.
pub async fn flip_back(conn: &Connection, f: &FlippedLink) -> Result<String, String> {
    for sf in &f.slot_files {
        let now = conn
            .read_file(&sf.path)
            .await
            .map_err(|e| format!("cannot read {}: {e}", sf.path))?
            .map(|c| c.sha256);
        if now != sf.sha256 {
            return Err(format!(
                "{} changed since this run flipped away from it (sha256 now {}, was {}): flipping {} back to {:?} would not restore the old files; not touching the link. {FLIP_BY_HAND}",
                sf.path,
                now.as_deref().unwrap_or("absent"),
                sf.sha256.as_deref().unwrap_or("absent"),
                f.link,
                f.from
            ));
        }
    }
    match set_link(conn, &f.link, &f.to, &f.from).await {
        Ok(LinkSet::Already) => Ok(f.from.clone()),
        Ok(LinkSet::Set(t)) if t == f.from => Ok(t),
        Ok(LinkSet::Set(t)) => Err(format!(
            "verification failed: {} reads back {t:?}, expected {:?}",
            f.link, f.from
        )),
        Err(LinkError::Refused(m)) => Err(format!(
            "{m} (this run set it to {:?}): someone changed it since; not touching it. It pointed at {:?} before the run",
            f.to, f.from
        )),
        Err(LinkError::Failed(m)) => Err(m),
    }
}
