//! `agentctl` in a sandbox home, and how it reaches its agent: every command the sandbox's SSH
//! server runs gets file descriptor 7, one end of a socket pair whose other end is served here
//! for that host's agent. The script sends `start`, `restart`, `stop` or `status` on it and
//! reads the answer with shell built-ins, so a restart is done (new model read, `agent started`
//! logged) before `./agentctl restart` exits, and `./agentctl status` forks nothing.

use super::agent::Agent;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// The descriptor on which a sandbox command finds its host's agent (`dash` redirects only
/// descriptors 0 to 9; bellwether's own remote scripts use none above 2).
pub const AGENT_FD: i32 = 7;

/// The `agentctl` installed in every sandbox home: the semantics of `tests/fixtures/agentctl`
/// (start, restart, stop, status, model) with the agent itself inside the sandbox process.
pub const SCRIPT: &str = r#"#!/bin/sh
# agentctl for a bellwether sandbox host: start|restart|stop|status|model.
# The agent itself runs inside the sandbox process (`bellwether sandbox up`), which writes
# agent/agent.log ten times a second from agent/config.toml's model, agent/broken_models,
# agent/outage and agent/fault, as the shell agent of bellwether's tests does. This script
# asks it over descriptor 7, which the sandbox's SSH server opens for every command it runs;
# run it over SSH (`bellwether --fleet DIR/fleet.toml exec -- ./agentctl status`).
set -u
case $0 in */*) cd "${0%/*}" || exit 1 ;; esac

ask() {
  if ! { true >&7; } 2>/dev/null; then
    echo "agentctl: the sandbox agent answers only commands run over the sandbox's SSH" >&2
    exit 1
  fi
  echo "$1" >&7 || exit 1
  reply=""
  read -r reply <&7
  case $reply in
    ok|running) return 0 ;;
    stopped) return 1 ;;
    *) echo "agentctl: ${reply:-the sandbox did not answer}" >&2; exit 1 ;;
  esac
}

case "${1:-}" in
  start|restart|stop|status) ask "$1" ;;
  model) sed -n 's/^[[:space:]]*name[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p' agent/config.toml | head -n1 ;;
  *) echo "usage: agentctl start|restart|stop|status|model" >&2; exit 2 ;;
esac
"#;

/// Answer one command's `agentctl` requests until every process holding its descriptor 7
/// has closed it.
pub async fn serve(sock: UnixStream, agent: Arc<Agent>) {
    let (r, mut w) = sock.into_split();
    let mut lines = BufReader::new(r).lines();
    while let Ok(Some(req)) = lines.next_line().await {
        let reply = answer(&agent, req.trim());
        if w.write_all(format!("{reply}\n").as_bytes()).await.is_err() {
            return;
        }
    }
}

fn answer(agent: &Agent, req: &str) -> String {
    match req {
        "start" | "restart" => match agent.start() {
            Ok(()) => "ok".into(),
            Err(e) => format!("cannot open agent/agent.log: {e}"),
        },
        "stop" => {
            agent.stop();
            "ok".into()
        }
        "status" if agent.running() => "running".into(),
        "status" => "stopped".into(),
        other => format!("unknown request {other:?}"),
    }
}
