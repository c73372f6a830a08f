#!/usr/bin/env python3
"""independent_verify.py: verify a Trail data directory from docs/FORMAT.md alone.

Usage: independent_verify.py [--keys KEY_DIR] [--project P] DATA_DIR

Written from the format specification, not from the C++ sources, and importing nothing from
the project: the point is to show that the specification is enough to check a ledger. It
reads the sub-databases with `mdb_dump` (lmdb-utils, hex "bytevalue" format), decodes every
envelope's Cap'n Proto bytes by hand, recomputes every event hash with hashlib and checks the
chain rules (FORMAT.md, "Verification"). It then checks the cross-references between
sub-databases that `trailctl verify` does not (FORMAT.md, "Further consistency checks").

With --keys KEY_DIR (the KEK from TRAIL_KEK when that is set, as trailctl does) it also checks the KEK against meta/kek_check
(hashlib only) and, when the system libsodium can be loaded through ctypes, unwraps the data
keys, opens every payload and recomputes every body MAC in the event_ids sub-database. The
Python standard library has no AEAD cipher, hence libsodium for that part alone; without it
those checks are skipped and the output says so. One deliberate difference from trailctl: on
a CPU without AES-NI, where libsodium cannot open AES-256-GCM, those payloads are reported as
not checked rather than as tampered (FORMAT.md, section 15).

Exit status and output, as `trailctl verify`:
  0  "intact: N events in M projects (...)"  ("1 event", "1 project" in the singular)
  1  "TAMPERED project=P seq=N: reason"    (the first problem, with trailctl's blame rule)
  2  "independent_verify: message" on stderr: no verdict (not a Trail data directory, a
     malformed head record, keys that do not match kek_check, no mdb_dump, ...)
"""

from __future__ import annotations

import argparse
import bisect
import ctypes
import ctypes.util
import hashlib
import os
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


def dump(data_dir: str, name: str) -> list[tuple[bytes, bytes]]:
    """Every (key, value) of sub-database `name`, in LMDB key order (byte-wise)."""
    try:
        proc = subprocess.run(["mdb_dump", "-s", name, data_dir], stdout=subprocess.PIPE,
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


def verify(data_dir: str, keys_dir: Optional[str], only: Optional[str]) -> str:
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

    if not open_payloads:
        why = ("no keys" if crypto is None else
               "libsodium not loadable through ctypes")
        detail = f"chains checked; {why}, payload tags not checked"
    elif any(e.env is not None and e.env.cipher == CIPHER_AES256GCM for e in events) and \
            not crypto.sodium.aes_available:  # type: ignore[union-attr]
        detail = "chains checked; AES-256-GCM unavailable here, some payload tags not checked"
    else:
        detail = "chains, payload tags and body MACs checked"
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

    # 3. event_ids holds exactly one entry per stored event: project || eventId -> seq || mac.
    ids = dict(dump(data_dir, "event_ids"))
    for project, chain in by_project.items():
        for event in chain:
            env = event.env
            assert env is not None
            entry = ids.pop(project_key(project) + env.event_id, None)
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
    parser.add_argument("data_dir")
    parser.add_argument("--keys", help="key directory: also check kek_check, payload tags and "
                                       "body MACs (TRAIL_KEK, when set, overrides its kek file)")
    parser.add_argument("--project", help="only this project's chain")
    args = parser.parse_args()
    try:
        print(verify(args.data_dir, args.keys, args.project))
        return EXIT_OK
    except Tampered as t:
        print(f"TAMPERED project={t.project} seq={t.seq}: {t.reason}")
        return EXIT_TAMPERED
    except Fatal as f:
        print(f"independent_verify: {f}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
