#!/usr/bin/env bash
# What the log watch costs the controller: a rollout over N sandbox hosts (each agent logs LPS
# lines a second, 5 by default as in issue 12; docs/sandbox.md) with a window of W seconds, watching every
# host's agent/agent.log with the sandbox playbook's gates (three error patterns, a latency
# metric). The controller's CPU is read from /proc/PID/stat when the window opens (the
# observe_started event) and when its verdicts are recorded, so only the watch is measured,
# not the change before it; the lines it judged come from the verdicts. "Tails started" is the
# time from the phase's start to its first host's change (the N tails starting).
#
# Usage: bench/watch.sh [N] [W] [ROUNDS]        default: 200 hosts, 30 s, 3 rounds; LPS=5
#        BWS="/path/a /path/b" bench/watch.sh   compare binaries, in turn, on one sandbox
#                                               (default: this checkout's release build)
# Needs: cargo. Prints one line per run and the median per binary.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200}
W=${2:-30}
ROUNDS=${3:-3}
LPS=${LPS:-5}
cargo build --release --quiet
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
BW=$TARGET/release/bellwether
read -r -a BWS <<<"${BWS:-$BW}"
HZ=$(getconf CLK_TCK)
work=$(mktemp -d)
sb=$work/sb
cleanup() {
  "$BW" sandbox down --dir "$sb" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

cpu() { awk -v hz="$HZ" '{printf "%.3f", ($14 + $15) / hz}' "/proc/$1/stat"; }
now() { date +%s.%N; }
# Wait until the run's record has a line with "event":"$1" (or the process ends).
wait_event() {
  while kill -0 "$2" 2>/dev/null; do
    grep -qs "\"event\":\"$1\"" "$sb"/runs/*/events.jsonl && return 0
    sleep 0.05
  done
  return 1
}

# The time (s since the epoch) of the run's first "$1" event.
event_s() {
  date -d "$(grep -h "\"event\":\"$1\"" "$sb"/runs/*/events.jsonl | head -n1 | sed 's/.*"ts":"\([^"]*\)".*/\1/')" +%s.%N
}

playbook() {
  cat <<EOF
id = "watch-bench"
tier = "T1"
component = "model"

[[edit]]
path = "agent/config.toml"
set = { "model.name" = "$1" }

[apply]
command = "./agentctl restart"

[watch]
log = { file = "agent/agent.log" }
errors = ["ERROR", "FATAL", "model not found"]
ignore = ["rate limit"]
max_errors = 0
min_lines = 10
metrics = [{ name = "latency_ms", capture = 'latency_ms=(\d+)', p95_max = 800 }]

[rollout]
strategy = "all_at_once"
batch_observe = "${W}s"
EOF
}

BELLWETHER_SANDBOX_TICK_MS=$((1000 / LPS)) "$BW" sandbox up --hosts "$N" --dir "$sb" >/dev/null
echo "$N sandbox hosts x $LPS lines/s, window ${W}s, $ROUNDS rounds, $(nproc) cores, load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
: >"$work/results"
models=(claude-sonnet-4 claude-sonnet-4-5)
run=0
for r in $(seq 1 "$ROUNDS"); do
  for b in "${BWS[@]}"; do
    run=$((run + 1))
    playbook "${models[$((run % 2))]}" >"$sb/playbooks/watch.toml"
    rm -rf "$sb/runs"
    "$b" --fleet "$sb/fleet.toml" --runs-dir "$sb/runs" -j 50 rollout "$sb/playbooks/watch.toml" --yes \
      >"$work/out" 2>&1 &
    pid=$!
    wait_event observe_started "$pid" || { echo "no window: $(tail -3 "$work/out")" >&2; wait "$pid" || true; continue; }
    c0=$(cpu "$pid"); t0=$(now)
    wait_event verdict "$pid" || true
    c1=$(cpu "$pid"); t1=$(now)
    wait "$pid" || { echo "rollout failed: $(tail -3 "$work/out")" >&2; continue; }
    lines=$(grep -h '"event":"verdict"' "$sb"/runs/*/events.jsonl | grep -o '"lines":[0-9]*' | cut -d: -f2 | paste -sd+ | bc)
    # From the phase's start to its first host's change: the N tails starting (each host
    # says its tail runs before any host is changed).
    tails=$(echo "$(event_s snapshot) - $(event_s phase_started)" | bc)
    awk -v b="$b" -v c="$(echo "$c1 - $c0" | bc)" -v t="$(echo "$t1 - $t0" | bc)" -v l="$lines" -v s="$tails" 'BEGIN {
      printf "%s %.3f %.2f %d %.2f %.1f %.2f\n", b, c, t, l, 100 * c / t, 1e6 * c / l, s }' >>"$work/results"
    tail -n1 "$work/results" | awk '{printf "%s: window CPU %s s over %s s = %s%% of a core; %d lines, %s us a line; tails started in %s s\n", $1, $2, $3, $5, $4, $6, $7}'
  done
done
median() { sort -n | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
echo
echo "| binary | window CPU, % of a core (median) | lines/s judged | CPU per line, us | tails started, s |"
echo "|---|---|---|---|---|"
for b in "${BWS[@]}"; do
  printf '| %s | %s | %s | %s | %s |\n' "$b" "$(awk -v b="$b" '$1 == b {print $5}' "$work/results" | median)" \
    "$(awk -v b="$b" '$1 == b {print $4 / $3}' "$work/results" | median)" \
    "$(awk -v b="$b" '$1 == b {print $6}' "$work/results" | median)" \
    "$(awk -v b="$b" '$1 == b {print $7}' "$work/results" | median)"
done
