#!/usr/bin/env bash
# The HTTP benchmarks of README.md: a fresh data directory, traild on a free loopback port
# (no access log), and trail-bench's three targets, each against a fresh chain.
# Usage: [TRAILD_ARGS="--threads 1"] scripts/bench-http.sh [BUILD_DIR] [DURATION_SECONDS] [extra trail-bench flags...]
set -euo pipefail
build=${1:-build}
duration=${2:-10}
shift $(( $# > 2 ? 2 : $# )) || true
dir=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
password=$("$build/bin/trailctl" init --data "$dir/data" --keys "$dir/keys" | sed -n 's/^admin password: //p')
"$build/bin/traild" --data "$dir/data" --keys "$dir/keys" --listen 127.0.0.1:0 --no-access-log ${TRAILD_ARGS:-} \
  >"$dir/out" 2>"$dir/err" &
pid=$!
for _ in $(seq 100); do grep -q "listening on" "$dir/out" 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's/^traild: listening on //p' "$dir/out")
export TRAIL_BENCH_PASSWORD=$password
run() { echo "== $*"; "$build/bin/trail-bench" --url "$url" --user admin --duration "$duration" "$@" 2>/dev/null | grep -E "requests|events|latency|errors"; }
run --project single --mode append --connections 64 --batch 1 "$@"
run --project batch --mode append --connections 64 --batch 100 "$@"
run --project reads --mode read --connections 16 --cases 1000 "$@"
