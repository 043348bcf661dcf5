#!/usr/bin/env bash
# Sandbox scale: N simulated hosts in one `bellwether sandbox` process. For each N it measures
# what the idle sandbox costs (CPU over 20 s, resident memory), a `ping` of every host, and a
# zero-window rollout over all of them of the peers workload (replace a 4 KiB config, restart
# the agent, check its status): wall time, the controller's CPU and peak RSS, and the CPU the
# sandbox spent serving it (its own, and the host-side commands it ran).
#
# Usage: bench/scale.sh [N ...]          default: 200 1000 2000
#        PAR=50 bench/scale.sh 2000      hosts changed (and connected) at once; default 50
# Needs: cargo, GNU time (/usr/bin/time; Debian package `time`). Prints a markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
PAR=${PAR:-50}
[ -x /usr/bin/time ] || { echo "needs GNU time: apt-get install time" >&2; exit 2; }
cargo build --release --quiet
BW=${CARGO_TARGET_DIR:-$PWD/target}/release/bellwether
HZ=$(getconf CLK_TCK)
work=$(mktemp -d)
sandbox=""
cleanup() {
  [ -n "$sandbox" ] && "$BW" sandbox down --dir "$sandbox" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# CPU seconds (self, and reaped children) of a process, from /proc/PID/stat.
cpu_self() { awk -v hz="$HZ" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$1/stat"; }
cpu_children() { awk -v hz="$HZ" '{printf "%.2f", ($16 + $17) / hz}' "/proc/$1/stat"; }
rss_mib() { awk '/^VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }
# "wall user sys maxrss_kb" of a command run under GNU time; its output goes to $work/out.
timed() {
  /usr/bin/time -f "%e %U %S %M" -o "$work/time" "$@" >"$work/out" 2>&1 || {
    echo "failed ($?): $*" >&2
    tail -5 "$work/out" >&2
    return 1
  }
  tail -n1 "$work/time"
}

bench/peers.sh --config >"$work/agent.toml"
echo "$(nproc) cores; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| hosts | idle sandbox CPU (% of a core) | idle sandbox RSS MiB | ping wall s | rollout wall s | controller CPU s | controller peak RSS MiB | sandbox CPU in rollout s (self + commands) |"
echo "|---|---|---|---|---|---|---|---|"
for n in "${@:-200 1000 2000}"; do
  sandbox=$work/sb-$n
  "$BW" sandbox up --hosts "$n" --dir "$sandbox" >/dev/null
  pid=$(cat "$sandbox/sandbox.pid")
  mkdir -p "$sandbox/playbooks/files"
  cp "$work/agent.toml" "$sandbox/playbooks/files/agent.toml"
  cp bench/push.toml "$sandbox/playbooks/push.toml"
  sleep 3
  c0=$(cpu_self "$pid")
  sleep 20
  c1=$(cpu_self "$pid")
  idle=$(awk -v a="$c0" -v b="$c1" 'BEGIN {printf "%.1f", (b - a) * 100 / 20}')
  idle_rss=$(rss_mib "$pid")
  read -r ping_wall _ < <(timed "$BW" --fleet "$sandbox/fleet.toml" -j "$PAR" ping)
  s0=$(cpu_self "$pid"); k0=$(cpu_children "$pid")
  read -r wall user sys rss < <(timed "$BW" --fleet "$sandbox/fleet.toml" --runs-dir "$sandbox/runs" \
    -j "$PAR" rollout "$sandbox/playbooks/push.toml" --yes)
  s1=$(cpu_self "$pid"); k1=$(cpu_children "$pid")
  changed=$(for h in "$sandbox"/hosts/*/agent/config.toml; do cmp -s "$h" "$work/agent.toml" && echo; done | wc -l)
  [ "$changed" -eq "$n" ] || echo "warning: only $changed of $n hosts have the new config" >&2
  awk -v n="$n" -v idle="$idle" -v irss="$idle_rss" -v pw="$ping_wall" -v w="$wall" -v u="$user" \
    -v s="$sys" -v r="$rss" -v s0="$s0" -v s1="$s1" -v k0="$k0" -v k1="$k1" 'BEGIN {
      printf "| %d | %s | %s | %s | %s | %.1f | %.0f | %.1f + %.1f |\n",
        n, idle, irss, pw, w, u + s, r / 1024, s1 - s0, k1 - k0 }'
  "$BW" sandbox down --dir "$sandbox" >/dev/null
  sandbox=""
done
