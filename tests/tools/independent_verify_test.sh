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
# Merkle trees and signed checkpoints (alpha is checkpointed mid-chain and at its head, beta and
# _system at their heads, with `trailctl checkpoint --project P --now`):
#   6. the verifier's self-test: RFC 8032 vectors, the C2SP signed-note example and the
#      serverless-log checkpoints under tests/fixtures/merkle;
#   7. the intact ledger passes with --vkey (the key derived from the keys dir per the spec,
#      equal to `trailctl keys show`'s when that exists); a wrong --vkey fails;
#   8. on copies of the intact ledger: a flipped byte in a stored Merkle node (levels 4 and 5;
#      each project has samples + 50 >= 16 events, so level 4 is stored), an extra level-4
#      node just past the tree, a level-2 node (levels 0..3 are not stored, even with the right
#      hash), a tree size record one above the chain, a flipped byte in a checkpoint
#      signature, a changed checkpoint root (with its signature left as it was, and re-signed
#      with the real key), a re-signed wrong origin: the verifier exits 1 and names the check;
#      `trailctl verify --pubkey` (when it has that option) exits 1 naming the same project.
# Without a `trailctl checkpoint` command the checkpoint steps cannot run and the test fails
# at its end, after everything else has run. KEEP=1 keeps the work directory.
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1  # The helpers below import the verifier: no __pycache__.

TRAILCTL=${1:?usage: independent_verify_test.sh TRAILCTL SCRIPT [SAMPLE_EVENTS]}
SCRIPT=${2:?usage: independent_verify_test.sh TRAILCTL SCRIPT [SAMPLE_EVENTS]}
SAMPLES=${3:-$(dirname "$SCRIPT")/../../scripts/sample-events.jsonl}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/trail-independent-verify.XXXXXX")
trap '[[ -n ${KEEP:-} ]] || rm -rf "$WORK"' EXIT
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

# `trailctl checkpoint --project P --now` issues a checkpoint of P at its head (traild issues
# them by count and on a timer, which a test cannot wait for).
have_checkpoint=false
if "$TRAILCTL" --help 2>&1 | grep -qE '^ +checkpoint( |$)'; then
  have_checkpoint=true
fi
checkpoint() {  # checkpoint PROJECT
  if $have_checkpoint; then
    "$TRAILCTL" checkpoint --data "$D" --keys "$K" --project "$1" --now >/dev/null
  fi
}

for project in alpha beta; do
  {
    cat "$SAMPLES"
    generate "$project"
  } >"$WORK/$project.jsonl"
  if [[ $project == alpha ]]; then  # A checkpoint below the head: the root of a prefix.
    head -n 13 "$WORK/$project.jsonl" | "$TRAILCTL" append --data "$D" --keys "$K" \
      --project "$project" --batch 16 >/dev/null
    checkpoint alpha
    tail -n +14 "$WORK/$project.jsonl" >"$WORK/$project.rest.jsonl"
    mv "$WORK/$project.rest.jsonl" "$WORK/$project.jsonl"
  fi
  "$TRAILCTL" append --data "$D" --keys "$K" --project "$project" --batch 16 \
    <"$WORK/$project.jsonl" >/dev/null
  checkpoint "$project"
done
checkpoint _system
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
cp -a "$D" "$WORK/clean"

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

# ---- The idempotency index, in the view environment DATA/views (a further check, the
# independent verifier's alone): a changed body MAC (seen with keys), and an entry that names
# no stored event. The edit goes through mdb_dump and mdb_load, which overwrites.
edit_ids() {  # edit_ids DATA_DIR mac|extra
  python3 - "$@" <<'EOF'
import subprocess, sys
views, mode = sys.argv[1] + "/views", sys.argv[2]
out = subprocess.run(["mdb_dump", "-s", "event_ids", views], capture_output=True, check=True)
lines = out.stdout.decode().split("\n")
header = lines[:lines.index("HEADER=END") + 1]
rows = [bytes.fromhex(l[1:]) for l in lines[len(header):lines.index("DATA=END")]]
key, value = rows[0], rows[1]
if mode == "mac":
    value = value[:8] + bytes([value[8] ^ 0x01]) + value[9:]
else:
    key = key[:-16] + bytes(15) + b"\x01"
dump = "\n".join(header + [" " + key.hex(), " " + value.hex(), "DATA=END"]) + "\n"
subprocess.run(["mdb_load", "-s", "event_ids", views], input=dump.encode(), check=True)
EOF
}
cp -a "$WORK/clean" "$WORK/ids1"
cp -a "$WORK/clean" "$WORK/ids2"
edit_ids "$WORK/ids1" mac
run python3 "$SCRIPT" --keys "$K" "$WORK/ids1"
[[ $RC -eq 1 && $OUT == *"body MAC in event_ids does not match"* ]] ||
  fail "independent verifier missed a changed MAC in event_ids"
edit_ids "$WORK/ids2" extra
run python3 "$SCRIPT" "$WORK/ids2"
[[ $RC -eq 1 && $OUT == *"names no stored event"* ]] ||
  fail "independent verifier missed an event_ids entry naming no stored event"

echo "PASS: the independent verifier agrees with trailctl verify"

# ==== Merkle trees and signed checkpoints ===================================================
FIXTURES=$(dirname "$SCRIPT")/../fixtures/merkle
C=$WORK/clean

# ---- 6. The verifier's own Ed25519, note and tree code against published vectors.
run python3 "$SCRIPT" --self-test "$FIXTURES"
[[ $RC -eq 0 && $OUT == "self-test passed:"* ]] || fail "independent verifier self-test failed"

# ---- 7. The intact ledger, with the checkpoint key.
run python3 "$SCRIPT" --print-vkey "$K"
[[ $RC -eq 0 ]] || fail "cannot derive the verifier key from $K"
VKEY=$OUT
if "$TRAILCTL" --help 2>&1 | grep -qE '^ +keys( |$)'; then
  run "$TRAILCTL" keys show --keys "$K"
  [[ $RC -eq 0 ]] || fail "trailctl keys show failed"
  shown=$(grep -oE '[^ +]+\+[0-9a-f]{8}\+[A-Za-z0-9+/]{44}' <<<"$OUT" | head -n 1 || true)
  [[ $shown == "$VKEY" ]] || fail "trailctl keys show prints '$shown', the spec derives '$VKEY'"
else
  echo "(trailctl has no \`keys show\`: the verifier key is derived from $K only)"
fi

# `trailctl verify --pubkey VKEY` checks the trees and checkpoints too: it must agree.
trailctl_checks_trees=false
if "$TRAILCTL" verify --help 2>&1 | grep -q -- --pubkey; then
  trailctl_checks_trees=true
  run "$TRAILCTL" verify --data "$C" --pubkey "$VKEY"
  [[ $RC -eq 0 ]] || fail "trailctl verify --pubkey says the fresh ledger is not intact"
fi
run python3 "$SCRIPT" --keys "$K" --vkey "$VKEY" "$C"
[[ $RC -eq 0 ]] || fail "independent verifier --vkey says the fresh ledger is not intact"
[[ $OUT == "intact: $expected events"* ]] || fail "independent verifier --vkey miscounted"
[[ $OUT == *" Merkle nodes and "*" checked, "* ]] ||
  fail "independent verifier --vkey did not check the Merkle trees"
checkpoints=$(grep -oE '[0-9]+ checkpoints? checked' <<<"$OUT" | grep -oE '^[0-9]+')
if $have_checkpoint; then
  ((checkpoints >= 4)) ||
    fail "expected at least 4 checkpoints (alpha twice, beta, _system), found $checkpoints"
  [[ $OUT == *", signatures verified)" ]] || fail "independent verifier verified no signatures"
fi

# A key that signed nothing here: every checkpoint lacks its signature.
other=$(
  python3 - "$SCRIPT" <<'EOF'
import os, sys
sys.path.insert(0, os.path.dirname(sys.argv[1]))
import independent_verify as iv
public = iv.ed25519_public_key(bytes(32))
print(iv.VerifierKey("someone-else", iv.ed25519_key_id("someone-else", public), public).text())
EOF
)
if ((checkpoints > 0)); then
  run python3 "$SCRIPT" --vkey "$other" "$C"
  [[ $RC -eq 1 && $OUT == "TAMPERED project="*"no signature by the given key someone-else+"* ]] ||
    fail "independent verifier accepted checkpoints without a signature by the given key"
fi
run python3 "$SCRIPT" --vkey "someone-else+00000000+${other##*+}" "$C"  # Wrong key id.
[[ $RC -eq 2 ]] || fail "independent verifier accepted a --vkey whose key id does not match"

# Rewrites one record of sub-database merkle or checkpoints in a copy with mdb_load (an LMDB
# write, so stale page copies do not matter). Prints the tree size (or position) it chose.
#   node DIR PROJECT LEVEL INDEX    flip a bit of that stored node
#   extra DIR PROJECT               add node 4/(n >> 4), just past the tree of n leaves (the
#                                   size record); prints the index and n
#   below DIR PROJECT LEVEL INDEX   add node LEVEL/INDEX (a level below 4) with the hash
#                                   recomputed from the events
#   size DIR PROJECT                set the tree size record to the chain's events + 1; prints it
#   sig DIR PROJECT                 flip a bit of the signature of PROJECT's first checkpoint
#   root DIR PROJECT                flip a bit of its root; the signature is left as it was
#   resign-root DIR PROJECT KEYS    flip a bit of its root and sign it again with KEYS' key
#   resign-origin DIR PROJECT KEYS  origin "<prefix>/other", signed again with KEYS' key
#                                   (prints the size and the new origin)
tree_tamper() {
  python3 - "$SCRIPT" "$@" <<'EOF'
import base64, os, subprocess, sys
sys.path.insert(0, os.path.dirname(sys.argv[1]))
import independent_verify as iv
mode, data_dir, project = sys.argv[2], sys.argv[3], sys.argv[4].encode()
pk = bytes([len(project)]) + project

def put(subdb, key, value):
    text = ("VERSION=3\nformat=bytevalue\ntype=btree\nHEADER=END\n"
            f" {key.hex()}\n {value.hex()}\nDATA=END\n")
    subprocess.run(["mdb_load", "-s", subdb, data_dir], input=text.encode(), check=True)

if mode in ("node", "extra", "below", "size"):
    nodes = dict(iv.dump(data_dir, "merkle"))
    if mode == "node":
        level, index = int(sys.argv[5]), int(sys.argv[6])
        key = pk + bytes([level]) + index.to_bytes(8, "big")
        value = bytearray(nodes[key])
        value[5] ^= 0x04
        print(f"{level}/{index}")
    elif mode == "extra":
        size = int.from_bytes(nodes[pk + b"\xff"], "big")
        key, value = pk + b"\x04" + (size >> 4).to_bytes(8, "big"), bytes(32)
        print(size >> 4, size)
    else:
        leaves = [iv.leaf_hash(v) for k, v in iv.dump(data_dir, "events")
                  if k.startswith(pk) and len(k) == len(pk) + 8]
        if mode == "below":
            level, index = int(sys.argv[5]), int(sys.argv[6])
            assert level < 4, "levels 4 and up are stored"
            key = pk + bytes([level]) + index.to_bytes(8, "big")
            value = iv.complete_subtrees(leaves)[level][index]
            assert key not in nodes
            print(f"{level}/{index}")
        else:
            key, value = pk + b"\xff", (len(leaves) + 1).to_bytes(8, "big")
            print(len(leaves) + 1)
    put("merkle", key, bytes(value))
    sys.exit(0)

notes = [(k, v) for k, v in iv.dump(data_dir, "checkpoints")
         if k.startswith(pk) and len(k) == len(pk) + 8]
key, note = notes[0]
text, signatures = iv.parse_note(note)
if mode == "sig":
    name, sig = signatures[0]
    sig = bytearray(sig)
    sig[40] ^= 0x10
    note = text + b"\n" + f"\u2014 {name} {base64.b64encode(bytes(sig)).decode()}\n".encode()
else:
    lines = text.decode().split("\n")
    if mode == "resign-origin":
        lines[0] = lines[0].rsplit("/", 1)[0] + "/other"
    else:
        root = bytearray(base64.b64decode(lines[2]))
        root[0] ^= 0x01
        lines[2] = base64.b64encode(bytes(root)).decode()
    text = "\n".join(lines).encode()
    if mode == "root":
        note = text + note[note.rindex(b"\n\n") + 1:]
    else:
        keys = sys.argv[5]
        seed = open(os.path.join(keys, "signing.key"), "rb").read()
        name = open(os.path.join(keys, "key_name"), "rb").read().decode().split("\n")[0]
        public = iv.ed25519_public_key(seed)
        sig = iv.ed25519_key_id(name, public) + iv.ed25519_sign(seed, text)
        note = text + b"\n" + f"\u2014 {name} {base64.b64encode(sig).decode()}\n".encode()
put("checkpoints", key, note)
print(int.from_bytes(key[-8:], "big"), *lines[:1] if mode == "resign-origin" else [])
EOF
}

# Checks that the verifier (with --vkey unless told novkey) exits 1 and prints WANT..., and
# that `trailctl verify --pubkey` (when it has that option) exits 1 naming the same project.
expect_tree_tampered() {  # expect_tree_tampered DATA_DIR WANT [novkey]
  local args=(--vkey "$VKEY") project=${2#TAMPERED project=}
  project=${project%% *}
  [[ ${3:-} == novkey ]] && args=()
  run python3 "$SCRIPT" "${args[@]}" "$1"
  [[ $RC -eq 1 ]] || fail "independent verifier exit $RC, expected 1"
  [[ $OUT == "$2"* ]] || fail "independent verifier does not say: $2"
  if $trailctl_checks_trees && [[ ${3:-} != novkey ]]; then
    run "$TRAILCTL" verify --data "$1" --pubkey "$VKEY"
    [[ $RC -eq 1 ]] || fail "trailctl verify --pubkey exit $RC, expected 1"
    [[ $OUT == "TAMPERED project=$project"[:\ ]* ]] ||
      fail "trailctl verify --pubkey does not name project $project"
  fi
}

# ---- 8. Tampered trees and checkpoints, each on its own copy of the intact ledger.
cp -a "$C" "$WORK/t1"
tree_tamper node "$WORK/t1" alpha 4 1
expect_tree_tampered "$WORK/t1" \
  "TAMPERED project=alpha seq=17: Merkle node 4/1 (events 17..32) differs from the hash recomputed"
cp -a "$C" "$WORK/t2"
tree_tamper node "$WORK/t2" beta 5 0
expect_tree_tampered "$WORK/t2" \
  "TAMPERED project=beta seq=1: Merkle node 5/0 (events 1..32) differs from the hash recomputed" novkey
cp -a "$C" "$WORK/t3"
out=$(tree_tamper extra "$WORK/t3" beta)
index=${out%% *} leaves=${out#* } first=$((${out%% *} * 16 + 1))
expect_tree_tampered "$WORK/t3" "TAMPERED project=beta seq=$first: Merkle node 4/$index \
(events $first..$((first + 15))) lies beyond the tree's $leaves leaves"
cp -a "$C" "$WORK/t3b"
tree_tamper below "$WORK/t3b" alpha 2 5
expect_tree_tampered "$WORK/t3b" \
  "TAMPERED project=alpha seq=21: Merkle node 2/5 (events 21..24) is below the stored levels"
cp -a "$C" "$WORK/t3c"
size=$(tree_tamper size "$WORK/t3c" beta)
expect_tree_tampered "$WORK/t3c" "TAMPERED project=beta seq=$size: the Merkle tree size record \
says $size leaves but the chain has $((size - 1)) events"

if ! $have_checkpoint; then
  fail "trailctl has no \`checkpoint\` command (\`trailctl checkpoint --project P --now\`): no" \
    "checkpoints were issued, so the checkpoint checks (signature, root, origin) did not run" \
    "(the Merkle node checks and the self-test passed)"
fi
vkey_name=${VKEY%%+*}
cp -a "$C" "$WORK/t4"
size=$(tree_tamper sig "$WORK/t4" alpha)
expect_tree_tampered "$WORK/t4" \
  "TAMPERED project=alpha seq=$size: checkpoint $size: signature by $vkey_name+"
cp -a "$C" "$WORK/t5"
size=$(tree_tamper root "$WORK/t5" alpha)
expect_tree_tampered "$WORK/t5" \
  "TAMPERED project=alpha seq=$size: checkpoint $size: signature by $vkey_name+"
expect_tree_tampered "$WORK/t5" \
  "TAMPERED project=alpha seq=$size: checkpoint $size: root does not match the RFC 6962 root" novkey
cp -a "$C" "$WORK/t6"
size=$(tree_tamper resign-root "$WORK/t6" beta "$K")
expect_tree_tampered "$WORK/t6" \
  "TAMPERED project=beta seq=$size: checkpoint $size: root does not match the RFC 6962 root"
cp -a "$C" "$WORK/t7"
out=$(tree_tamper resign-origin "$WORK/t7" beta "$K")
size=${out%% *} origin=${out#* }
expect_tree_tampered "$WORK/t7" \
  "TAMPERED project=beta seq=$size: checkpoint $size: origin '$origin' does not end in '/beta'"

echo "PASS: the independent verifier checks Merkle trees and signed checkpoints"
