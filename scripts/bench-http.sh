#!/usr/bin/env bash
# The HTTP benchmarks of README.md: a fresh data directory, traild on a free loopback port
# (no access log), and trail-bench's three targets (batches twice: shared and owned cases),
# each against a fresh chain.
# Usage: [TRAILD_ARGS="--threads 1"] scripts/bench-http.sh [BUILD_DIR] [DURATION_SECONDS] [extra trail-bench flags...]
set -euo pipefail
build=${1:-build}
duration=${2:-10}
shift $(( $# > 2 ? 2 : $# )) || true
source "$(dirname "$0")/fresh-traild.sh"
start_fresh_traild "$build"
run() { echo "== $*"; "$build/bin/trail-bench" --url "$url" --user admin --duration "$duration" "$@" 2>/dev/null | grep -E "requests|events|latency|errors"; }
run --project single --mode append --connections 64 --batch 1 "$@"
run --project batch --mode append --connections 64 --batch 100 "$@"
# The same batches, each connection updating only the cases it holds, as a phone does (one
# user's 64 connections then send no late events: docs/CASES.md, device-time reordering).
run --project owned --mode append --connections 64 --batch 100 --own-cases "$@"
run --project reads --mode read --connections 16 --cases 1000 "$@"
