#!/usr/bin/env bash
# independent_verify_test.sh TRAILCTL SCRIPT [SAMPLE_EVENTS]
#
# The verifier written from docs/FORMAT.md (SCRIPT, tests/tools/independent_verify.py) must
# agree with `trailctl verify` on an intact ledger and on a tampered one:
#   1. init a ledger; append scripts/sample-events.jsonl plus 50 generated events to each of
#      two projects;
#   2. both verifiers say intact with the same event count (without and with keys);
#   3. flip one byte of the actor text of a mid-chain event: both exit 1 naming that seq;
#   4. on a fresh copy, flip one byte of the last event of the other project (only the head
#      record commits to it): both exit 1 naming that seq;
#   5. on another copy, raise a mid-chain event's serverTimeUs above its successor's: both
#      blame that event, not its successor.
set -euo pipefail

TRAILCTL=${1:?usage: independent_verify_test.sh TRAILCTL SCRIPT [SAMPLE_EVENTS]}
SCRIPT=${2:?usage: independent_verify_test.sh TRAILCTL SCRIPT [SAMPLE_EVENTS]}
SAMPLES=${3:-$(dirname "$SCRIPT")/../../scripts/sample-events.jsonl}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/trail-independent-verify.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
D=$WORK/data
K=$WORK/keys

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# Runs a command, keeping its stdout in $OUT and its exit status in $RC.
run() {
  set +e
  OUT=$("$@")
  RC=$?
  set -e
  echo "\$ $*"
  echo "$OUT"
}

"$TRAILCTL" init --data "$D" --keys "$K" --key-name independent-verify-test >/dev/null

# 50 generated case events per project; actors are unique so the tamper step can find one.
generate() {  # generate PREFIX
  python3 - "$1" <<'EOF'
import sys
prefix = sys.argv[1]
kinds = ["case.created", "case.updated", "case.updated", "case.closed", "case.reopened"]
for i in range(1, 51):
    print('{"event_id":"7e57%04x-0000-4000-8000-%012x","kind":"%s",'
          '"case_id":"c0ffee00-0000-4000-8000-%012x","actor":"%s-actor-%03d",'
          '"device_id":"dev-%d","channel":"api","client_time":"2026-05-%02dT10:%02d:00Z",'
          '"case_type":"visit","fields":{"n":"%d"}}'
          % (ord(prefix[0]), i, kinds[i % len(kinds)], i % 7 + 1, prefix, i, i % 3,
             i % 28 + 1, i % 60, i))
EOF
}

for project in alpha beta; do
  {
    cat "$SAMPLES"
    generate "$project"
  } >"$WORK/$project.jsonl"
  "$TRAILCTL" append --data "$D" --keys "$K" --project "$project" --batch 16 \
    <"$WORK/$project.jsonl" >/dev/null
done
samples=$(grep -c . "$SAMPLES")
expected=$((2 * (samples + 50) + 2))  # + init's two `_system` events (the first administrator)

# ---- Intact: both verifiers agree.
run "$TRAILCTL" verify --data "$D"
[[ $RC -eq 0 ]] || fail "trailctl verify says the fresh ledger is not intact"
[[ $OUT == "intact: $expected events"* ]] || fail "trailctl verify counted other than $expected events"
run python3 "$SCRIPT" "$D"
[[ $RC -eq 0 ]] || fail "independent verifier says the fresh ledger is not intact"
[[ $OUT == "intact: $expected events"* ]] || fail "independent verifier counted other than $expected events"

run "$TRAILCTL" verify --data "$D" --keys "$K"
[[ $RC -eq 0 ]] || fail "trailctl verify --keys says the fresh ledger is not intact"
run python3 "$SCRIPT" --keys "$K" "$D"
[[ $RC -eq 0 ]] || fail "independent verifier --keys says the fresh ledger is not intact"
[[ $OUT == "intact: $expected events"* ]] || fail "independent verifier --keys miscounted"

cp -a "$D" "$WORK/data2"
cp -a "$D" "$WORK/data3"

# Alters the stored envelope of PROJECT's event SEQ in place in data.mdb: `actor TEXT` flips
# one byte of the actor text TEXT; `time` adds 2^48 us (about 9 years) to serverTimeUs.
# Either way the envelope still decodes. The envelope is found through mdb_dump; LMDB's copy-on-write leaves stale
# copies of pages in the file, so every copy of the envelope is changed (the live one among
# them). LMDB keeps no page checksums, so the edit is read back as is.
tamper() {  # tamper DATA_DIR PROJECT SEQ actor TEXT | time
  python3 - "$@" <<'EOF'
import subprocess, sys
data_dir, project, seq, mode = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3]), sys.argv[4]
out = subprocess.run(["mdb_dump", "-s", "events", data_dir], capture_output=True, check=True)
lines = out.stdout.decode().split("\n")
rows = [bytes.fromhex(l[1:]) for l in lines[lines.index("HEADER=END") + 1:lines.index("DATA=END")]]
key = bytes([len(project)]) + project + seq.to_bytes(8, "big")
envelope = dict(zip(rows[0::2], rows[1::2]))[key]
if mode == "actor":
    actor = sys.argv[5].encode() + b"\x00"
    assert envelope.count(actor) == 1, "actor text not found once in the envelope"
    at, flip = envelope.find(actor), 0x20  # "a" <-> "A": still valid text
else:
    # One segment, root struct right after the root pointer: serverTimeUs (data word 3) is
    # little-endian at bytes 40..47; byte 46 is its bits 48..55.
    assert envelope[8:16] == bytes.fromhex("0000000005000900"), "unexpected root pointer"
    at, flip = 46, 0x01
    assert envelope[at] & flip == 0
path = data_dir + "/data.mdb"
image = bytearray(open(path, "rb").read())
copies, start = 0, 0
while (hit := image.find(envelope, start)) >= 0:
    image[hit + at] ^= flip
    copies += 1
    start = hit + 1
assert copies >= 1, "envelope bytes not found in data.mdb"
open(path, "r+b").write(image)
print(f"altered {mode} of {project.decode()} seq {seq} in {copies} cop{'y' if copies == 1 else 'ies'}")
EOF
}

# Checks that both verifiers (with and without keys) exit 1 naming PROJECT and SEQ.
expect_tampered() {  # expect_tampered DATA_DIR PROJECT SEQ
  local want="TAMPERED project=$2 seq=$3:"
  run "$TRAILCTL" verify --data "$1"
  [[ $RC -eq 1 ]] || fail "trailctl verify exit $RC, expected 1"
  [[ $OUT == "$want"* ]] || fail "trailctl verify does not name $2 seq $3"
  run python3 "$SCRIPT" "$1"
  [[ $RC -eq 1 ]] || fail "independent verifier exit $RC, expected 1"
  [[ $OUT == "$want"* ]] || fail "independent verifier does not name $2 seq $3"
  run "$TRAILCTL" verify --data "$1" --keys "$K"
  [[ $RC -eq 1 ]] || fail "trailctl verify --keys exit $RC, expected 1"
  [[ $OUT == "$want"* ]] || fail "trailctl verify --keys does not name $2 seq $3"
  run python3 "$SCRIPT" --keys "$K" "$1"
  [[ $RC -eq 1 ]] || fail "independent verifier --keys exit $RC, expected 1"
  [[ $OUT == "$want"* ]] || fail "independent verifier --keys does not name $2 seq $3"
}

# ---- A mid-chain event (blamed through its successor's prevHash).
mid_seq=$((samples + 20))
tamper "$D" beta "$mid_seq" actor "beta-actor-020"
expect_tampered "$D" beta "$mid_seq"

# ---- The last event of a chain (blamed through the head record).
last_seq=$((samples + 50))
tamper "$WORK/data2" alpha "$last_seq" actor "alpha-actor-050"
expect_tampered "$WORK/data2" alpha "$last_seq"

# ---- A mid-chain event's server time raised above its successor's: the link into the
# successor breaks as well as the time order there; the blame rule must still name the event.
time_seq=$((samples + 30))
tamper "$WORK/data3" alpha "$time_seq" time
expect_tampered "$WORK/data3" alpha "$time_seq"

echo "PASS: the independent verifier agrees with trailctl verify"
