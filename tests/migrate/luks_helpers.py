"""LUKS headers on image files for the --luks tests (verify, rekey), and the Cinder rows around them:
volume types with an encryption spec of a given key size, backups sharing a volume's key id."""

from __future__ import annotations

import re
import subprocess
import uuid

import sqlalchemy as sa


def luks_format(path, passphrase: bytes, kind: str = "luks2", size: int | None = None) -> None:
    """A small header with a fast PBKDF (the test needs the format, not the hardness); 512-byte
    sectors so that ``write_data``/``read_data`` can stand in for a dm-crypt mapping."""
    size = size or (18 * 1024 * 1024 if kind == "luks2" else 4 * 1024 * 1024)
    with open(path, "wb") as handle:
        handle.truncate(size)
    sector = ["--sector-size", "512"] if kind == "luks2" else []
    subprocess.run(["cryptsetup", "luksFormat", "-q", "--type", kind, *sector, "--pbkdf", "pbkdf2",
                    "--pbkdf-force-iterations", "1000", "--key-file", "-", str(path)],
                   input=passphrase, check=True, capture_output=True)


def opens(path, passphrase: bytes) -> bool:
    return subprocess.run(["cryptsetup", "open", "--test-passphrase", "--readonly", "--key-file", "-", str(path)],
                          input=passphrase, capture_output=True).returncode == 0


def used_slots(path) -> int:
    text = subprocess.run(["cryptsetup", "luksDump", str(path)], capture_output=True, text=True, check=True).stdout
    if re.search(r"^Version:\s*1", text, re.M):
        return len(re.findall(r"^Key Slot \d+: ENABLED", text, re.M))
    return len(re.findall(r"^\s+\d+: luks2", text.split("Keyslots:", 1)[1].split("Tokens:", 1)[0], re.M))


def volume_key(path, passphrase: bytes) -> bytes:
    """The volume key (tests only: compare before/after a reencryption, read the data)."""
    out = subprocess.run(["cryptsetup", "luksDump", "-q", "--dump-volume-key", "--key-file", "-", str(path)],
                         input=passphrase, capture_output=True, check=True).stdout.decode()
    found = re.search(r"MK dump:\s*((?:[0-9a-f]{2}\s+)+)", out)
    return bytes.fromhex("".join(found.group(1).split()))


def _data_offset(path) -> int:
    text = subprocess.run(["cryptsetup", "luksDump", str(path)], capture_output=True, text=True, check=True).stdout
    found = re.search(r"^\s+offset: (\d+) \[bytes\]", text, re.M)
    assert found and "sector: 512 [bytes]" in text and "aes-xts-plain64" in text, text
    return int(found.group(1))


def _xts(key: bytes, data: bytes, encrypt: bool) -> bytes:
    """aes-xts-plain64 over 512-byte sectors, as dm-crypt does (no device-mapper here)."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    out = bytearray()
    for i in range(0, len(data), 512):
        cipher = Cipher(algorithms.AES(key), modes.XTS((i // 512).to_bytes(16, "little")))
        op = cipher.encryptor() if encrypt else cipher.decryptor()
        out += op.update(data[i:i + 512]) + op.finalize()
    return bytes(out)


def write_data(path, passphrase: bytes, data: bytes) -> None:
    """Write ``data`` (a multiple of 512 bytes) at the start of the LUKS2 volume, encrypted."""
    key, offset = volume_key(path, passphrase), _data_offset(path)
    with open(path, "r+b") as handle:
        handle.seek(offset)
        handle.write(_xts(key, data, True))


def read_data(path, passphrase: bytes, length: int) -> bytes:
    key, offset = volume_key(path, passphrase), _data_offset(path)
    with open(path, "rb") as handle:
        handle.seek(offset)
        return _xts(key, handle.read(length), False)


def encrypted_type(db_url: str, bits: int) -> str:
    """A volume type with a LUKS encryption spec of ``bits`` (cinder's encryption table)."""
    eng = sa.create_engine(db_url)
    type_id = str(uuid.uuid4())
    try:
        with eng.begin() as conn:
            meta = sa.MetaData()
            vt = sa.Table("volume_types", meta, autoload_with=conn)
            enc = sa.Table("encryption", meta, autoload_with=conn)
            conn.execute(sa.insert(vt).values(id=type_id, name=f"luks-{bits}-{type_id[:6]}", deleted=False,
                                              is_public=True))
            conn.execute(sa.insert(enc).values(encryption_id=str(uuid.uuid4()), volume_type_id=type_id,
                                               cipher="aes-xts-plain64", key_size=bits, provider="luks",
                                               control_location="front-end", deleted=False))
    finally:
        eng.dispose()
    return type_id


def update(db_url: str, table: str, row_id: str, **values) -> None:
    eng = sa.create_engine(db_url)
    try:
        with eng.begin() as conn:
            t = sa.Table(table, sa.MetaData(), autoload_with=conn)
            conn.execute(sa.update(t).where(t.c.id == row_id).values(**values))
    finally:
        eng.dispose()
