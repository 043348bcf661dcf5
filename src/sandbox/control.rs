//! The background sandbox process and its control socket (`DIR/control.sock`): `sandbox up`
//! starts it and waits for "ready"; `fault` and `down` talk to it over the socket.

use super::setup::{apply_fault, create};
use std::path::Path;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

/// Run the sandbox in this process until told to stop. Prints `ready` once serving.
pub async fn serve_forever(dir: &Path, n: usize) -> Result<(), String> {
    let sb = create(dir, n).await?;
    let sock = sb.dir.join("control.sock");
    let _ = std::fs::remove_file(&sock);
    let listener = UnixListener::bind(&sock).map_err(|e| format!("bind {}: {e}", sock.display()))?;
    let _ = std::fs::write(sb.dir.join("sandbox.pid"), std::process::id().to_string());
    println!("ready");
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (r, mut w) = stream.into_split();
        let mut line = String::new();
        if BufReader::new(r).read_line(&mut line).await.is_err() {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let reply = match words.as_slice() {
            ["fault", host, kind] => match sb.host(host) {
                Some(h) => apply_fault(h, kind)
                    .map(|_| "ok".to_string())
                    .unwrap_or_else(|e| format!("error: {e}")),
                None => format!("error: no sandbox host {host:?} (have h01..h{:02})", sb.hosts.len()),
            },
            ["stop"] => {
                sb.stop_agents().await;
                let _ = std::fs::remove_file(&sock);
                let _ = std::fs::remove_file(sb.dir.join("sandbox.pid"));
                let _ = w.write_all(b"ok\n").await;
                return Ok(());
            }
            _ => format!("error: unknown command {:?}", line.trim()),
        };
        let _ = w.write_all(format!("{reply}\n").as_bytes()).await;
    }
}

/// Send one control line to a running sandbox; returns its reply.
pub async fn send(dir: &Path, line: &str) -> Result<String, String> {
    let sock = dir.join("control.sock");
    let mut s = UnixStream::connect(&sock).await.map_err(|e| {
        format!(
            "no sandbox running in {} ({e}); start one with `bellwether sandbox up --dir {}`",
            dir.display(),
            dir.display()
        )
    })?;
    s.write_all(format!("{line}\n").as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut reply = String::new();
    BufReader::new(s)
        .read_line(&mut reply)
        .await
        .map_err(|e| e.to_string())?;
    let reply = reply.trim().to_string();
    match reply.strip_prefix("error: ") {
        Some(e) => Err(e.to_string()),
        None => Ok(reply),
    }
}
