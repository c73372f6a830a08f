# Sourced by the bench scripts: starts traild on a free loopback port over a fresh data
# directory (no access log; TRAILD_ARGS adds flags) and stops it and removes the directory on
# exit. Sets dir, pid, url, and TRAIL_BENCH_PASSWORD (the first administrator's, for trail-bench).
# Usage: source scripts/fresh-traild.sh; start_fresh_traild BUILD_DIR
start_fresh_traild() {
  local build=$1
  dir=$(mktemp -d)
  trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
  local password
  password=$("$build/bin/trailctl" init --data "$dir/data" --keys "$dir/keys" | sed -n 's/^admin password: //p')
  "$build/bin/traild" --data "$dir/data" --keys "$dir/keys" --listen 127.0.0.1:0 --no-access-log ${TRAILD_ARGS:-} \
    >"$dir/out" 2>"$dir/err" &
  pid=$!
  for _ in $(seq 100); do grep -q "listening on" "$dir/out" 2>/dev/null && break; sleep 0.1; done
  url=$(sed -n 's/^traild: listening on //p' "$dir/out")
  export TRAIL_BENCH_PASSWORD=$password
}
