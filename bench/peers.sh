#!/usr/bin/env bash
# bellwether against its peers on one workload — "replace a 4 KiB config, restart the agent,
# check its status" — over N real OpenSSH sshd hosts on loopback, in the same run:
#
#   bellwether   one zero-window rollout (strategy all_at_once, batch_observe 0s), -j PAR
#   xargs        OpenSSH: `xargs -P PAR`, one `ssh host 'cat > new && mv ... && restart &&
#                status' < config` per host
#   pssh         parallel-ssh (Debian's `pssh`), one pass with the config on stdin (-I), -p PAR
#
# Each host is an sshd of its own on its own 127.251.x.y address, with its own host key, a home
# directory and a running agent — so the hosts' work shares the machine with the controller, as
# in the tests. AGENT=fixture (the default) is the fake agent of bellwether's tests
# (tests/fixtures/agentctl: a `sh` loop logging ten lines a second, a fork of `sleep` each);
# AGENT=quiet is the same commands with a daemon that only sleeps, for fleets too large for
# the fixture's forks on a small machine (200 of them saturate 2 cores by themselves). Every tool gets the same known_hosts (strict checking) and key. Before each
# run every host's config is put back (a local copy, not timed); after it, every host must hold
# the new config byte for byte. The order of the tools rotates from round to round.
# Printed: per tool the median (and min–max) wall time, controller CPU (user + sys of the tool
# and every ssh it started) and peak RSS, the remote commands each host ran (counted by the
# hosts' sshd ForceCommand), and wall-time ratios — over the runs that completed (exit 0 and
# every host changed; a failed run is reported as it happens and counted in "runs completed").
# For each bellwether run, where its time went (from its run record).
#
# The hosts log in as the current user, whose login shell is run for every remote command
# (`$SHELL -c ...`, by sshd). bash run by sshd reads ~/.bashrc even without a terminal; a
# fleet host's service account has nothing costly there (Debian's default .bashrc returns at
# once when not interactive), but a development machine's may: this one's root .bashrc runs
# `pyenv init` unguarded, ~100 ms of CPU per remote command, for every tool. LOGIN_RC=skip
# (the default) keeps the hosts' sessions from reading it (sshd `SetEnv SHLVL=1`: bash only
# reads it for a shell sshd started at level 1); LOGIN_RC=run measures with it.
#
# Usage: bench/peers.sh [N] [ROUNDS]     default: 50 hosts, 3 rounds; PAR=50 hosts at once;
#                                        AGENT=fixture|quiet (above); LOGIN_RC=skip|run (above)
#        bench/peers.sh --config         print the 4 KiB agent config the workload writes
#        RUNS=DIR                        bellwether's runs folder (default: in the work folder)
# Needs: cargo, openssh-server, openssh-client, GNU time, and for the pssh row the Debian
# package pssh (`apt-get install pssh`; without it that row is skipped). sshd must be able to
# run as the current user (as in tests/common/mod.rs: root, or any user for itself).
set -euo pipefail
cd "$(dirname "$0")/.."

# A 4 KiB agent config: the tests' agent config, padded with comment lines.
config() {
  local model=$1
  {
    printf '# Hermes agent configuration (bench/peers.sh)\n[agent]\nid = "hermes"\nmax_concurrency = 8\n\n'
    printf '[model]\nname = "%s"\nprovider = "anthropic"\ntemperature = 0.2\n\n' "$model"
    printf '[provider]\nbase_url = "https://api.anthropic.com"\n\n'
    for i in $(seq 1 60); do printf '# padding line %02d: the rest of a real config lives here ........\n' "$i"; done
  } | head -c 4096
}
if [ "${1:-}" = "--config" ]; then
  config claude-sonnet-4-5
  exit 0
fi

N=${1:-50}
ROUNDS=${2:-3}
PAR=${PAR:-50}
AGENT=${AGENT:-fixture}
case $AGENT in fixture | quiet) ;; *) echo "AGENT must be fixture or quiet" >&2; exit 2 ;; esac
LOGIN_RC=${LOGIN_RC:-skip}
case $LOGIN_RC in skip) SETENV="SetEnv SHLVL=1" ;; run) SETENV="" ;; *) echo "LOGIN_RC must be skip or run" >&2; exit 2 ;; esac
SSHD=$(command -v sshd || echo /usr/sbin/sshd)
[ -x "$SSHD" ] || { echo "needs sshd: apt-get install openssh-server" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "needs GNU time: apt-get install time" >&2; exit 2; }
PSSH=$(command -v parallel-ssh || true)
[ -n "$PSSH" ] || echo "note: parallel-ssh not found (apt-get install pssh): its row is skipped" >&2
mkdir -p /run/sshd 2>/dev/null || true

cargo build --release --quiet
BW=${CARGO_TARGET_DIR:-$PWD/target}/release/bellwether
AGENTCTL=$PWD/tests/fixtures/agentctl
QUIET_AGENTCTL='#!/bin/sh
# bench/peers.sh AGENT=quiet: the commands of tests/fixtures/agentctl; the daemon only sleeps.
cd "$(dirname "$0")" || exit 1
stop() { [ -f agent/agent.pid ] && kill "$(cat agent/agent.pid)" 2>/dev/null; rm -f agent/agent.pid; }
case "${1:-}" in
  start|restart) stop; sed -n "s/^name = \"\(.*\)\"/\1/p" agent/config.toml >agent/model
    sleep 100000 </dev/null >/dev/null 2>&1 & echo $! >agent/agent.pid ;;
  stop) stop ;;
  status) [ -f agent/agent.pid ] && kill -0 "$(cat agent/agent.pid)" 2>/dev/null ;;
  *) exit 2 ;;
esac'
USER_NAME=$(id -un)
PORT=2299
work=$(mktemp -d)
# Where bellwether keeps its run records (each event is fsynced): RUNS=/dev/shm/... keeps them
# off a disk that other work makes slow to sync.
RUNS=${RUNS:-$work/runs}
pids=()
cleanup() {
  for i in $(seq 1 "$N"); do sh "$work/home-$i/agentctl" stop 2>/dev/null || true; done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

addr() { echo "127.251.$(( ($1 - 1) / 250 )).$(( 1 + ($1 - 1) % 250 ))"; }

# --- the fleet: N sshd, keys, known_hosts, homes with the agent running ---------------------
ssh-keygen -q -t ed25519 -N "" -f "$work/id_ed25519"
config claude-sonnet-4 >"$work/old.toml"
config claude-sonnet-4-5 >"$work/new.toml"
: >"$work/known_hosts"
: >"$work/hosts"
printf '[defaults]\nuser = "%s"\nidentity = ["%s"]\nknown_hosts = "%s"\nconnect_timeout = "20s"\nagent = false\nssh_config = false\n\n' \
  "$USER_NAME" "$work/id_ed25519" "$work/known_hosts" >"$work/fleet.toml"
for i in $(seq 1 "$N"); do
  a=$(addr "$i")
  home=$work/home-$i
  mkdir -p "$home/agent" "$work/sshd-$i"
  ssh-keygen -q -t ed25519 -N "" -f "$work/sshd-$i/host_key"
  cat >"$work/sshd-$i/config" <<EOF
ListenAddress $a:$PORT
HostKey $work/sshd-$i/host_key
PidFile $work/sshd-$i/pid
AuthorizedKeysFile $work/id_ed25519.pub
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
MaxSessions 100
MaxStartups 200
LogLevel ERROR
$SETENV
ForceCommand cd $home && echo >>.commands && exec /bin/sh -c "\$SSH_ORIGINAL_COMMAND"
EOF
  "$SSHD" -D -e -f "$work/sshd-$i/config" 2>>"$work/sshd.log" &
  pids+=($!)
  echo "[$a]:$PORT $(cut -d' ' -f1,2 "$work/sshd-$i/host_key.pub")" >>"$work/known_hosts"
  echo "$a" >>"$work/hosts"
  printf '[[host]]\nname = "h%03d"\naddress = "%s"\nport = %d\ngroups = ["prod"]\n\n' "$i" "$a" "$PORT" >>"$work/fleet.toml"
  if [ "$AGENT" = fixture ]; then cp "$AGENTCTL" "$home/agentctl"; else echo "$QUIET_AGENTCTL" >"$home/agentctl"; fi
  chmod +x "$home/agentctl"
  cp "$work/old.toml" "$home/agent/config.toml"
  echo claude-broken-9 >"$home/agent/broken_models"
  sh "$home/agentctl" start
done
for i in $(seq 1 "$N"); do
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/$(addr "$i")/$PORT") 2>/dev/null && break
    sleep 0.05
  done
done

mkdir -p "$work/playbooks/files"
cp "$work/new.toml" "$work/playbooks/files/agent.toml"
cp bench/push.toml "$work/playbooks/push.toml"

# Each tool's run as a script of its own, so GNU time measures it and everything it starts.
REMOTE='cat > agent/config.toml.new && mv agent/config.toml.new agent/config.toml && ./agentctl restart && ./agentctl status'
SSH_OPTS="-F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=$work/known_hosts -o IdentitiesOnly=yes -o ConnectTimeout=20 -i $work/id_ed25519 -p $PORT -l $USER_NAME"
cat >"$work/run-bellwether" <<EOF
exec "$BW" --fleet "$work/fleet.toml" --runs-dir "$RUNS" -j $PAR rollout "$work/playbooks/push.toml" --yes
EOF
cat >"$work/run-xargs" <<EOF
exec xargs -P $PAR -I{} sh -c 'exec ssh $SSH_OPTS "\$1" "$REMOTE" <"$work/new.toml"' sh {} <"$work/hosts"
EOF
cat >"$work/run-pssh" <<EOF
exec "$PSSH" -h "$work/hosts" -p $PAR -t 120 -x "$SSH_OPTS" -I "$REMOTE" <"$work/new.toml"
EOF

reset_hosts() {
  for i in $(seq 1 "$N"); do
    cp "$work/old.toml" "$work/home-$i/agent/config.toml"
    : >"$work/home-$i/.commands"
  done
  rm -rf "$RUNS"
}
check_hosts() {
  local bad=0 cmds=0
  for i in $(seq 1 "$N"); do
    cmp -s "$work/new.toml" "$work/home-$i/agent/config.toml" || bad=$((bad + 1))
    cmds=$((cmds + $(wc -l <"$work/home-$i/.commands")))
  done
  awk -v c="$cmds" -v n="$N" 'BEGIN {printf "%.1f", c / n}'
  [ "$bad" -eq 0 ] || { echo "warning: $1 left $bad of $N hosts without the new config" >&2; return 1; }
}

# Where a bellwether run's time went, from its record (events.jsonl: "ts" and "event" of each
# line): seconds from the run's start to the last preflight (which places the run markers in
# the same remote command), the change (write, apply, health), the checks at the window's end
# (none for a zero window), and from the phase's end to the run's (releasing the markers).
phases() {
  awk -F'"' '{
      for (i = 1; i < NF; i++) { if ($i == "ts") ts = $(i + 2); if ($i == "event") ev = $(i + 2) }
      split(substr(ts, 12), hms, ":"); t = hms[1] * 3600 + hms[2] * 60 + hms[3]
      if (!(ev in first)) first[ev] = t
      last[ev] = t
    } END {
      if (!("run_finished" in first) || !("phase_passed" in first)) {
        printf "failed after %.1f s, at %s\n", t - first["run_started"], ev
        exit
      }
      printf "preflight and markers %.1f s, change %.1f s, window-end checks %.1f s, markers released %.1f s\n",
        last["preflight"] - first["run_started"],
        first["observe_started"] - first["phase_started"], first["phase_passed"] - first["observe_started"],
        first["run_finished"] - first["phase_passed"]
    }' "$RUNS"/*/events.jsonl
}

load=$(cut -d' ' -f1-3 /proc/loadavg)
tools=(bellwether xargs)
[ -n "$PSSH" ] && tools+=(pssh)
: >"$work/results"
for r in $(seq 1 "$ROUNDS"); do
  # Rotate the order so no tool always runs first (or right after another's restarts).
  order=("${tools[@]:$(( (r - 1) % ${#tools[@]} ))}" "${tools[@]:0:$(( (r - 1) % ${#tools[@]} ))}")
  for t in "${order[@]}"; do
    reset_hosts
    sleep 1
    ok=1
    /usr/bin/time -f "%e %U %S %M" -o "$work/time" sh "$work/run-$t" >"$work/out-$t" 2>&1 ||
      { ok=0; echo "warning: $t failed in round $r:" >&2; { grep -v '^  ' "$work/out-$t" | tail -2; grep -m2 '^  ' "$work/out-$t"; } >&2; }
    read -r wall user sys rss < <(tail -n1 "$work/time")
    per_host=$(check_hosts "$t") || ok=0
    if [ "$t" = bellwether ]; then echo "round $r: bellwether phases: $(phases "$work")" >&2; fi
    echo "$t $wall $(awk -v u="$user" -v s="$sys" 'BEGIN {print u + s}') $rss $per_host $ok" >>"$work/results"
    echo "round $r: $t wall ${wall}s cpu $(awk -v u="$user" -v s="$sys" 'BEGIN {print u + s}')s remote commands/host $per_host" >&2
  done
done

median() { sort -n | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
range() { sort -n | awk 'NR == 1 {lo = $1} {hi = $1} END {printf "%s–%s", lo, hi}'; }
# Column $2 of tool $1's completed runs (exit 0, every host changed).
col() { awk -v t="$1" -v c="$2" '$1 == t && $6 == 1 {print $c}' "$work/results"; }
done_runs() { awk -v t="$1" '$1 == t && $6 == 1' "$work/results" | wc -l; }
xw=$(col xargs 2 | median)
echo
echo "$N hosts (real sshd on loopback, AGENT=$AGENT running on each, LOGIN_RC=$LOGIN_RC), $PAR at once, $ROUNDS rounds, $(nproc) cores, load average before: $load"
echo
echo "| tool | runs completed | wall s, median (min–max) | controller CPU s, median (min–max) | peak RSS MiB | remote commands per host | wall / xargs |"
echo "|---|---|---|---|---|---|---|"
for t in "${tools[@]}"; do
  if [ "$(done_runs "$t")" -eq 0 ]; then
    printf '| %s | 0 of %s | – | – | – | – | – |\n' "$t" "$ROUNDS"
    continue
  fi
  w=$(col "$t" 2 | median)
  printf '| %s | %s of %s | %s (%s) | %s (%s) | %.0f | %s | %.2f |\n' "$t" "$(done_runs "$t")" "$ROUNDS" "$w" "$(col "$t" 2 | range)" \
    "$(col "$t" 3 | median)" "$(col "$t" 3 | range)" "$(col "$t" 4 | median | awk '{print $1 / 1024}')" \
    "$(col "$t" 5 | median)" "$(awk -v a="$w" -v b="$xw" 'BEGIN {print (b > 0) ? a / b : 0}')"
done
