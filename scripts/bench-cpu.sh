#!/usr/bin/env bash
# CPU that each busy traild thread spends per request, for one trail-bench run against a fresh
# data directory: a steadier measure than events/s on a disk whose flush latency drifts.
# Usage: scripts/bench-cpu.sh [BUILD_DIR] trail-bench flags...
#   e.g. scripts/bench-cpu.sh build --duration 8 --mode append --batch 1 --connections 64
# Prints events (or requests) per second, p50/p99 latency, then microseconds of CPU per request
# for each traild thread that used any, by thread name: trail-writer, trail-seal, trail-complete,
# trail-checkpoint, trail-io; "traild" is the main thread (the first I/O thread) or a helper pool.
set -euo pipefail
build=${1:-build}
shift || true
source "$(dirname "$0")/fresh-traild.sh"
start_fresh_traild "$build"
# tid name ticks (user + system, in clock ticks)
snapshot() {
  for task in /proc/$pid/task/*; do
    echo "$(basename "$task") $(tr ' ' '_' <"$task/comm") $(awk '{print $14+$15}' "$task/stat")"
  done | sort
}
snapshot >"$dir/before"
out=$("$build/bin/trail-bench" --url "$url" --user admin --project cpu "$@" 2>/dev/null)
snapshot >"$dir/after"
count=$(echo "$out" | grep -E "^  (events|requests)" | tail -1 | awk '{print $2}')
echo "$out" | grep -E "^  (events|requests)" | tail -1 | awk '{printf "%s/s  ", substr($3, 2, length($3) - 4)}'
echo "$out" | grep latency | awk '{printf "p50 %s ms  p99 %s ms\n", $4, $8}'
ticks=$(getconf CLK_TCK)
join "$dir/before" "$dir/after" | awk -v n="$count" -v hz="$ticks" \
  '{ d = $5 - $3; if (d > 0) printf "  %-16s %6.1f us CPU per request\n", $2, d * 1e6 / hz / n }'
