#!/usr/bin/env bash
# CPU that each busy traild thread spends per request, for one trail-bench run against a fresh
# data directory: a steadier measure than events/s on a disk whose flush latency drifts.
# Usage: scripts/bench-cpu.sh [BUILD_DIR] trail-bench flags...
#   e.g. scripts/bench-cpu.sh build --duration 8 --mode append --batch 1 --connections 64
# Prints events (or requests) per second, p50/p99 latency, then microseconds of CPU per request
# for each traild thread that used any, by thread name: trail-writer, trail-complete,
# trail-checkpoint, trail-io; "traild" is the main thread (the first I/O thread) or a helper pool.
set -euo pipefail
build=${1:-build}
shift || true
dir=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
password=$("$build/bin/trailctl" init --data "$dir/data" --keys "$dir/keys" | sed -n 's/^admin password: //p')
"$build/bin/traild" --data "$dir/data" --keys "$dir/keys" --listen 127.0.0.1:0 --no-access-log ${TRAILD_ARGS:-} \
  >"$dir/out" 2>"$dir/err" &
pid=$!
for _ in $(seq 100); do grep -q "listening on" "$dir/out" 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's/^traild: listening on //p' "$dir/out")
export TRAIL_BENCH_PASSWORD=$password
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
