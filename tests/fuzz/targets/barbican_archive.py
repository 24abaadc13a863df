"""Barbican backup archives read back: `barbican inspect` (with and without --verify),
`barbican restore --check` and `barbican drill --archive`, on archives from a backup server.

The archive is a real one, written once per process by `keytools barbican backup` from a small
SQLite Barbican database with a fixed key file (the same key every run, so a saved corpus stays
meaningful). The first byte picks what ``data`` becomes:

  0: the whole archive file
  1: the header JSON; the segments are encrypted again under it (same key, salt and nonce
     prefix), so a header whose key fields survive the mutation authenticates
  2: the manifest JSON inside an otherwise valid header (re-encrypted the same way)

Secrets planted: the KEK in barbican.conf and the archive key; neither may appear in any output.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sqlite3
import struct
from functools import cache
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from keytools.barbican import archive as ar
from tests.fuzz import contract
from tests.helpers.cli import invoke

KEY = hashlib.sha256(b"keytools fuzz archive key").digest()
KEK = base64.b64encode(hashlib.sha256(b"keytools fuzz planted KEK").digest()).decode()
_LEN = struct.Struct(">I")


@cache
def _setup() -> dict[str, Any]:
    """The SQLite Barbican, its barbican.conf, the key file and a real archive (bytes)."""
    db = os.path.join(contract.workdir(), "barbican.sqlite")
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)")
        conn.execute("INSERT INTO alembic_version VALUES ('fuzz0001')")
        conn.execute("CREATE TABLE secrets (id VARCHAR(36) PRIMARY KEY, deleted BOOLEAN, name VARCHAR(255))")
        conn.executemany("INSERT INTO secrets VALUES (?, 0, ?)", [(f"id-{i}", f"secret {i}") for i in range(3)])
    conf = contract.write("barbican.conf", (f"[DEFAULT]\n[database]\nconnection = sqlite:///{db}\n"
                                            f"[simple_crypto_plugin]\nkek = {KEK}\n").encode())
    key = contract.write("archive.key", KEY)
    os.chmod(key, 0o600)
    out = os.path.join(contract.workdir(), "seed.ktbak")
    made = invoke(["barbican", "backup", "--config", conf, "--out", out, "--key-file", key, "--overwrite"])
    assert made.exit_code == 0, made.output
    with open(out, "rb") as handle:
        blob = handle.read()
    return {"conf": conf, "key": key, "archive": blob, **_split(blob)}


def _split(blob: bytes) -> dict[str, Any]:
    """Header bytes and decrypted segments (plaintext, final) of the real archive."""
    (length,) = _LEN.unpack_from(blob, len(ar.MAGIC))
    start = len(ar.MAGIC) + _LEN.size
    header_bytes = blob[start:start + length]
    header = json.loads(header_bytes)
    keys = ar._derive(ar.KeySource("keyfile", KEY, "fuzz"), header["kdf"], "seed")
    prefix = base64.b64decode(header["nonce_prefix"])
    aad = hashlib.sha256(blob[:start + length]).digest()
    segments, pos, counter = [], start + length, 0
    while pos < len(blob):
        (n,) = _LEN.unpack_from(blob, pos)
        ct = blob[pos + 4:pos + 4 + n]
        pos += 4 + n
        for final in (False, True):
            try:
                segments.append((AESGCM(keys.enc).decrypt(ar._nonce(prefix, counter, final), ct, aad), final))
                break
            except Exception:  # noqa: BLE001 - InvalidTag: try the other flag
                continue
        counter += 1
    return {"header_bytes": header_bytes, "header": header, "enc": keys.enc, "prefix": prefix,
            "segments": segments}


def _rebuild(header_bytes: bytes) -> bytes:
    """An archive whose header is ``header_bytes`` and whose segments are encrypted under it."""
    s = _setup()
    prelude = ar.MAGIC + _LEN.pack(len(header_bytes)) + header_bytes
    aad = hashlib.sha256(prelude).digest()
    out = [prelude]
    for counter, (plaintext, final) in enumerate(s["segments"]):
        ct = AESGCM(s["enc"]).encrypt(ar._nonce(s["prefix"], counter, final), plaintext, aad)
        out += [_LEN.pack(len(ct)), ct]
    return b"".join(out)


def _with_manifest(manifest: bytes) -> bytes:
    header = dict(_setup()["header"])
    header.pop("manifest")
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    return text[:-1] + b',"manifest":' + manifest + b"}"


def _seeds() -> list[bytes]:
    s = _setup()
    manifest = json.dumps(s["header"]["manifest"]).encode()
    return [b"\x00" + s["archive"], b"\x01" + s["header_bytes"], b"\x02" + manifest]


SEEDS: list[bytes] = _seeds()


def fuzz_one(data: bytes) -> None:
    s = _setup()
    mode, body = (data[0] % 3, data[1:]) if data else (0, b"")
    blob = body if mode == 0 else _rebuild(body if mode == 1 else _with_manifest(body))
    path = contract.write("fuzz.ktbak", blob)
    secrets = (KEK, KEY.hex())
    key = ["--key-file", s["key"]]
    contract.run(["barbican", "inspect", path, "-f", "json"], secrets=secrets, json_output=True)
    contract.run(["barbican", "inspect", path], secrets=secrets)
    verified = contract.run(["barbican", "inspect", "--verify", *key, path, "-f", "json"], secrets=secrets,
                            json_output=True)
    contract.run(["barbican", "restore", "--check", "--config", s["conf"], *key, path, "-f", "json"],
                 secrets=secrets, json_output=True)
    if verified.exit_code != 0:  # a valid archive would start a scratch Barbican: seconds per input
        r = contract.run(["barbican", "drill", "--archive", path, *key], secrets=secrets)
        assert r.exit_code != 0, "drill --archive accepted an archive inspect --verify refused"
