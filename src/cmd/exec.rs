//! `bellwether exec`: an ad-hoc command on every target, output prefixed by host.

use super::context;
use crate::exit::{Exit, Failure};
use crate::options::Global;
use crate::ssh::exec::{MAX_OUTPUT_BYTES, TRUNCATED};
use crate::ssh::{Connection, Stream};
use crate::ui::safe;
use crate::value::Dur;
use futures::stream::{self, StreamExt};
use std::io::Write;

/// One host's output kept for `--group`: at most [`MAX_OUTPUT_BYTES`] of lines, as `run`
/// keeps, so a host that floods cannot fill the controller's memory while it waits.
#[derive(Default)]
struct Block {
    lines: Vec<String>,
    bytes: usize,
    dropped: u64,
}

impl Block {
    fn push(&mut self, line: String) {
        if self.bytes + line.len() > MAX_OUTPUT_BYTES {
            self.dropped += 1;
        } else {
            self.bytes += line.len();
            self.lines.push(line);
        }
    }
}

/// Run the command.
pub async fn run(g: &Global, sel: &[String], cmd: &[String], group: bool, timeout: &str) -> Result<Exit, Failure> {
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
    let results: Vec<_> = stream::iter(eps.iter())
        .map(|ep| {
            let command = command.clone();
            async move {
                let conn = match Connection::open(ep).await {
                    Ok(c) => c,
                    Err(e) => return (ep, Err(e)),
                };
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
                let name = ep.name.clone();
                let printer = tokio::spawn(async move {
                    let mut block = Block::default();
                    while let Some((s, line)) = rx.recv().await {
                        let line: String = line;
                        if group {
                            block.push(line);
                        } else {
                            let mut out = std::io::stdout().lock();
                            let sep = if s == Stream::Stderr { "!" } else { "|" };
                            let _ = writeln!(out, "{name:<width$} {sep} {}", safe::line(&line));
                        }
                    }
                    block
                });
                let r = conn.run(&command, None, timeout, Some(tx)).await;
                let block = printer.await.unwrap_or_default();
                if group {
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "== {} ==", ep.name);
                    for l in &block.lines {
                        let _ = writeln!(out, "{}", safe::line(l));
                    }
                    if block.dropped > 0 {
                        let _ = writeln!(out, "{TRUNCATED} ({} more lines not kept)", block.dropped);
                    }
                }
                conn.close().await;
                (ep, r)
            }
        })
        .buffer_unordered(context::concurrency(g, &lf))
        .collect()
        .await;
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
        bad.sort();
        println!("failed:\n{}", safe::text(&bad.join("\n")));
        Ok(Exit::Preflight)
    }
}
