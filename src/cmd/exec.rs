//! `bellwether exec`: an ad-hoc command on every target, output prefixed by host.

use super::context;
use crate::exit::{Exit, Failure};
use crate::options::Global;
use crate::ssh::{Connection, Stream};
use crate::value::Dur;
use futures::stream::{self, StreamExt};
use std::collections::BTreeMap;
use std::io::Write;

/// How `exec` shows its results.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExecOutput {
    /// Each host's output as one block instead of prefixed lines.
    pub group: bool,
    /// One JSON document at the end instead of text.
    pub json: bool,
}

/// Run the command.
pub async fn run(g: &Global, sel: &[String], cmd: &[String], how: ExecOutput, timeout: &str) -> Result<Exit, Failure> {
    let ExecOutput { group, json } = how;
    let timeout = Dur::parse(timeout)
        .map_err(|e| Failure::input(format!("--timeout: {e}")))?
        .get();
    if cmd.is_empty() {
        return Err(Failure::input(
            "no command given; usage: bellwether exec [TARGETS] -- COMMAND",
        ));
    }
    let command = cmd.join(" ");
    let lf = context::fleet(g)?;
    let hosts = context::select(&lf, sel)?;
    let eps: Vec<_> = hosts.iter().map(|h| context::endpoint(&lf, h, g.accept_new)).collect();
    let width = eps.iter().map(|e| e.name.len()).max().unwrap_or(0);
    let mut running = stream::iter(eps.iter().enumerate())
        .map(|(i, ep)| {
            let command = command.clone();
            async move {
                let conn = match Connection::open(ep).await {
                    Ok(c) => c,
                    Err(e) => return (i, ep, Err(e), Vec::new()),
                };
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Stream, String)>();
                let name = ep.name.clone();
                let printer = tokio::spawn(async move {
                    // At most MAX_OUTPUT_BYTES of lines kept per host (as `run` keeps), so a
                    // host that floods cannot fill the controller's memory while it waits.
                    let mut block = Vec::new();
                    let mut kept = 0usize;
                    while let Some((s, line)) = rx.recv().await {
                        if group || json {
                            if kept + line.len() <= crate::ssh::exec::MAX_OUTPUT_BYTES {
                                kept += line.len();
                                block.push((s, line));
                            }
                        } else {
                            let mut out = std::io::stdout().lock();
                            let sep = if s == Stream::Stderr { "!" } else { "|" };
                            let _ = writeln!(out, "{name:<width$} {sep} {}", crate::ui::safe::line(&line));
                        }
                    }
                    block
                });
                let r = conn.run(&command, None, timeout, Some(tx)).await;
                let block = printer.await.unwrap_or_default();
                conn.close().await;
                (i, ep, r, block)
            }
        })
        .buffer_unordered(context::concurrency(g, &lf));
    // Hosts finish in any order; `--group` blocks are printed in fleet order, each as soon as
    // every host before it has been printed (a slow host holds back only the ones after it).
    let mut results = Vec::with_capacity(eps.len());
    let mut blocks: BTreeMap<usize, (String, Vec<(Stream, String)>)> = BTreeMap::new();
    let mut next = 0;
    while let Some((i, ep, r, block)) = running.next().await {
        results.push((i, ep, r));
        if !group || json {
            continue;
        }
        blocks.insert(i, (ep.name.clone(), block));
        while let Some((name, block)) = blocks.remove(&next) {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "== {name} ==");
            for (_, l) in block {
                let _ = writeln!(out, "{}", crate::ui::safe::line(&l));
            }
            next += 1;
        }
    }
    results.sort_by_key(|(i, _, _)| *i);
    let results: Vec<_> = results.into_iter().map(|(_, ep, r)| (ep, r)).collect();
    if json {
        return Ok(print_json(&command, &results));
    }
    let mut ok = 0;
    let mut bad = Vec::new();
    for (ep, r) in &results {
        match r {
            Ok(o) if o.status == 0 => ok += 1,
            Ok(o) => bad.push(format!("  {}: exit status {}", ep.name, o.status)),
            Err(e) => bad.push(format!("  {}: {} ({e})", ep.name, e.class())),
        }
    }
    println!("{ok} of {} hosts succeeded", results.len());
    if bad.is_empty() {
        Ok(Exit::Done)
    } else {
        println!("failed:\n{}", crate::ui::safe::text(&bad.join("\n")));
        Ok(Exit::Preflight)
    }
}

/// One document: the command and each host's exit status and output, in fleet order.
fn print_json(
    command: &str,
    results: &[(&crate::ssh::Endpoint, Result<crate::ssh::Output, crate::ssh::SshError>)],
) -> Exit {
    let lines = |b: &[u8]| -> Vec<String> { String::from_utf8_lossy(b).lines().map(String::from).collect() };
    let hosts: Vec<serde_json::Value> = results
        .iter()
        .map(|(ep, r)| match r {
            Ok(o) => serde_json::json!({
                "host": ep.name, "ok": o.status == 0, "exit_status": o.status,
                "stdout": lines(&o.stdout), "stderr": lines(&o.stderr),
            }),
            Err(e) => serde_json::json!({
                "host": ep.name, "ok": false, "exit_status": null,
                "class": e.class(), "error": e.to_string(),
            }),
        })
        .collect();
    let ok = hosts.iter().filter(|h| h["ok"] == true).count();
    let exit = if ok == hosts.len() { Exit::Done } else { Exit::Preflight };
    let doc = serde_json::json!({
        "command": command, "hosts": hosts, "succeeded": ok, "total": results.len(), "exit": exit.code(),
    });
    println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    exit
}
