"""The archive format on its own: round trips, and every way a file can be wrong."""

from __future__ import annotations

import io
import json
import os
import struct

import pytest

from keytools.barbican import sqldump
from keytools.barbican.archive import (MAGIC, ArchiveError, ArchiveReader, ArchiveWriter, KeySource,
                                              parse_key_file, read_header)
from keytools.errors import UsageError

MANIFEST = {"kind": "keytools-barbican-backup", "counts": {"secrets": 2}}
# Most cases use a key file (HKDF, instant); scrypt (~0.1 s per derivation) is tested separately.
PASS = KeySource("keyfile", b"k" * 32, "test key")
PHRASE = KeySource("passphrase", b"correct horse battery", "test")


def make(data: bytes, source: KeySource = PASS, segment_size: int = 64, record: bytes = b'{"kek":"K"}') -> bytes:
    buf = io.BytesIO()
    writer = ArchiveWriter(buf, source, MANIFEST, segment_size=segment_size)
    writer.write_record(record)
    for i in range(0, len(data), 50):  # uneven writes across segment boundaries
        writer.write(data[i:i + 50])
    writer.close()
    return buf.getvalue()


def read(blob: bytes, source: KeySource = PASS) -> list[bytes]:
    handle = io.BytesIO(blob)
    header = read_header(handle, "a.ktbak")
    return list(ArchiveReader(handle, header, source).segments())


@pytest.mark.parametrize("size", [0, 1, 63, 64, 65, 640, 1000])
def test_round_trip_any_size(size: int) -> None:
    data = os.urandom(size)
    segments = read(make(data))
    assert segments[0] == b'{"kek":"K"}'
    assert b"".join(segments[1:]) == data


def test_keyfile_round_trip_and_forms(tmp_path) -> None:
    raw = os.urandom(32)
    for form in (raw, raw.hex().encode() + b"\n", __import__("base64").b64encode(raw) + b"\n"):
        assert parse_key_file(form, "k") == raw
    src = KeySource.keyfile(raw, "--key-file k")
    assert b"".join(read(make(b"x" * 200, src), src)[1:]) == b"x" * 200
    with pytest.raises(UsageError, match="not a 32-byte key"):
        parse_key_file(b"short", "--key-file k")


def test_manifest_public_but_secrets_not_in_clear() -> None:
    data = b"PAYLOAD-" * 100
    blob = make(data, record=b'{"kek":"SUPERSECRETKEK"}')
    assert b"SUPERSECRETKEK" not in blob and b"PAYLOAD-" not in blob
    header = read_header(io.BytesIO(blob), "a")
    assert header.manifest == MANIFEST


def test_passphrase_round_trip_wrong_passphrase_and_wrong_kind() -> None:
    blob = make(b"data" * 40, PHRASE)
    assert b"".join(read(blob, PHRASE)[1:]) == b"data" * 40
    with pytest.raises(ArchiveError, match="wrong passphrase"):
        read(blob, KeySource("passphrase", b"another passphrase", "test"))
    with pytest.raises(UsageError, match="encrypted with a passphrase"):
        read(blob, KeySource.random())
    with pytest.raises(ArchiveError, match="wrong key file"):
        read(make(b"data"), KeySource.random())


def test_too_short_passphrase() -> None:
    with pytest.raises(UsageError, match="too short"):
        KeySource.passphrase("short", "--passphrase-env P")


def test_truncated_everywhere() -> None:
    blob = make(os.urandom(300))
    for cut in range(0, len(blob), 7):
        with pytest.raises(ArchiveError):
            read(blob[:cut])


def test_truncated_at_segment_boundary_detected() -> None:
    """Dropping whole trailing segments leaves a valid-looking file: the final flag catches it."""
    blob = make(os.urandom(300))
    handle = io.BytesIO(blob)
    header = read_header(handle, "a")
    offset, ends = header.data_offset, []
    while offset < len(blob):
        (length,) = struct.unpack(">I", blob[offset:offset + 4])
        offset += 4 + length
        ends.append(offset)
    assert len(ends) > 3
    for end in ends[:-1]:
        with pytest.raises(ArchiveError, match="truncated"):
            read(blob[:end])


def test_any_flipped_byte_is_refused() -> None:
    blob = bytearray(make(os.urandom(200)))
    for pos in range(0, len(blob), 5):
        bad = bytearray(blob)
        bad[pos] ^= 0x01
        with pytest.raises((ArchiveError, UsageError)):
            read(bytes(bad))


def test_manifest_tampering_is_detected() -> None:
    blob = make(b"data")
    header_len = struct.unpack(">I", blob[8:12])[0]
    header = json.loads(blob[12:12 + header_len])
    header["manifest"]["counts"]["secrets"] = 99
    new = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    forged = MAGIC + struct.pack(">I", len(new)) + new + blob[12 + header_len:]
    with pytest.raises(ArchiveError, match="fails authentication"):
        read(forged)


def test_trailing_garbage_and_not_an_archive() -> None:
    with pytest.raises(ArchiveError, match="after the final segment"):
        read(make(b"data") + b"x")
    with pytest.raises(ArchiveError, match="bad magic"):
        read(b"PK\x03\x04 not ours")


def test_sqldump_classifies_and_refuses_unknown(tmp_path) -> None:
    dump = tmp_path / "d.sql"
    dump.write_text("/*M!999999\\- enable the sandbox mode */ \n-- comment\n"
                    "/*!40101 SET NAMES utf8mb4 */;\nDROP TABLE IF EXISTS `secrets`;\n"
                    "CREATE TABLE `secrets` (\n  `id` varchar(36) NOT NULL,\n  `deleted` tinyint(1),\n"
                    "  PRIMARY KEY (`id`)\n) ENGINE=InnoDB;\n"
                    "INSERT INTO `secrets` VALUES\n('a;\\nb',0),('c',1);\n"
                    "CREATE TABLE `alembic_version` (\n  `version_num` varchar(32) NOT NULL\n);\n"
                    "INSERT INTO `alembic_version` VALUES ('abc123');\n")
    schema = sqldump.read_schema(dump)
    assert schema.columns == {"secrets": ["id", "deleted"], "alembic_version": ["version_num"]}
    assert schema.alembic_version == "abc123"
    assert [s.kind for s in sqldump.iter_statements(dump)] == ["set", "skip", "create", "insert", "create",
                                                                "insert"]
    dump.write_text(dump.read_text() + "CREATE TRIGGER x BEFORE INSERT ON secrets FOR EACH ROW SET @a=1;\n")
    with pytest.raises(ArchiveError, match="unsupported statement"):
        sqldump.read_schema(dump)
    dump.write_text("INSERT INTO `secrets` VALUES ('a'),\n")
    with pytest.raises(ArchiveError, match="ends inside a statement"):
        list(sqldump.iter_statements(dump))
