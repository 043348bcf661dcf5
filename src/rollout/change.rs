//! Changing one host in a phase: write the files (or, for blue/green, stage the idle slot and
//! flip the link), check the pins on the bytes written, run apply and health, then the
//! after-hooks; each step recorded.

use super::blue_green::{self, BlueGreenHost};
use super::error::HostError;
use super::host::{self, Prepared};
use super::run::Run;
use crate::record::EventKind;
use std::time::Duration;

/// Change one host: write (or stage and flip), check its pins, apply, health, after-hooks.
pub(crate) async fn change_host(ctx: &Run, h: &Prepared) -> Result<(), HostError> {
    let hp = ctx.plan.hosts.get(&h.name).cloned().unwrap_or_default();
    let timeouts = (
        Duration::from_millis(hp.apply_timeout_ms),
        Duration::from_millis(hp.health_timeout_ms),
    );
    // The common case — one file, apply and health, nothing to check in between — is one
    // remote command: write, apply, health.
    let mut changed = h.files.iter().filter(|f| f.changes());
    if let (Some(f), None, None, false, true, Some(a), Some(hc)) = (
        changed.next(),
        changed.next(),
        &h.blue_green,
        ctx.resumed,
        ctx.pinned.is_empty(),
        h.apply.as_deref(),
        h.health.as_deref(),
    ) {
        run_hooks(ctx, h, &h.before_hooks, "before").await?;
        ctx.changing(&h.name);
        super::apply_health::write_apply_health(&ctx.rec, h, f, (a, hc), timeouts).await?;
        return run_hooks(ctx, h, &h.after_hooks, "after").await;
    }
    // Resumed and blue/green hosts move the cut (`Run::changing`) again once their `before`
    // hooks ran and the change itself begins; set here, it holds for a host with nothing
    // left to write.
    if let Some(bg) = &h.blue_green {
        ctx.changing(&h.name);
        stage_and_flip(ctx, h, bg, ctx.resumed).await?;
    } else {
        if ctx.resumed {
            ctx.changing(&h.name);
            rewrite_resumed(ctx, h).await?;
        } else {
            run_hooks(ctx, h, &h.before_hooks, "before").await?;
            ctx.changing(&h.name);
            host::write_files(&ctx.rec, h).await?;
        }
        super::pins::after_write(ctx, h)?;
    }
    super::apply_health::apply_then_health(
        &ctx.rec,
        &h.conn,
        &h.name,
        h.apply.as_deref(),
        h.health.as_deref(),
        timeouts,
    )
    .await?;
    run_hooks(ctx, h, &h.after_hooks, "after").await?;
    Ok(())
}

/// A resumed run: each planned file holds either this run's bytes (keep), the bytes it had
/// before (write now), or something else (stop: someone changed it).
async fn rewrite_resumed(ctx: &Run, h: &Prepared) -> Result<(), HostError> {
    let planned = ctx.plan.hosts.get(&h.name).map(|p| p.files.clone()).unwrap_or_default();
    for fp in planned.iter().filter(|f| f.before.as_deref() != Some(f.after.as_str())) {
        let cur = h
            .conn
            .read_file(&fp.path)
            .await
            .map_err(|e| HostError::Failed(e.to_string()))?
            .map(|c| c.sha256);
        if cur.as_deref() == Some(fp.after.as_str()) {
            continue;
        }
        let f = h
            .files
            .iter()
            .find(|f| f.path == fp.path)
            .ok_or_else(|| format!("{} is no longer in the playbook", fp.path))?;
        if cur != fp.before || f.after_sha != fp.after {
            return Err(HostError::LeftAlone(format!(
                "{} changed since the run was planned (sha256 now {}); not continuing on it",
                fp.path,
                cur.as_deref().unwrap_or("absent")
            )));
        }
        run_hooks(ctx, h, &h.before_hooks, "before").await?;
        ctx.changing(&h.name);
        host::write_one(&ctx.rec, h, f).await?;
    }
    Ok(())
}

/// Run a host's hooks of one kind in order, each recorded; the first failure stops the host.
pub(crate) async fn run_hooks(ctx: &Run, h: &Prepared, hooks: &[String], kind: &str) -> Result<(), HostError> {
    let timeout = Duration::from_millis(
        ctx.plan
            .hosts
            .get(&h.name)
            .map(|p| p.apply_timeout_ms)
            .unwrap_or(60_000),
    );
    for hook in hooks {
        let r = h.conn.run(hook, None, timeout, None).await;
        let (ok, detail) = match &r {
            Ok(o) if o.status == 0 => (true, String::new()),
            Ok(o) => (false, format!("exit {}: {}", o.status, o.stderr_text())),
            Err(e) => (false, e.to_string()),
        };
        ctx.rec.emit(EventKind::Hook {
            host: h.name.clone(),
            hook: format!("{kind}: {hook}"),
            ok,
            detail: detail.clone(),
        })?;
        if !ok {
            return Err(HostError::Failed(format!(
                "{kind}-hook `{hook}` failed ({detail}){}",
                if kind == "before" { "; nothing was written" } else { "" }
            )));
        }
    }
    Ok(())
}

/// Blue/green: stage the idle slot and flip the link to it. A resumed run first finds where
/// the host got to: the link still at the planned `from` (stage and flip again: staging only
/// ever rebuilds the idle slot), already at the planned `to` with the planned files live
/// (nothing left but apply and health), or anything else (stop: someone changed it).
async fn stage_and_flip(ctx: &Run, h: &Prepared, bg: &BlueGreenHost, resumed: bool) -> Result<(), HostError> {
    if resumed {
        let hp = ctx.plan.hosts.get(&h.name).cloned().unwrap_or_default();
        let planned = hp
            .blue_green
            .as_ref()
            .ok_or("the run was planned without blue_green slots; not continuing on it")?;
        let find = |path: &str| h.files.iter().find(|f| f.path == path);
        let sha = |f: &host::FileChange| f.before.as_ref().map(|b| b.sha256.clone());
        if bg.link == planned.link && bg.from == planned.to {
            // Flipped before the interruption: the planned results must be what is live now.
            for fp in &hp.files {
                if find(&fp.path).map(sha) != Some(Some(fp.after.clone())) {
                    return Err(HostError::LeftAlone(format!(
                        "{} already points at {:?}, but {} there is not what this run staged; not continuing on it",
                        bg.link, planned.to, fp.path
                    )));
                }
            }
            return Ok(());
        }
        if bg.link != planned.link || bg.from != planned.from || bg.to != planned.to {
            return Err(HostError::LeftAlone(format!(
                "{} now points at {:?}; the run planned to flip it from {:?} to {:?}; not continuing on it",
                bg.link, bg.from, planned.from, planned.to
            )));
        }
        for fp in &hp.files {
            let f = find(&fp.path).ok_or_else(|| format!("{} is no longer in the playbook", fp.path))?;
            if sha(f) != fp.before || f.after_sha != fp.after {
                return Err(HostError::LeftAlone(format!(
                    "{} changed since the run was planned; not continuing on it",
                    bg.live_path(&fp.path)
                )));
            }
        }
    }
    run_hooks(ctx, h, &h.before_hooks, "before").await?;
    blue_green::stage(&ctx.rec, h, bg).await?;
    // Pins are checked on the staged bytes, before the agent can read them.
    super::pins::after_write(ctx, h)?;
    // The old slot's agent runs until the flip: its lines so far are not the new one's.
    ctx.changing(&h.name);
    super::flip::flip(&ctx.rec, h, bg).await
}
