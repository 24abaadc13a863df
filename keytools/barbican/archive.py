"""The encrypted backup archive: a public, authenticated header and AES-256-GCM segments.

Layout (all integers big-endian)::

    b"KTBARB01"                 magic (8 bytes)
    uint32 header length, header JSON (kdf parameters, nonce prefix, key check, public manifest)
    segments: uint32 ciphertext length, ciphertext (plaintext <= SEGMENT_SIZE, + 16-byte GCM tag)

Segments follow the STREAM construction: nonce = 7-byte random prefix || uint32 counter || final
flag, and every segment's associated data is the SHA-256 of magic+header. So the header (manifest
included) cannot be changed, segments cannot be reordered, dropped or duplicated, and a truncated
file is detected because its last segment lacks the final flag. Segment 0 holds the secret record
(the KEK); the following segments hold the database dump, streamed: nothing is held whole in memory.

The key comes from scrypt(passphrase) or from a 32-byte key file (via HKDF with the archive's salt);
a short key-check value in the header tells a wrong passphrase from a corrupted file.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from keytools import redaction, untrusted_json
from keytools.errors import UsageError

MAGIC = b"KTBARB01"
FORMAT_VERSION = 1
SEGMENT_SIZE = 1 << 20
MAX_HEADER = 1 << 20
MAX_SEGMENT_SIZE = 64 << 20  # what a reader accepts: a larger one is a damaged header, not ours
TAG = 16
# scrypt cost: 2**15 * 8 * 128 B = 32 MiB, ~0.1 s: fine once per backup, costly for a guesser.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 1 << 15, 8, 1
_LEN = struct.Struct(">I")


class ArchiveError(UsageError):
    """The archive is not ours, corrupted, truncated, or the passphrase is wrong (exit 2)."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any, what: str, path: str) -> bytes:
    try:
        return base64.b64decode(str(text), validate=True)
    except (ValueError, TypeError):
        raise ArchiveError(f"{path}: corrupted archive header ({what})",
                           "Use an intact copy of the backup") from None


@dataclass(frozen=True)
class KeySource:
    """Where the archive key comes from: a passphrase (scrypt) or raw key bytes (a key file)."""

    kind: str  # "passphrase" | "keyfile"
    material: bytes
    origin: str  # for messages: "--passphrase-file /x", "prompt", ...

    @classmethod
    def passphrase(cls, value: str, origin: str, new: bool = True) -> KeySource:
        """``new``: for a new archive (a short passphrase is refused; reading accepts any)."""
        if new and len(value) < 8:
            raise UsageError(f"the passphrase from {origin} is too short ({len(value)} characters)",
                             "Use at least 8 characters (a long random passphrase is best)")
        redaction.register_secret(value)
        return cls("passphrase", value.encode("utf-8"), origin)

    @classmethod
    def keyfile(cls, data: bytes, origin: str) -> KeySource:
        key = parse_key_file(data, origin)
        redaction.register_secret(key)
        return cls("keyfile", key, origin)

    @classmethod
    def random(cls) -> KeySource:
        """A throwaway key (the drill's temporary archive)."""
        return cls("keyfile", os.urandom(32), "a random drill key")


def parse_key_file(data: bytes, origin: str) -> bytes:
    """A key file holds 32 raw bytes, or 64 hex digits, or base64 of 32 bytes."""
    if len(data) == 32:
        return data
    text = data.strip()
    try:
        if len(text) == 64:
            return bytes.fromhex(text.decode("ascii"))
        decoded = base64.b64decode(text, validate=True)
        if len(decoded) == 32:
            return decoded
    except (ValueError, UnicodeDecodeError):
        pass
    raise UsageError(f"{origin}: not a 32-byte key (raw, 64 hex digits or base64)",
                     "Create one with: head -c 32 /dev/urandom > backup.key && chmod 600 backup.key")


@dataclass(frozen=True)
class _Keys:
    enc: bytes
    check: bytes


def _derive(source: KeySource, kdf: dict[str, Any], path: str) -> _Keys:
    salt = _unb64(kdf.get("salt"), "salt", path)
    if kdf.get("name") == "scrypt":
        if source.kind != "passphrase":
            raise UsageError(f"{path} was encrypted with a passphrase, but {source.origin} is a key file",
                             "Give the passphrase (--passphrase-file, --passphrase-env or the prompt)")
        try:
            n, r, p = int(kdf["n"]), int(kdf["r"]), int(kdf["p"])
        except (KeyError, TypeError, ValueError):
            raise ArchiveError(f"{path}: corrupted archive header (kdf)", "Use an intact copy") from None
        if not (1 << 10 <= n <= 1 << 20 and 1 <= r <= 32 and 1 <= p <= 16 and n & (n - 1) == 0):
            raise ArchiveError(f"{path}: archive header asks for unsupported scrypt parameters",
                               "Use an intact copy of the backup")
        master = Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(source.material)
    elif kdf.get("name") == "hkdf-keyfile":
        if source.kind != "keyfile":
            raise UsageError(f"{path} was encrypted with a key file, but {source.origin} is a passphrase",
                             "Give the key file with --key-file")
        master = HKDF(hashes.SHA256(), 32, salt, b"keytools barbican backup keyfile").derive(source.material)
    else:
        raise ArchiveError(f"{path}: unknown key derivation {kdf.get('name')!r}",
                           "Use a newer keytools or an intact copy")
    enc = HKDF(hashes.SHA256(), 32, None, b"keytools barbican backup v1 enc").derive(master)
    check = HKDF(hashes.SHA256(), 16, None, b"keytools barbican backup v1 check").derive(master)
    return _Keys(enc, check)


def new_kdf(source: KeySource) -> dict[str, Any]:
    salt = _b64(os.urandom(16))
    if source.kind == "passphrase":
        return {"name": "scrypt", "salt": salt, "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P}
    return {"name": "hkdf-keyfile", "salt": salt}


def _nonce(prefix: bytes, counter: int, final: bool) -> bytes:
    return prefix + struct.pack(">I", counter) + (b"\x01" if final else b"\x00")


class ArchiveWriter:
    """Encrypt a stream into segments; ``close()`` writes the final one (truncation detection)."""

    def __init__(self, out: BinaryIO, source: KeySource, manifest: dict[str, Any],
                 segment_size: int = SEGMENT_SIZE) -> None:
        self._out = out
        self._segment_size = segment_size
        self._prefix = os.urandom(7)
        kdf = new_kdf(source)
        keys = _derive(source, kdf, "<new archive>")
        header = {"format": FORMAT_VERSION, "kdf": kdf, "key_check": _b64(keys.check),
                  "nonce_prefix": _b64(self._prefix), "segment_size": segment_size,
                  "manifest": manifest}
        header_bytes = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
        prelude = MAGIC + _LEN.pack(len(header_bytes)) + header_bytes
        self._aad = hashlib.sha256(prelude).digest()
        self._aead = AESGCM(keys.enc)
        out.write(prelude)
        self._counter = 0
        self._pending: bytes | bytearray | memoryview | None = None
        self._buf = bytearray()
        self.bytes_in = 0

    def _emit(self, plaintext: bytes | bytearray | memoryview) -> None:
        if self._pending is not None:
            self._write_segment(self._pending, final=False)
        self._pending = plaintext

    def _write_segment(self, plaintext: bytes | bytearray | memoryview, final: bool) -> None:
        if self._counter >= 0xFFFFFFFF:
            raise ArchiveError("backup too large for one archive (2**32 segments)")
        ct = self._aead.encrypt(_nonce(self._prefix, self._counter, final), plaintext, self._aad)
        self._out.write(_LEN.pack(len(ct)))
        self._out.write(ct)
        self._counter += 1

    def write_record(self, data: bytes) -> None:
        """``data`` as a segment of its own (the secret record)."""
        if len(data) > self._segment_size:
            raise ArchiveError("secret record larger than a segment")
        self._flush_buffer()
        self._emit(bytes(data))

    def write(self, data: bytes) -> None:
        view = memoryview(data).cast("B")
        self.bytes_in += len(view)
        size = self._segment_size
        while len(view):
            if not self._buf and len(view) >= size:
                # A whole segment straight from the caller's buffer: no copy when it is immutable.
                chunk, view = view[:size], view[size:]
                self._emit(chunk if chunk.readonly else bytes(chunk))
                continue
            room = size - len(self._buf)
            self._buf += view[:room]
            view = view[room:]
            if len(self._buf) == size:  # full: held back as pending, not yet known to be final
                self._emit(self._buf)
                self._buf = bytearray()

    def _flush_buffer(self) -> None:
        if self._buf:
            self._emit(self._buf)
            self._buf = bytearray()

    def close(self) -> None:
        self._flush_buffer()
        self._write_segment(self._pending if self._pending is not None else b"", final=True)
        self._pending = None


@dataclass
class ArchiveHeader:
    path: str
    header: dict[str, Any]
    aad: bytes
    data_offset: int

    @property
    def manifest(self) -> dict[str, Any]:
        manifest = self.header.get("manifest")
        return manifest if isinstance(manifest, dict) else {}


def read_header(handle: BinaryIO, path: str) -> ArchiveHeader:
    """Parse the public header (not yet authenticated: that needs the key)."""
    magic = handle.read(len(MAGIC))
    if magic != MAGIC:
        raise ArchiveError(f"{path}: not a keytools Barbican backup (bad magic)",
                           "Give the file written by 'keytools barbican backup'")
    raw_len = handle.read(_LEN.size)
    if len(raw_len) != _LEN.size:
        raise ArchiveError(f"{path}: archive is truncated (header)", "Use an intact copy of the backup")
    (length,) = _LEN.unpack(raw_len)
    if length > MAX_HEADER:
        raise ArchiveError(f"{path}: corrupted archive header (length {length})", "Use an intact copy")
    header_bytes = handle.read(length)
    if len(header_bytes) != length:
        raise ArchiveError(f"{path}: archive is truncated (header)", "Use an intact copy of the backup")
    header = untrusted_json.loads(header_bytes, f"{path}: the archive header", error=ArchiveError,
                                  hint="Use an intact copy", max_bytes=MAX_HEADER)
    if not isinstance(header, dict) or header.get("format") != FORMAT_VERSION:
        raise ArchiveError(f"{path}: unsupported archive format {header.get('format') if isinstance(header, dict) else '?'}",
                           "Use the keytools version that wrote it, or an intact copy")
    aad = hashlib.sha256(magic + raw_len + header_bytes).digest()
    return ArchiveHeader(path, header, aad, len(MAGIC) + _LEN.size + length)


class ArchiveReader:
    """Authenticate the key, then yield decrypted segments in order, verifying each."""

    def __init__(self, handle: BinaryIO, header: ArchiveHeader, source: KeySource) -> None:
        self._handle = handle
        self._header = header
        h = header.header
        keys = _derive(source, h.get("kdf") if isinstance(h.get("kdf"), dict) else {}, header.path)
        check = _unb64(h.get("key_check"), "key check", header.path)
        if not hmac.compare_digest(check, keys.check):
            what = "passphrase" if source.kind == "passphrase" else "key file"
            raise ArchiveError(f"{header.path}: wrong {what} ({source.origin})",
                               f"Give the {what} the backup was made with")
        self._prefix = _unb64(h.get("nonce_prefix"), "nonce", header.path)
        if len(self._prefix) != 7:
            raise ArchiveError(f"{header.path}: corrupted archive header (nonce)", "Use an intact copy")
        segment_size = h.get("segment_size", SEGMENT_SIZE)
        if isinstance(segment_size, bool) or not isinstance(segment_size, int) or not (
                1 <= segment_size <= MAX_SEGMENT_SIZE):
            raise ArchiveError(f"{header.path}: corrupted archive header (segment size)", "Use an intact copy")
        self._max = segment_size + TAG
        self._aead = AESGCM(keys.enc)

    def segments(self) -> Iterator[bytes]:
        path = self._header.path
        counter = 0
        while True:
            raw_len = self._handle.read(_LEN.size)
            if len(raw_len) < _LEN.size:
                raise ArchiveError(f"{path}: archive is truncated (segment {counter} missing)",
                                   "Use an intact copy of the backup")
            (length,) = _LEN.unpack(raw_len)
            if not TAG <= length <= self._max:
                raise ArchiveError(f"{path}: archive is corrupted (segment {counter} length)",
                                   "Use an intact copy of the backup")
            ct = self._handle.read(length)
            if len(ct) != length:
                raise ArchiveError(f"{path}: archive is truncated (segment {counter} cut short)",
                                   "Use an intact copy of the backup")
            plaintext, final = self._open(ct, counter)
            yield plaintext
            counter += 1
            if final:
                break
        if self._handle.read(1):
            raise ArchiveError(f"{path}: archive is corrupted (data after the final segment)",
                               "Use an intact copy of the backup")

    def _open(self, ct: bytes, counter: int) -> tuple[bytes, bool]:
        for final in (False, True):
            try:
                return self._aead.decrypt(_nonce(self._prefix, counter, final), ct, self._header.aad), final
            except InvalidTag:
                continue
        raise ArchiveError(f"{self._header.path}: archive is corrupted (segment {counter} fails "
                           "authentication)", "Use an intact copy of the backup")
