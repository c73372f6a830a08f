#!/usr/bin/env python3
"""independent_verify.py: verify a Trail data directory from docs/FORMAT.md alone.

Usage: independent_verify.py [--keys KEY_DIR] [--project P] [--vkey VKEY]... DATA_DIR
       independent_verify.py --self-test FIXTURES_DIR
       independent_verify.py --print-vkey KEY_DIR

Written from the format specification, not from the C++ sources, and importing nothing from
the project: the point is to show that the specification is enough to check a ledger. It
reads the sub-databases with `mdb_dump` (lmdb-utils, hex "bytevalue" format), decodes every
envelope's Cap'n Proto bytes by hand, recomputes every event hash with hashlib and checks the
chain rules (FORMAT.md, "Verification"). It then checks the cross-references between
sub-databases that `trailctl verify` does not (FORMAT.md, "Further consistency checks").

With --keys KEY_DIR (the KEK from TRAIL_KEK when that is set, as trailctl does) it also checks the KEK against meta/kek_check
(hashlib only) and, when the system libsodium can be loaded through ctypes, unwraps the data
keys, opens every payload and recomputes every body MAC in the event_ids sub-database (of the
view environment DATA/views). The
Python standard library has no AEAD cipher, hence libsodium for that part alone; without it
those checks are skipped and the output says so. One deliberate difference from trailctl: on
a CPU without AES-NI, where libsodium cannot open AES-256-GCM, those payloads are reported as
not checked rather than as tampered (FORMAT.md, section 15).

Exit status and output, as `trailctl verify`:
  0  "intact: N events in M projects (...)"  ("1 event", "1 project" in the singular)
  1  "TAMPERED project=P seq=N: reason"    (the first problem, with trailctl's blame rule)
  2  "independent_verify: message" on stderr: no verdict (not a Trail data directory, a
     malformed head record, keys that do not match kek_check, no mdb_dump, ...)

Merkle trees and checkpoints (FORMAT.md, the "merkle" and "checkpoints" sub-databases; the
note formats from c2sp.org/signed-note and c2sp.org/tlog-checkpoint, copied under
tests/fixtures/merkle/c2sp/), checked after the chains:
  * "merkle" holds, per project, either nothing (no tree yet) or a size record (key
    project_key || 0xFF, an 8-byte tree size n, at most the project's events; smaller when the
    tree is behind its chain) and exactly the complete RFC 6962 subtrees of the first n events
    at levels 4..63: node (L, i), covering events i*2^L+1 .. (i+1)*2^L, for every L >= 4 and
    (i+1)*2^L <= n, each equal to the hash recomputed from the events (level 0: the event
    hashes; level L: SHA-256(0x01 || (L-1, 2i) || (L-1, 2i+1))). Levels 0..3 are not stored:
    an entry there, a node beyond n, or nodes without a size record are tampering. Blamed on
    the first event the node covers; a size record above the chain on seq = that size.
  * every note in "checkpoints" is a well-formed signed note whose text is a checkpoint:
    origin ending in "/<project>", tree size equal to the size in its key and at most the
    project's events, root equal to the RFC 6962 root of the first `size` events (recomputed
    from the events, not read from "merkle"). With --vkey (repeatable) it must carry a
    signature by that key, and every signature line naming that key (name and key id) must
    verify; Ed25519 (RFC 8032) is implemented here in pure Python. Blamed on seq = tree size.
A data directory from before Merkle trees (no "merkle" sub-database) passes with a note.

Other modes:
  --self-test FIXTURES   RFC 8032 test vectors, the C2SP signed-note example and the
                         serverless-log checkpoints (signature and root from the leaves) under
                         FIXTURES (tests/fixtures/merkle); exit 0 and "self-test passed: ...",
                         or exit 1 and "SELF-TEST FAILED: reason".
  --print-vkey KEY_DIR   the verifier key of KEY_DIR's checkpoint signing key (key_name and the
                         public key of the signing.key seed, which must match signing.pub).
"""

from __future__ import annotations

import argparse
import base64
import bisect
import ctypes
import ctypes.util
import hashlib
import os
import re
import struct
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Optional

# ---- Constants (FORMAT.md) ----------------------------------------------------------------

FORMAT_VERSION = b"trail-ledger-1"
KIND_COUNT = 21
CHANNEL_COUNT = 5
CIPHER_AES256GCM = 0
CIPHER_XCHACHA20POLY1305 = 1
CIPHER_COUNT = 2
NONCE_BYTES = {CIPHER_AES256GCM: 12, CIPHER_XCHACHA20POLY1305: 24}
TAG_BYTES = 16
PROJECT_MAX = 64
ACTOR_MAX = 128
DEVICE_ID_MAX = 128
PAYLOAD_MAX = 32 << 20
ENVELOPE_MAX = PAYLOAD_MAX + 4096
ZERO_HASH = bytes(32)

AAD_LABEL = b"trail/event/v1"
BODY_LABEL = b"trail/body/v1"
WRAP_LABEL = b"trail/data-key/v1"
KEK_CHECK_LABEL = b"trail/kek-check/v1"
MAC_CONTEXT = b"trailmac"
MAC_SUBKEY_ID = 1

EXIT_OK, EXIT_TAMPERED, EXIT_ERROR = 0, 1, 2


class Fatal(Exception):
    """Not a verdict about the data: the check could not be run (exit 2)."""


class Tampered(Exception):
    """The first problem found (exit 1)."""

    def __init__(self, project: str, seq: int, reason: str):
        super().__init__(reason)
        self.project = project
        self.seq = seq
        self.reason = reason


class Corrupt(Exception):
    """An envelope that is not a well-formed envelope."""


def u16be(b: bytes, o: int = 0) -> int:
    return struct.unpack_from(">H", b, o)[0]


def u32be(b: bytes, o: int = 0) -> int:
    return struct.unpack_from(">I", b, o)[0]


def u64be(b: bytes, o: int = 0) -> int:
    return struct.unpack_from(">Q", b, o)[0]


def i64be(b: bytes, o: int = 0) -> int:
    return struct.unpack_from(">q", b, o)[0]


def leaf_hash(envelope: bytes) -> bytes:
    """The event hash: SHA-256(0x00 || envelope bytes)."""
    return hashlib.sha256(b"\x00" + envelope).digest()


def project_key(project: bytes) -> bytes:
    return bytes([len(project)]) + project


def show(project: bytes) -> str:
    return project.decode("utf-8", errors="backslashreplace")


# ---- Reading the sub-databases ------------------------------------------------------------


def subdatabases(data_dir: str) -> set[bytes]:
    """The names of the sub-databases: the keys of LMDB's main database."""
    return {key for key, _ in dump(data_dir, None)}


def dump(data_dir: str, name: Optional[str]) -> list[tuple[bytes, bytes]]:
    """Every (key, value) of sub-database `name` (None: the main database), in LMDB key order
    (byte-wise)."""
    try:
        proc = subprocess.run(["mdb_dump"] + (["-s", name] if name else []) + [data_dir],
                              stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, check=False)
    except FileNotFoundError as e:
        raise Fatal("mdb_dump not found on PATH (install lmdb-utils)") from e
    if proc.returncode != 0:
        why = proc.stderr.decode(errors="replace").strip()
        raise Fatal(f"mdb_dump -s {name} {data_dir} failed: {why} "
                    f"(is this a Trail data directory?)")
    lines = proc.stdout.decode("ascii").split("\n")
    try:
        end = lines.index("HEADER=END")
    except ValueError as e:
        raise Fatal(f"mdb_dump -s {name}: no header") from e
    if "format=bytevalue" not in lines[:end]:
        raise Fatal(f"mdb_dump -s {name}: expected format=bytevalue")
    rows: list[bytes] = []
    for line in lines[end + 1:]:
        if line == "DATA=END":
            break
        if not line.startswith(" "):
            raise Fatal(f"mdb_dump -s {name}: unexpected line {line[:40]!r}")
        rows.append(bytes.fromhex(line[1:]))
    else:
        raise Fatal(f"mdb_dump -s {name}: output ends before DATA=END")
    if len(rows) % 2 != 0:
        raise Fatal(f"mdb_dump -s {name}: a key without a value")
    return list(zip(rows[0::2], rows[1::2]))


# ---- Cap'n Proto, by hand (FORMAT.md, "The envelope") --------------------------------------


class Message:
    """A Cap'n Proto message in the standard framing, read as the reference decoder does."""

    def __init__(self, data: bytes):
        if not data or len(data) % 8 != 0 or len(data) > ENVELOPE_MAX:
            raise Corrupt(f"envelope size {len(data)} is not a whole Cap'n Proto message")
        count = struct.unpack_from("<I", data, 0)[0] + 1
        table_bytes = (4 * (1 + count) + 7) // 8 * 8
        if table_bytes > len(data):
            raise Corrupt("message ends inside its segment table")
        self.data = data
        self.segments: list[tuple[int, int]] = []  # (byte offset, size in words)
        pos = table_bytes
        for i in range(count):
            words = struct.unpack_from("<I", data, 4 + 4 * i)[0]
            self.segments.append((pos, words))
            pos += 8 * words
        if pos > len(data):
            raise Corrupt("message ends inside a segment")
        if pos < len(data):
            raise Corrupt("trailing bytes after the envelope message")
        # The reference decoder refuses to read more words than the message holds plus 16
        # (Cap'n Proto's traversal limit), so overlapping pointers cannot inflate a read.
        self.budget = len(data) // 8 + 16

    def _charge(self, words: int) -> None:
        self.budget -= words
        if self.budget < 0:
            raise Corrupt("envelope does not decode: exceeded the traversal limit")

    def _check(self, seg: int, index: int, words: int, what: str) -> None:
        if seg >= len(self.segments):
            raise Corrupt(f"{what} points to segment {seg}, which does not exist")
        if index < 0 or index + words > self.segments[seg][1]:
            raise Corrupt(f"{what} is out of bounds")
        self._charge(words)

    def word(self, seg: int, index: int) -> int:
        start, size = self.segments[seg]
        if not 0 <= index < size:
            raise Corrupt("pointer outside its segment")
        return struct.unpack_from("<Q", self.data, start + 8 * index)[0]

    def read_bytes(self, seg: int, index: int, count: int) -> bytes:
        start = self.segments[seg][0] + 8 * index
        return self.data[start:start + count]

    def follow(self, seg: int, index: int) -> Optional[tuple[int, int, int]]:
        """Follows the pointer at word `index` of segment `seg`.

        Returns None for a null pointer, else (segment, word index of the object, tag) where
        tag is the struct or list pointer describing the object (far pointers resolved).
        """
        ref = self.word(seg, index)
        if ref == 0:
            return None
        if ref & 3 == 2:  # Far pointer: B = double-landing-pad bit, C = offset, D = segment.
            double = (ref >> 2) & 1
            pad = (ref & 0xFFFFFFFF) >> 3
            pad_seg = ref >> 32
            self._check(pad_seg, pad, 2 if double else 1, "far pointer")
            if not double:
                ref, seg, index = self.word(pad_seg, pad), pad_seg, pad
            else:
                far = self.word(pad_seg, pad)
                tag = self.word(pad_seg, pad + 1)
                if far & 3 != 2:
                    raise Corrupt("first word of a double-far landing pad is not a far pointer")
                content_seg = far >> 32
                if content_seg >= len(self.segments):
                    raise Corrupt("double-far pointer to a segment that does not exist")
                return content_seg, (far & 0xFFFFFFFF) >> 3, tag
        offset = (ref & 0xFFFFFFFF) >> 2
        if offset >= 1 << 29:  # 30-bit two's complement
            offset -= 1 << 30
        return seg, index + 1 + offset, ref

    def root(self) -> "Struct":
        if not self.segments or self.segments[0][1] < 1:
            raise Corrupt("message did not contain a root pointer")
        self._charge(1)
        return self.struct_at(0, 0, "root")

    def struct_at(self, seg: int, index: int, what: str) -> "Struct":
        target = self.follow(seg, index)
        if target is None:
            return Struct(self, 0, 0, 0, 0)  # Null: every field has its default value.
        tseg, tindex, tag = target
        if tag & 3 != 0:
            raise Corrupt(f"{what} is not a struct pointer")
        data_words = (tag >> 32) & 0xFFFF
        pointers = tag >> 48
        self._check(tseg, tindex, data_words + pointers, what)
        return Struct(self, tseg, tindex, data_words, pointers)


@dataclass
class Struct:
    msg: Message
    seg: int
    index: int
    data_words: int
    pointers: int

    def uint(self, byte_offset: int, size: int, signed: bool = False) -> int:
        """A data-section field; 0 (its default) when the section is too short to hold it."""
        if byte_offset + size > 8 * self.data_words:
            return 0
        start = self.msg.segments[self.seg][0] + 8 * self.index + byte_offset
        return int.from_bytes(self.msg.data[start:start + size], "little", signed=signed)

    def blob(self, pointer: int, text: bool, name: str) -> bytes:
        """Data, or Text without its NUL terminator; empty when null or absent."""
        if pointer >= self.pointers:
            return b""
        target = self.msg.follow(self.seg, self.index + self.data_words + pointer)
        if target is None:
            return b""
        seg, index, tag = target
        if tag & 3 != 1:
            raise Corrupt(f"envelope does not decode: {name} is not a list pointer")
        if (tag >> 32) & 7 != 2:
            raise Corrupt(f"envelope does not decode: {name} is not a list of bytes")
        count = tag >> 35
        self.msg._check(seg, index, (count + 7) // 8, name)
        value = self.msg.read_bytes(seg, index, count)
        if text:
            if count == 0 or value[-1] != 0:
                raise Corrupt(f"envelope does not decode: {name} text is not NUL-terminated")
            value = value[:-1]
        return value


@dataclass
class Envelope:
    project: bytes
    seq: int
    prev_hash: bytes
    event_id: bytes
    kind: int
    actor: bytes
    device_id: bytes
    channel: int
    via: bytes  # b"" or 16 bytes
    client_time_us: int
    server_time_us: int
    subject: bytes  # b"" or 16 bytes
    key_id: int
    cipher: int
    nonce: bytes
    ciphertext: bytes


def decode_envelope(data: bytes) -> Envelope:
    """Decodes and checks envelope bytes; raises Corrupt with the first problem."""
    msg = Message(data)
    root = msg.root()
    project = root.blob(0, True, "project")
    seq = root.uint(0, 8)
    prev_hash = root.blob(1, False, "prevHash")
    if len(prev_hash) != 32:
        raise Corrupt("prevHash is not 32 bytes")
    event_id = root.blob(2, False, "eventId")
    if len(event_id) != 16:
        raise Corrupt("eventId is not 16 bytes")
    kind = root.uint(8, 2)
    if kind >= KIND_COUNT:
        raise Corrupt("unknown kind")
    actor = root.blob(3, True, "actor")
    device_id = root.blob(4, True, "deviceId")
    channel = root.uint(10, 2)
    if channel >= CHANNEL_COUNT:
        raise Corrupt("unknown channel")
    via = root.blob(5, False, "via")
    if len(via) not in (0, 16):
        raise Corrupt("via is neither empty nor 16 bytes")
    client_time_us = root.uint(16, 8, signed=True)
    server_time_us = root.uint(24, 8, signed=True)
    subject = root.blob(6, False, "subject")
    if len(subject) not in (0, 16):
        raise Corrupt("subject is neither empty nor 16 bytes")
    key_id = root.uint(12, 4)
    cipher = root.uint(32, 2)
    if cipher >= CIPHER_COUNT:
        raise Corrupt("unknown cipher")
    nonce = root.blob(7, False, "nonce")
    ciphertext = root.blob(8, False, "ciphertext")
    if len(actor) > ACTOR_MAX or len(device_id) > DEVICE_ID_MAX or len(project) > PROJECT_MAX:
        raise Corrupt("envelope field exceeds its limit")
    return Envelope(project, seq, prev_hash, event_id, kind, actor, device_id, channel, via,
                    client_time_us, server_time_us, subject, key_id, cipher, nonce, ciphertext)


# ---- Sealing (FORMAT.md, "Sealing") ---------------------------------------------------------


def encode_header(env: Envelope) -> bytes:
    def optional_id(value: bytes) -> bytes:
        return b"\x01" + value if value else b"\x00"

    return b"".join([
        bytes([len(env.project)]), env.project,
        env.event_id,
        struct.pack(">HB", env.kind, env.channel),
        struct.pack(">H", len(env.actor)), env.actor,
        struct.pack(">H", len(env.device_id)), env.device_id,
        optional_id(env.via),
        struct.pack(">q", env.client_time_us),
        optional_id(env.subject),
    ])


def encode_aad(env: Envelope) -> bytes:
    return AAD_LABEL + encode_header(env) + struct.pack(">IB", env.key_id, env.cipher)


def encode_body(env: Envelope, payload: bytes) -> bytes:
    return BODY_LABEL + encode_header(env) + struct.pack(">Q", len(payload)) + payload


def mac_key(data_key: bytes) -> bytes:
    """libsodium crypto_kdf_derive_from_key(32, 1, "trailmac", data_key), in hashlib terms."""
    return hashlib.blake2b(b"", digest_size=32, key=data_key,
                           salt=struct.pack("<Q", MAC_SUBKEY_ID) + bytes(8),
                           person=MAC_CONTEXT).digest()


def body_mac(data_key: bytes, body: bytes) -> bytes:
    return hashlib.blake2b(body, digest_size=32, key=mac_key(data_key)).digest()


class Sodium:
    """The two AEAD decryptions, from the system libsodium through ctypes."""

    def __init__(self) -> None:
        names = [ctypes.util.find_library("sodium"), "libsodium.so.26", "libsodium.so.23",
                 "libsodium.so", "libsodium.dylib"]
        self.lib = None
        for name in names:
            if not name:
                continue
            try:
                self.lib = ctypes.CDLL(name)
                break
            except OSError:
                continue
        if self.lib is None or self.lib.sodium_init() < 0:
            self.lib = None
            return
        argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_ulonglong), ctypes.c_void_p,
                    ctypes.c_char_p, ctypes.c_ulonglong, ctypes.c_char_p, ctypes.c_ulonglong,
                    ctypes.c_char_p, ctypes.c_char_p]
        self.decrypt = {
            CIPHER_AES256GCM: self.lib.crypto_aead_aes256gcm_decrypt,
            CIPHER_XCHACHA20POLY1305: self.lib.crypto_aead_xchacha20poly1305_ietf_decrypt,
        }
        for fn in self.decrypt.values():
            fn.argtypes = argtypes
            fn.restype = ctypes.c_int
        self.aes_available = self.lib.crypto_aead_aes256gcm_is_available() != 0

    def available(self) -> bool:
        return self.lib is not None

    def open(self, cipher: int, key: bytes, nonce: bytes, aad: bytes,
             sealed: bytes) -> Optional[bytes]:
        """The plaintext, or None when the tag does not verify."""
        if len(sealed) < TAG_BYTES or len(nonce) != NONCE_BYTES[cipher] or len(key) != 32:
            return None
        out = ctypes.create_string_buffer(max(1, len(sealed) - TAG_BYTES))
        out_len = ctypes.c_ulonglong(0)
        rc = self.decrypt[cipher](out, ctypes.byref(out_len), None, sealed, len(sealed), aad,
                                  len(aad), nonce, key)
        if rc != 0:
            return None
        return out.raw[:out_len.value]


# ---- Ed25519 (RFC 8032, section 5.1; after the reference code of section 6) ------------------

ED_P = 2**255 - 19
ED_Q = 2**252 + 27742317777372353535851937790883648493  # The group order (RFC 8032: L).
ED_D = -121665 * pow(121666, ED_P - 2, ED_P) % ED_P
ED_SQRT_M1 = pow(2, (ED_P - 1) // 4, ED_P)
Point = tuple[int, int, int, int]  # Extended homogeneous coordinates (X, Y, Z, T).
ED_IDENTITY: Point = (0, 1, 1, 0)


def ed_add(p: Point, q: Point) -> Point:
    a = (p[1] - p[0]) * (q[1] - q[0]) % ED_P
    b = (p[1] + p[0]) * (q[1] + q[0]) % ED_P
    c = 2 * p[3] * q[3] * ED_D % ED_P
    d = 2 * p[2] * q[2] % ED_P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % ED_P, g * h % ED_P, f * g % ED_P, e * h % ED_P)


def ed_mul(s: int, p: Point) -> Point:
    q = ED_IDENTITY
    while s > 0:
        if s & 1:
            q = ed_add(q, p)
        p = ed_add(p, p)
        s >>= 1
    return q


def ed_equal(p: Point, q: Point) -> bool:
    return (p[0] * q[2] - q[0] * p[2]) % ED_P == 0 and (p[1] * q[2] - q[1] * p[2]) % ED_P == 0


def ed_recover_x(y: int, sign: int) -> Optional[int]:
    if y >= ED_P:
        return None  # Non-canonical encoding.
    x2 = (y * y - 1) * pow(ED_D * y * y + 1, ED_P - 2, ED_P) % ED_P
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (ED_P + 3) // 8, ED_P)
    if (x * x - x2) % ED_P != 0:
        x = x * ED_SQRT_M1 % ED_P
    if (x * x - x2) % ED_P != 0:
        return None
    if (x & 1) != sign:
        x = ED_P - x
    return x


ED_GY = 4 * pow(5, ED_P - 2, ED_P) % ED_P
ED_GX = ed_recover_x(ED_GY, 0)
assert ED_GX is not None
ED_B: Point = (ED_GX, ED_GY, 1, ED_GX * ED_GY % ED_P)


def ed_compress(p: Point) -> bytes:
    zinv = pow(p[2], ED_P - 2, ED_P)
    x, y = p[0] * zinv % ED_P, p[1] * zinv % ED_P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def ed_decompress(s: bytes) -> Optional[Point]:
    if len(s) != 32:
        return None
    y = int.from_bytes(s, "little")
    sign, y = y >> 255, y & ((1 << 255) - 1)
    x = ed_recover_x(y, sign)
    if x is None:
        return None
    return (x, y, 1, x * y % ED_P)


def ed_small_order(p: Point) -> bool:
    return ed_equal(ed_mul(8, p), ED_IDENTITY)


def ed_sha512_modq(data: bytes) -> int:
    return int.from_bytes(hashlib.sha512(data).digest(), "little") % ED_Q


def ed_expand(seed: bytes) -> tuple[int, bytes]:
    h = hashlib.sha512(seed).digest()
    a = int.from_bytes(h[:32], "little")
    a &= (1 << 254) - 8
    a |= 1 << 254
    return a, h[32:]


def ed25519_public_key(seed: bytes) -> bytes:
    """The public key of a 32-byte RFC 8032 private key (seed)."""
    return ed_compress(ed_mul(ed_expand(seed)[0], ED_B))


def ed25519_sign(seed: bytes, message: bytes) -> bytes:
    """RFC 8032 5.1.6. Not used to verify anything: the self-test checks it against the RFC's
    vectors and the test script uses it to forge a validly signed, wrong checkpoint."""
    a, prefix = ed_expand(seed)
    public = ed_compress(ed_mul(a, ED_B))
    r = ed_sha512_modq(prefix + message)
    rs = ed_compress(ed_mul(r, ED_B))
    s = (r + ed_sha512_modq(rs + public + message) * a) % ED_Q
    return rs + s.to_bytes(32, "little")


def ed25519_verify(public: bytes, message: bytes, signature: bytes) -> bool:
    """RFC 8032 5.1.7, with the checks libsodium adds: canonical A and R, S < L, and neither
    A nor R of small order. Checks [S]B = R + [k]A."""
    if len(public) != 32 or len(signature) != 64:
        return False
    a = ed_decompress(public)
    r = ed_decompress(signature[:32])
    if a is None or r is None or ed_small_order(a) or ed_small_order(r):
        return False
    s = int.from_bytes(signature[32:], "little")
    if s >= ED_Q:
        return False
    k = ed_sha512_modq(signature[:32] + public + message)
    return ed_equal(ed_mul(s, ED_B), ed_add(r, ed_mul(k, a)))


# ---- Signed notes and checkpoints (c2sp.org/signed-note, c2sp.org/tlog-checkpoint) ---------

NOTE_SIGNATURES_MAX = 100  # The spec requires accepting at least 16.
SIG_TYPE_ED25519 = 0x01
# Unicode spaces a key name must not contain (and '+').
KEY_NAME_FORBIDDEN = set("\t\n\v\f\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000+") | \
    {chr(c) for c in range(0x2000, 0x200B)}


class NoteError(Exception):
    """A note or checkpoint text that breaks a rule of its specification."""


def b64_strict(text: str, what: str) -> bytes:
    """Standard base64 with padding, canonical (re-encodes to the same text)."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError) as e:
        raise NoteError(f"{what} is not base64") from e
    if base64.b64encode(raw).decode("ascii") != text:
        raise NoteError(f"{what} is not canonical base64")
    return raw


def valid_key_name(name: str) -> bool:
    return bool(name) and not any(c in KEY_NAME_FORBIDDEN or ord(c) < 0x20 for c in name)


def ed25519_key_id(name: str, public: bytes) -> bytes:
    """SHA-256(name || 0x0A || 0x01 || public key)[:4] (c2sp.org/signed-note)."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([SIG_TYPE_ED25519]) + public).digest()[:4]


@dataclass
class VerifierKey:
    name: str
    key_id: bytes  # 4 bytes, big-endian
    public: bytes

    def text(self) -> str:
        return (f"{self.name}+{self.key_id.hex()}+"
                f"{base64.b64encode(bytes([SIG_TYPE_ED25519]) + self.public).decode()}")


def parse_vkey(text: str) -> VerifierKey:
    """<name>+<8 hex digits of key id>+<base64(0x01 || 32-byte public key)>; raises NoteError."""
    parts = text.split("+", 2)
    if len(parts) != 3:
        raise NoteError("verifier key is not name+keyid+key")
    name, hex_id, key = parts
    if not valid_key_name(name):
        raise NoteError(f"verifier key name {name!r} is not a valid key name")
    if not re.fullmatch(r"[0-9a-fA-F]{8}", hex_id):
        raise NoteError("verifier key id is not 8 hex digits")
    raw = b64_strict(key, "verifier key")
    if len(raw) != 33 or raw[0] != SIG_TYPE_ED25519:
        raise NoteError("verifier key is not an Ed25519 key (0x01 || 32 bytes)")
    vkey = VerifierKey(name, bytes.fromhex(hex_id), raw[1:])
    if ed25519_key_id(name, vkey.public) != vkey.key_id:
        raise NoteError(f"verifier key id {hex_id} is not SHA-256(name || 0x0A || 0x01 || "
                        f"key)[:4] = {ed25519_key_id(name, vkey.public).hex()}")
    if ed_decompress(vkey.public) is None:
        raise NoteError("verifier key is not a valid Ed25519 point")
    return vkey


def parse_note(note: bytes) -> tuple[bytes, list[tuple[str, bytes]]]:
    """Splits a signed note into its text (with its final newline) and signature lines
    (name, decoded signature = key id || signature); raises NoteError."""
    try:
        text = note.decode("utf-8")
    except UnicodeDecodeError as e:
        raise NoteError("note is not valid UTF-8") from e
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise NoteError("note holds a control character other than newline")
    if not text.endswith("\n"):
        raise NoteError("note does not end in a newline")
    blank = text.rfind("\n\n")
    if blank < 0:
        raise NoteError("note has no blank line before its signatures")
    body, block = text[:blank + 1], text[blank + 2:]
    lines = block.split("\n")[:-1]
    if not lines:
        raise NoteError("note has no signature lines")
    if len(lines) > NOTE_SIGNATURES_MAX:
        raise NoteError(f"note has more than {NOTE_SIGNATURES_MAX} signature lines")
    signatures = []
    for line in lines:
        m = re.fullmatch(r"\u2014 ([^ ]+) ([^ ]+)", line)
        if m is None:
            raise NoteError(f"signature line {line[:60]!r} is not '\u2014 <name> <base64>'")
        name, sig = m.group(1), b64_strict(m.group(2), "signature")
        if not valid_key_name(name):
            raise NoteError(f"signature key name {name!r} is not a valid key name")
        if len(sig) < 5:
            raise NoteError("signature is shorter than a key id and one byte")
        signatures.append((name, sig))
    return body.encode("utf-8"), signatures


def check_signatures(text: bytes, signatures: list[tuple[str, bytes]],
                     vkeys: list[VerifierKey]) -> None:
    """Every line that names a given key (name and key id) verifies, and at least one does;
    lines by other keys are ignored (c2sp.org/signed-note). Raises NoteError."""
    verified = 0
    for name, sig in signatures:
        for vkey in vkeys:
            if name == vkey.name and sig[:4] == vkey.key_id:
                if len(sig) != 4 + 64 or not ed25519_verify(vkey.public, text, sig[4:]):
                    raise NoteError(f"signature by {vkey.name}+{vkey.key_id.hex()} does not "
                                    f"verify (Ed25519 over the note text)")
                verified += 1
    if verified == 0:
        raise NoteError("no signature by the given key " +
                        " or ".join(f"{k.name}+{k.key_id.hex()}" for k in vkeys) +
                        f" (signed by: {', '.join(sorted({n for n, _ in signatures}))})")


@dataclass
class CheckpointText:
    origin: str
    size: int
    root: bytes
    extensions: list[str]


def parse_checkpoint(text: bytes) -> CheckpointText:
    """origin\\nsize\\nbase64(root)\\n[extension\\n]... strictly; raises NoteError."""
    lines = text.decode("utf-8").split("\n")
    if lines[-1] != "" or len(lines) < 4:
        raise NoteError("checkpoint text has fewer than three lines")
    lines = lines[:-1]
    origin, size_text, root_text, extensions = lines[0], lines[1], lines[2], lines[3:]
    if not origin:
        raise NoteError("checkpoint origin is empty")
    if not re.fullmatch(r"0|[1-9][0-9]*", size_text) or int(size_text) >= 1 << 64:
        raise NoteError(f"checkpoint tree size {size_text!r} is not a 64-bit decimal without "
                        f"sign or leading zeros")
    root = b64_strict(root_text, "checkpoint root")
    if len(root) != 32:
        raise NoteError(f"checkpoint root has {len(root)} bytes, not 32")
    if any(not line for line in extensions):
        raise NoteError("checkpoint has an empty extension line")
    return CheckpointText(origin, int(size_text), root, extensions)


# ---- RFC 6962 Merkle trees -----------------------------------------------------------------

EMPTY_ROOT = hashlib.sha256(b"").digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def complete_subtrees(leaves: list[bytes]) -> list[list[bytes]]:
    """levels[L][i] = hash of the complete subtree of leaves [i*2^L, (i+1)*2^L)."""
    levels = [leaves]
    while len(levels[-1]) >= 2:
        below = levels[-1]
        levels.append([node_hash(below[2 * i], below[2 * i + 1])
                       for i in range(len(below) // 2)])
    return levels


def mth(levels: list[list[bytes]], start: int, n: int) -> bytes:
    """MTH of leaves [start, start + n) by the RFC 6962 recursion (k = the largest power of two
    below n); a complete aligned subtree is read from `levels` (recomputed, never stored)."""
    if n == 0:
        return EMPTY_ROOT
    if n & (n - 1) == 0 and start % n == 0:
        level = n.bit_length() - 1
        return levels[level][start >> level]
    k = 1 << ((n - 1).bit_length() - 1)
    return node_hash(mth(levels, start, k), mth(levels, start + k, n - k))


def events_covered(level: int, index: int) -> str:
    first, last = index * (1 << level) + 1, (index + 1) * (1 << level)
    return f"event {first}" if first == last else f"events {first}..{last}"


STORED_LEVEL_MIN = 4  # Levels 0..3 (up to 16 events) are recomputed from the events, not stored.
STORED_LEVEL_MAX = 63
TREE_SIZE_LEVEL = 0xFF  # The level byte of the size record's key project_key || 0xFF.


def check_trees(data_dir: str, chains: dict[bytes, list[bytes]], all_projects: bool,
                vkeys: list[VerifierKey]) -> Optional[str]:
    """Checks "merkle" and "checkpoints" against `chains` (project -> event hashes in seq
    order). Returns the summary phrase, or None when the directory predates Merkle trees."""
    names = subdatabases(data_dir)
    if b"merkle" not in names and b"checkpoints" not in names:
        return None
    if b"merkle" not in names or b"checkpoints" not in names:
        raise Tampered("-", 0, "one of the sub-databases merkle and checkpoints is missing")

    sizes: dict[bytes, bytes] = {}  # project -> the size record's value, as stored
    stored: dict[bytes, dict[tuple[int, int], bytes]] = {}
    for key, value in dump(data_dir, "merkle"):
        n = key[0] if key else 0
        if key and len(key) == 1 + n + 1 and key[1 + n] == TREE_SIZE_LEVEL:
            if only_project(key[1:1 + n], chains, all_projects) is not None:
                sizes[key[1:1 + n]] = value
            continue
        if not key or len(key) != 1 + n + 1 + 8:
            raise Tampered("-", 0, f"malformed merkle key {key.hex()}")
        project, level, index = key[1:1 + n], key[1 + n], u64be(key, 2 + n)
        if only_project(project, chains, all_projects) is None:
            continue
        if level > STORED_LEVEL_MAX or len(value) != 32:
            raise Tampered(show(project),
                           0 if level > STORED_LEVEL_MAX else index * (1 << level) + 1,
                           f"Merkle node {level}/{index} is malformed (level above "
                           f"{STORED_LEVEL_MAX} or value not 32 bytes)")
        stored.setdefault(project, {})[(level, index)] = value

    notes: dict[bytes, list[tuple[int, bytes]]] = {}
    for key, value in dump(data_dir, "checkpoints"):
        n = key[0] if key else 0
        if not key or len(key) != 1 + n + 8:
            raise Tampered("-", 0, f"malformed checkpoints key {key.hex()}")
        project = key[1:1 + n]
        if only_project(project, chains, all_projects) is None:
            continue
        notes.setdefault(project, []).append((u64be(key, 1 + n), value))

    def node_name(level: int, index: int) -> str:
        return f"Merkle node {level}/{index} ({events_covered(level, index)})"

    node_count = checkpoint_count = 0
    for project, leaves in chains.items():
        levels = complete_subtrees(leaves)
        nodes = stored.pop(project, {})
        record = sizes.pop(project, None)
        # The size record: absent (no tree, so no nodes) or 8 bytes, at most the chain.
        if record is None:
            size = 0
            if nodes:
                level, index = min(nodes)
                raise Tampered(show(project), index * (1 << level) + 1,
                               f"{node_name(level, index)} is stored but the project has no "
                               f"Merkle tree size record")
        elif len(record) != 8:
            raise Tampered(show(project), 0, f"the Merkle tree size record is "
                                             f"{len(record)} bytes, not 8")
        else:
            size = u64be(record)
            if size > len(leaves):
                raise Tampered(show(project), size,
                               f"the Merkle tree size record says {size} leaves but the chain "
                               f"has {len(leaves)} events")
        below = [node for node in nodes if node[0] < STORED_LEVEL_MIN]
        if below:
            level, index = min(below)
            raise Tampered(show(project), index * (1 << level) + 1,
                           f"{node_name(level, index)} is below the stored levels (levels "
                           f"0..{STORED_LEVEL_MIN - 1} are not stored)")
        # Every complete subtree of the first `size` leaves at a stored level, lowest level
        # first, so the lowest wrong node is named.
        for level in range(STORED_LEVEL_MIN, len(levels)):
            for index in range(size >> level):
                value = nodes.pop((level, index), None)
                if value is None:
                    raise Tampered(show(project), index * (1 << level) + 1,
                                   f"{node_name(level, index)} is missing")
                if value != levels[level][index]:
                    raise Tampered(show(project), index * (1 << level) + 1,
                                   f"{node_name(level, index)} differs from the hash recomputed "
                                   f"from the events")
                node_count += 1
        if nodes:
            level, index = min(nodes)
            raise Tampered(show(project), index * (1 << level) + 1,
                           f"{node_name(level, index)} lies beyond the tree's {size} "
                           f"lea{'f' if size == 1 else 'ves'}")
        for checkpoint_size, note in notes.pop(project, []):
            check_checkpoint(project, checkpoint_size, note, levels, len(leaves), vkeys)
            checkpoint_count += 1
    if stored or sizes:
        project = next(iter(stored or sizes))
        raise Tampered(show(project), 0, "Merkle tree stored for a project with no chain")
    if notes:
        project = next(iter(notes))
        raise Tampered(show(project), notes[project][0][0],
                       "checkpoint stored for a project with no chain")

    signatures = ("signatures not checked (no --vkey)" if not vkeys else
                  "signatures verified" if checkpoint_count else "no signatures to verify")
    return (f"{node_count} Merkle node{'' if node_count == 1 else 's'} and "
            f"{checkpoint_count} checkpoint{'' if checkpoint_count == 1 else 's'} checked, "
            f"{signatures}")


def only_project(project: bytes, chains: dict[bytes, list[bytes]],
                 all_projects: bool) -> Optional[bytes]:
    """`project` when its entries are to be checked: every project, or the one of --project."""
    return project if all_projects or project in chains else None


def check_checkpoint(project: bytes, size: int, note: bytes, levels: list[list[bytes]],
                     events: int, vkeys: list[VerifierKey]) -> None:
    def fail(reason: str) -> None:
        raise Tampered(show(project), size, f"checkpoint {size}: {reason}")

    try:
        text, signatures = parse_note(note)
        if vkeys:
            check_signatures(text, signatures, vkeys)
        checkpoint = parse_checkpoint(text)
    except NoteError as e:
        fail(str(e))
    if checkpoint.size != size:
        fail(f"its text says tree size {checkpoint.size}")
    suffix = "/" + show(project)
    if not checkpoint.origin.endswith(suffix) or checkpoint.origin == suffix:
        fail(f"origin {checkpoint.origin!r} does not end in {suffix!r}")
    if size > events:
        fail(f"tree size exceeds the project's {events} events")
    if checkpoint.root != mth(levels, 0, size):
        fail(f"root does not match the RFC 6962 root of the first {size} events")


# ---- Self-test and verifier keys -------------------------------------------------------------

RFC8032_VECTORS = [  # RFC 8032 section 7.1, TEST 1-3: (secret, public, message, signature).
    ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701"
     "cf9b46bd25bf5f0595bbe24655141438e7a100b"),
    ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d"
     "0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
    ("c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
     "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f7609"
     "84dc6594a7c15e9716ed28dc027beceea1ec40a"),
]
# The key of tests/fixtures/merkle/serverless-log/testdata (transparency-dev/serverless-log).
SERVERLESS_LOG_VKEY = "astra+cad5a3d2+AZJqeuyE/GnknsCNh1eCtDtwdAwKBddOlS8M2eI1Jt4b"


def self_test(fixtures: str) -> str:
    """Raises AssertionError or NoteError on the first failure."""
    for secret, public, message, signature in RFC8032_VECTORS:
        seed, pub, msg, sig = (bytes.fromhex(x) for x in (secret, public, message, signature))
        assert ed25519_public_key(seed) == pub, f"RFC 8032 public key of {secret[:8]}..."
        assert ed25519_sign(seed, msg) == sig, f"RFC 8032 signature of {secret[:8]}..."
        assert ed25519_verify(pub, msg, sig), f"RFC 8032 signature of {secret[:8]}... rejected"
        assert not ed25519_verify(pub, msg + b"x", sig), "signature verifies another message"
        assert not ed25519_verify(pub, msg, sig[:-1] + bytes([sig[-1] ^ 1])), "altered S verifies"
        assert not ed25519_verify(pub, msg, sig[:32] + (int.from_bytes(sig[32:], "little") + ED_Q)
                                  .to_bytes(32, "little")), "S + L verifies (malleable)"

    # The example of c2sp.org/signed-note: its verifier key and the note it verifies.
    with open(os.path.join(fixtures, "c2sp", "signed-note.md"), encoding="utf-8") as f:
        spec = f.read()
    example = spec[spec.index("### Example"):]
    m = re.search(r"^ +(\S+\+[0-9a-f]{8}\+\S+)$", example, re.M)
    assert m is not None, "no verifier key in the signed-note example"
    vkey = parse_vkey(m.group(1))
    m = re.search(r"^```\n(.*?)```$", example, re.M | re.S)
    assert m is not None, "no note in the signed-note example"
    note = m.group(1).encode("utf-8")
    text, signatures = parse_note(note)
    check_signatures(text, signatures, [vkey])
    for altered in (note.replace(b"example", b"Example", 1), note.replace(b"=\n", b"A=\n")):
        try:
            text2, signatures2 = parse_note(altered)
            check_signatures(text2, signatures2, [vkey])
        except NoteError:
            continue
        raise AssertionError("an altered signed-note example verifies")

    # serverless-log checkpoints: signature, and root = MTH of the leaves under seq/.
    log = os.path.join(fixtures, "serverless-log", "testdata", "log")
    astra = parse_vkey(SERVERLESS_LOG_VKEY)
    leaves = []
    while True:
        digits = f"{len(leaves):010x}"
        path = os.path.join(log, "seq", *(digits[i:i + 2] for i in range(0, 10, 2)))
        if not os.path.exists(path):
            break
        with open(path, "rb") as f:
            leaves.append(leaf_hash(f.read()))
    levels = complete_subtrees(leaves)
    names = sorted(n for n in os.listdir(log) if n.startswith("checkpoint"))
    assert names, f"no checkpoints in {log}"
    for name in names:
        with open(os.path.join(log, name), "rb") as f:
            note = f.read()
        text, signatures = parse_note(note)
        check_signatures(text, signatures, [astra])
        checkpoint = parse_checkpoint(text)
        assert checkpoint.origin == "example.com/testdata", f"{name}: origin"
        assert checkpoint.size <= len(leaves), f"{name}: size beyond the leaves"
        assert checkpoint.root == mth(levels, 0, checkpoint.size), f"{name}: root"
        forged = note.replace(text, text.replace(b"testdata", b"testdatb", 1))
        try:
            check_signatures(*parse_note(forged), [astra])
        except NoteError:
            continue
        raise AssertionError(f"{name}: an altered checkpoint verifies")
    return (f"self-test passed: {len(RFC8032_VECTORS)} RFC 8032 vectors, the signed-note "
            f"example, {len(names)} serverless-log checkpoints over {len(leaves)} leaves")


def vkey_of(keys_dir: str) -> str:
    """The verifier key of KEY_DIR's signing key: key_name's first line, the public key of the
    signing.key seed (which signing.pub must hold)."""
    try:
        with open(os.path.join(keys_dir, "key_name"), "rb") as f:
            name = f.read().decode("utf-8").split("\n")[0]
        with open(os.path.join(keys_dir, "signing.key"), "rb") as f:
            seed = f.read()
        with open(os.path.join(keys_dir, "signing.pub"), "rb") as f:
            public = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise Fatal(f"cannot read the signing key in {keys_dir}: {e}") from e
    if len(seed) != 32:
        raise Fatal(f"{keys_dir}/signing.key has {len(seed)} bytes, expected 32")
    if not valid_key_name(name):
        raise Fatal(f"{keys_dir}/key_name {name!r} is not a valid key name")
    if ed25519_public_key(seed) != public:
        raise Fatal(f"{keys_dir}/signing.pub is not the public key of signing.key")
    return VerifierKey(name, ed25519_key_id(name, public), public).text()


# ---- Verification (FORMAT.md, "Verification") ---------------------------------------------


@dataclass
class Event:
    """One row of `events`, decoded; the bytes are not kept."""
    key: bytes
    hash: bytes
    env: Optional[Envelope]
    error: Optional[str]
    payload_error: Optional[str] = None
    mac: Optional[bytes] = None  # Recomputed body MAC, when payloads are opened.


@dataclass
class Head:
    seq: int
    hash: bytes
    server_time_us: int


@dataclass
class Crypto:
    kek: bytes
    sodium: Sodium
    wrapped: dict[int, bytes] = field(default_factory=dict)  # keys sub-database
    unwrapped: dict[int, tuple[Optional[bytes], str]] = field(default_factory=dict)

    def data_key(self, key_id: int) -> tuple[Optional[bytes], str]:
        if key_id not in self.unwrapped:
            self.unwrapped[key_id] = self._unwrap(key_id)
        return self.unwrapped[key_id]

    def _unwrap(self, key_id: int) -> tuple[Optional[bytes], str]:
        record = self.wrapped.get(key_id)
        if record is None:
            return None, f"data key {key_id} is missing"
        parsed = parse_wrapped(record)
        if parsed is None:
            return None, f"data key record {key_id} is malformed"
        project, nonce, sealed = parsed
        aad = WRAP_LABEL + struct.pack(">I", key_id) + project
        plain = self.sodium.open(CIPHER_XCHACHA20POLY1305, self.kek, nonce, aad, sealed)
        if plain is None or len(plain) != 32:
            return None, f"data key {key_id} does not open with this key-encryption key"
        return plain, ""


def parse_wrapped(record: bytes) -> Optional[tuple[bytes, bytes, bytes]]:
    """keys value: u8 version (1) || u8 len || project || nonce (24) || sealed key (48)."""
    if len(record) < 2 or record[0] != 1:
        return None
    n = record[1]
    if len(record) != 2 + n + 24 + 48:
        return None
    return record[2:2 + n], record[2 + n:2 + n + 24], record[2 + n + 24:]


def open_payload(event: Event, crypto: Crypto) -> None:
    env = event.env
    assert env is not None
    key, why = crypto.data_key(env.key_id)
    if key is None:
        event.payload_error = "payload key: " + why
        return
    if env.cipher == CIPHER_AES256GCM and not crypto.sodium.aes_available:
        return  # Cannot be checked on this CPU; reported in the summary.
    if len(env.nonce) != NONCE_BYTES[env.cipher]:
        event.payload_error = "payload does not authenticate: nonce has the wrong size"
        return
    plain = crypto.sodium.open(env.cipher, key, env.nonce, encode_aad(env), env.ciphertext)
    if plain is None:
        event.payload_error = ("payload does not authenticate: authentication tag does not "
                               "verify (header, nonce or ciphertext altered)")
        return
    event.mac = body_mac(key, encode_body(env, plain))


class ChainWalk:
    """One project's chain, in the order and with the blame rule of FORMAT.md."""

    def __init__(self, project: bytes, head: Head, events: list[Event], start: int):
        self.project = project
        self.head = head
        self.events = events
        self.start = start
        self.prev_hash = ZERO_HASH
        self.prev_time = 0
        self.broken_link: Optional[int] = None  # seq n whose prevHash missed seq n-1's hash
        self.link_hash = ZERO_HASH  # hash of that event n
        self.checked = 0
        self.consumed: list[int] = []  # indexes into events

    def fail(self, seq: int, reason: str) -> None:
        raise Tampered(show(self.project), seq, reason)

    def blame(self, commitment: bytes) -> None:
        n = self.broken_link
        assert n is not None
        if commitment == self.link_hash:
            self.fail(n - 1, f"event altered: its hash no longer matches the prevHash of seq {n}")
        self.fail(n, f"event altered: prevHash does not match the hash of seq {n - 1}")

    def run(self) -> None:
        expected = 1
        prefix = project_key(self.project)
        i = self.start
        while i < len(self.events):
            key = self.events[i].key
            if len(key) != len(prefix) + 8 or not key.startswith(prefix):
                break  # Past this project's events.
            seq = u64be(key, len(prefix))
            if seq != expected:
                self.fail(expected, f"event is missing (the next stored event is seq {seq})")
            if seq > self.head.seq:
                self.fail(seq, f"event lies beyond the head record (head records seq "
                               f"{self.head.seq})")
            self.check_event(seq, self.events[i])
            self.consumed.append(i)
            expected += 1
            self.checked += 1
            i += 1
        last = expected - 1
        if last < self.head.seq:
            self.fail(last + 1, f"event is missing (the chain ends at seq {last} but the head "
                                f"records seq {self.head.seq})")
        if self.broken_link is not None:
            self.blame(self.head.hash)
        if last > 0 and self.prev_hash != self.head.hash:
            self.fail(last, "event hash does not match the head record")

    def check_event(self, seq: int, event: Event) -> None:
        if event.error is not None:
            self.fail(seq, event.error)
        env = event.env
        assert env is not None
        if env.project != self.project:
            self.fail(seq, f"envelope names project '{show(env.project)}'")
        if env.seq != seq:
            self.fail(seq, f"envelope says seq {env.seq} but is stored at seq {seq}")
        if self.broken_link is not None:
            self.blame(env.prev_hash)  # Does this event still commit to the broken link's?
        if seq == 1:
            if env.prev_hash != ZERO_HASH:
                self.fail(1, "prevHash of the first event is not zero")
        elif env.prev_hash != self.prev_hash:
            self.broken_link = seq
            self.link_hash = event.hash
        # With the link broken here, seq-1's time is suspect too: the blame rule decides first.
        if seq > 1 and self.broken_link != seq and env.server_time_us < self.prev_time:
            self.fail(seq, "server time goes backwards")
        if event.payload_error is not None:
            self.fail(seq, event.payload_error)
        self.prev_hash = event.hash
        self.prev_time = env.server_time_us


def load_kek(keys_dir: Optional[str]) -> Optional[bytes]:
    """The KEK when --keys is given: from TRAIL_KEK when that is set, else KEY_DIR/kek."""
    if keys_dir is None:
        return None
    text = os.environ.get("TRAIL_KEK")
    if text is not None:
        try:
            kek = bytes.fromhex(text)
        except ValueError:
            kek = b""
        if len(kek) != 32 or len(text) != 64:
            raise Fatal("TRAIL_KEK must be 64 hex digits")
        return kek
    path = os.path.join(keys_dir, "kek")
    try:
        st = os.stat(path)
        with open(path, "rb") as f:
            kek = f.read()
    except OSError as e:
        raise Fatal(f"cannot read {path}: {e.strerror}") from e
    if st.st_mode & 0o077:
        raise Fatal(f"{path} is readable by group or others; chmod 600 it")
    if len(kek) != 32:
        raise Fatal(f"{path} has {len(kek)} bytes, expected 32")
    return kek


def verify(data_dir: str, keys_dir: Optional[str], only: Optional[str],
           vkeys: list[VerifierKey]) -> str:
    """Returns the summary line; raises Tampered or Fatal."""
    if not os.path.exists(os.path.join(data_dir, "data.mdb")):
        raise Fatal(f"{data_dir} holds no Trail data (no data.mdb)")

    # meta: the format marker first; nothing else is read from a directory without it.
    meta = dict(dump(data_dir, "meta"))
    if meta.get(b"format") != FORMAT_VERSION:
        raise Fatal(f"{data_dir} has an unknown or missing ledger format")
    kek_check = meta.get(b"kek_check")
    next_key_id = meta.get(b"next_key_id")
    if kek_check is None or len(kek_check) != 32:
        raise Tampered("-", 0, "meta kek_check is missing or not 32 bytes")
    if next_key_id is None or len(next_key_id) != 4:
        raise Tampered("-", 0, "meta next_key_id is missing or not 4 bytes")

    crypto: Optional[Crypto] = None
    kek = load_kek(keys_dir)
    if kek is not None:
        expected = hashlib.blake2b(KEK_CHECK_LABEL, digest_size=32, key=kek).digest()
        if expected != kek_check:
            raise Fatal(f"the key directory does not belong to {data_dir}")
        crypto = Crypto(kek, Sodium())
        crypto.wrapped = {u32be(k): v for k, v in dump(data_dir, "keys") if len(k) == 4}

    # heads: every project with events, in key order (length byte first, then the name).
    heads: dict[bytes, Head] = {}
    for key, value in dump(data_dir, "heads"):
        if not key or key[0] + 1 != len(key):
            raise Fatal(f"malformed head key {key.hex()}")
        project = key[1:]
        if len(value) != 48:
            raise Fatal(f"head record of {show(project)} is malformed")
        heads[project] = Head(u64be(value, 0), value[8:40], i64be(value, 40))
    projects = list(heads)
    if only is not None:
        if only.encode() not in heads:
            raise Fatal(f"project {only} has no chain")
        projects = [only.encode()]

    # events: decoded once, in key order.
    open_payloads = crypto is not None and crypto.sodium.available()
    events: list[Event] = []
    for key, value in dump(data_dir, "events"):
        try:
            env: Optional[Envelope] = decode_envelope(value)
            error = None
        except Corrupt as e:
            env, error = None, str(e)
        event = Event(key, leaf_hash(value), env, error)
        if open_payloads and env is not None:
            assert crypto is not None
            open_payload(event, crypto)
        events.append(event)
    keys = [e.key for e in events]

    # The chains.
    total = 0
    consumed: set[int] = set()
    walks: list[ChainWalk] = []
    for project in projects:
        walk = ChainWalk(project, heads[project], events,
                         bisect.bisect_left(keys, project_key(project)))
        walk.run()
        total += walk.checked
        consumed.update(walk.consumed)
        walks.append(walk)

    # Further consistency checks (FORMAT.md): not part of `trailctl verify`.
    further_checks(data_dir, events, consumed, walks, crypto, only is None, u32be(next_key_id))

    # Merkle trees and checkpoints, against the chains just checked.
    chains = {walk.project: [events[i].hash for i in walk.consumed] for walk in walks}
    trees = check_trees(data_dir, chains, only is None, vkeys)

    if not open_payloads:
        why = ("no keys" if crypto is None else
               "libsodium not loadable through ctypes")
        detail = f"chains checked; {why}, payload tags not checked"
    elif any(e.env is not None and e.env.cipher == CIPHER_AES256GCM for e in events) and \
            not crypto.sodium.aes_available:  # type: ignore[union-attr]
        detail = "chains checked; AES-256-GCM unavailable here, some payload tags not checked"
    else:
        detail = "chains, payload tags and body MACs checked"
    if trees is None:
        detail += "; no Merkle trees (data directory from before them)"
        if vkeys:
            detail += ", no checkpoints to check"
    else:
        detail += "; " + trees

    def plural(n: int, noun: str) -> str:
        return f"{n} {noun}{'' if n == 1 else 's'}"

    return f"intact: {plural(total, 'event')} in {plural(len(projects), 'project')} ({detail})"


def further_checks(data_dir: str, events: list[Event], consumed: set[int],
                   walks: list[ChainWalk], crypto: Optional[Crypto], all_projects: bool,
                   next_key_id: int) -> None:
    # 1. Every stored event belongs to a chain that has a head record.
    if all_projects:
        for i, event in enumerate(events):
            if i in consumed:
                continue
            key = event.key
            n = key[0] if key else 0
            if key and len(key) == 1 + n + 8:
                raise Tampered(show(key[1:1 + n]), u64be(key, 1 + n),
                               "event stored outside any chain (its project has no head record)")
            raise Tampered("-", 0, f"malformed events key {key.hex()}")

    # 2. The head records the last event's server time.
    by_project: dict[bytes, list[Event]] = {}
    for walk in walks:
        chain = [events[i] for i in walk.consumed]
        by_project[walk.project] = chain
        if chain and chain[-1].env is not None and \
                chain[-1].env.server_time_us != walk.head.server_time_us:
            raise Tampered(show(walk.project), walk.head.seq,
                           "head record's server time differs from the last event's")

    # 3. The idempotency index, event_ids, lives in the view environment DATA/views (in the
    #    data directory itself in the layout before it). It is derived from the chains and may
    #    lag its chain after a crash (projection_state, key u8 9 || "event_ids" || project_key,
    #    holds the last seq it covers; no entry: the views were not built yet). Up to there it
    #    holds exactly one entry per stored event: project || eventId -> seq || mac.
    views_dir = os.path.join(data_dir, "views")
    in_views = os.path.exists(os.path.join(views_dir, "data.mdb"))
    ids_dir = views_dir if in_views else data_dir
    ids = dict(dump(ids_dir, "event_ids")) if in_views or \
        b"event_ids" in [k for k, _ in dump(data_dir, None)] else {}
    covered: dict[bytes, int] = {}
    if in_views:
        for key, value in dump(views_dir, "projection_state"):
            name = b"event_ids"
            if key[:1 + len(name)] == bytes([len(name)]) + name and len(value) == 8:
                pkey = key[1 + len(name):]
                covered[pkey[1:1 + pkey[0]]] = u64be(value, 0)
    for project, chain in by_project.items():
        last = covered.get(project, 0) if in_views else len(chain)
        for event in chain:
            env = event.env
            assert env is not None
            entry = ids.pop(project_key(project) + env.event_id, None)
            if env.seq > last:
                if entry is not None:
                    raise Tampered(show(project), env.seq,
                                   "event_ids has an entry beyond the seq its view covers")
                continue
            if entry is None or len(entry) != 40 or u64be(entry, 0) != env.seq:
                raise Tampered(show(project), env.seq,
                               "event_ids has no entry for this event's id (or names another seq)")
            if event.mac is not None and entry[8:] != event.mac:
                raise Tampered(show(project), env.seq,
                               "body MAC in event_ids does not match the event's header and "
                               "payload")
    if all_projects and ids:
        key = next(iter(ids))
        raise Tampered(show(key[1:1 + key[0]]), u64be(ids[key], 0) if len(ids[key]) == 40 else 0,
                       f"event_ids entry {key.hex()} names no stored event")

    # 4. No nonce repeats under one data key.
    seen: dict[tuple[int, bytes], tuple[bytes, int]] = {}
    for project, chain in by_project.items():
        for event in chain:
            env = event.env
            assert env is not None
            first = seen.setdefault((env.key_id, env.nonce), (project, env.seq))
            if first != (project, env.seq):
                raise Tampered(show(project), env.seq,
                               f"nonce reused under data key {env.key_id} (first used by "
                               f"project {show(first[0])} seq {first[1]})")

    # 5. Key records: well formed, below next_key_id, each used only by its own project.
    records = {u32be(k): v for k, v in dump(data_dir, "keys") if len(k) == 4}
    for key_id, record in records.items():
        if parse_wrapped(record) is None:
            raise Tampered("-", 0, f"data key record {key_id} is malformed")
        if key_id == 0 or key_id >= next_key_id:
            raise Tampered("-", 0, f"data key {key_id} is not below next_key_id {next_key_id}")
    for project, chain in by_project.items():
        for event in chain:
            env = event.env
            assert env is not None
            record = records.get(env.key_id)
            if record is None:
                raise Tampered(show(project), env.seq, f"data key {env.key_id} is missing")
            if parse_wrapped(record)[0] != project:  # type: ignore[index]
                raise Tampered(show(project), env.seq,
                               f"data key {env.key_id} belongs to another project")
    for key, value in dump(data_dir, "project_keys"):
        project = key[1:]
        if not key or key[0] + 1 != len(key) or len(value) != 4 or \
                u32be(value) not in records or \
                parse_wrapped(records[u32be(value)])[0] != project:  # type: ignore[index]
            raise Tampered(show(project), 0, "project_keys entry does not name this project's "
                                             "data key")


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Verify a Trail data directory independently of trailctl (docs/FORMAT.md).")
    parser.add_argument("data_dir", nargs="?")
    parser.add_argument("--keys", help="key directory: also check kek_check, payload tags and "
                                       "body MACs (TRAIL_KEK, when set, overrides its kek file)")
    parser.add_argument("--project", help="only this project's chain")
    parser.add_argument("--vkey", action="append", default=[],
                        help="checkpoint verifier key name+keyid+base64(0x01 || key): every "
                             "checkpoint must carry a valid signature by it (repeatable: by one "
                             "of them)")
    parser.add_argument("--self-test", metavar="FIXTURES",
                        help="check the Ed25519, note and Merkle code against the fixtures in "
                             "FIXTURES (tests/fixtures/merkle) and exit")
    parser.add_argument("--print-vkey", metavar="KEY_DIR",
                        help="print the verifier key of KEY_DIR's checkpoint signing key")
    args = parser.parse_args()
    try:
        if args.self_test is not None:
            try:
                print(self_test(args.self_test))
            except (AssertionError, NoteError, OSError, ValueError) as e:
                print(f"SELF-TEST FAILED: {e}")
                return EXIT_TAMPERED
            return EXIT_OK
        if args.print_vkey is not None:
            print(vkey_of(args.print_vkey))
            return EXIT_OK
        if args.data_dir is None:
            parser.error("DATA_DIR is required")
        vkeys = []
        for text in args.vkey:
            try:
                vkeys.append(parse_vkey(text))
            except NoteError as e:
                raise Fatal(f"--vkey {text}: {e}") from e
        print(verify(args.data_dir, args.keys, args.project, vkeys))
        return EXIT_OK
    except Tampered as t:
        print(f"TAMPERED project={t.project} seq={t.seq}: {t.reason}")
        return EXIT_TAMPERED
    except Fatal as f:
        print(f"independent_verify: {f}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
