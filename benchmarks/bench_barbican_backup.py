#!/usr/bin/env python3
"""Barbican backup throughput, side by side with the floor it cannot beat.

- archive encryption/decryption (1 MiB AES-256-GCM segments) vs one-shot AESGCM on the same bytes
- backup of a ~64 MiB Barbican-shaped SQLite DB (snapshot + encrypt + fsync) vs a plain ``cp``
  and vs the bare SQLite backup API; restore (decrypt + verify + backup API into the target)
- scrypt key derivation (paid once per backup/restore)
- with MariaDB installed: mariadb-dump vs the PyMySQL dumper and the one-transaction restore on a
  MariaDB sandbox (``--no-mariadb`` skips it)

Writes bench-results/barbican_backup.json.
"""

from __future__ import annotations

import base64
import os
import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402

from keytools.barbican import operations  # noqa: E402
from keytools.barbican.archive import ArchiveReader, ArchiveWriter, KeySource, read_header  # noqa: E402
from timing import print_values, timed, write_results  # noqa: E402

MIB = 1 << 20


def make_db(path: Path, mib: int) -> int:
    rows = mib * MIB // 4096
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE alembic_version (version_num TEXT)")
        db.execute("INSERT INTO alembic_version VALUES ('8c74e2d7f1ff')")
        for table in ("secrets", "orders", "containers"):
            db.execute(f"CREATE TABLE {table} (id TEXT PRIMARY KEY, deleted INTEGER)")
        db.execute("CREATE TABLE encrypted_data (id TEXT, secret_id TEXT, cypher_text BLOB)")
        db.executemany("INSERT INTO secrets VALUES (?, 0)", ((f"s-{i}",) for i in range(rows)))
        db.executemany("INSERT INTO encrypted_data VALUES (?, ?, ?)",
                       ((f"e-{i}", f"s-{i}", os.urandom(3800)) for i in range(rows)))
    return rows


def bench_mariadb(source: KeySource) -> dict[str, float]:
    """mariadb-dump vs the PyMySQL dumper, and the one-transaction restore, on a MariaDB sandbox
    whose Barbican database carries ~32 MiB of extra rows."""
    import subprocess

    import pymysql
    from sqlalchemy.engine import make_url

    from keytools.sandbox import configs
    from keytools.sandbox.state import StateDir

    res: dict[str, float] = {}
    keytools = [sys.executable, "-m", "keytools"]
    with tempfile.TemporaryDirectory(prefix="bench-bk-maria-") as tmp:
        state = StateDir(Path(tmp) / "s")
        try:
            subprocess.run([*keytools, "sandbox", "up", "--state-dir", str(state.root), "--db", "mariadb"],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            cfg = state.load()
            url = make_url(configs.db_url(state, cfg, "barbican"))
            conn = pymysql.connect(host=url.host, port=url.port, user=url.username, password=url.password,
                                   database="barbican", autocommit=True)
            with conn.cursor() as cur:
                cur.execute("CREATE TABLE bench_filler (id INT PRIMARY KEY, blob_data MEDIUMBLOB)")
                for i in range(0, 8192, 256):
                    cur.executemany("INSERT INTO bench_filler VALUES (%s, %s)",
                                    [(j, os.urandom(4096)) for j in range(i, i + 256)])
            conn.close()
            res["mariadb_db_mib"] = 32.0
            conf = state.path("barbican", ".barbican", "barbican.conf")
            for tool in ("mysqldump", "pymysql"):
                archive = Path(tmp) / f"{tool}.ktbak"
                res[f"mariadb_backup_{tool}_s"] = round(timed(
                    lambda: operations.backup(conf, archive, source, dump_tool=tool)), 3)  # noqa: B023
            res["mariadb_restore_s"] = round(timed(
                lambda: operations.restore(Path(tmp) / "mysqldump.ktbak", conf, source, force=True)), 3)
        finally:
            subprocess.run([*keytools, "sandbox", "down", "--state-dir", str(state.root), "--purge"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return res


def main() -> None:
    out: dict[str, float | int] = {}
    data = os.urandom(256 * MIB)
    key = KeySource("keyfile", os.urandom(32), "bench")

    scratch = Path(tempfile.mkdtemp(prefix="bench-bk-enc-"))
    enc_path = scratch / "enc.ktbak"

    def encrypt() -> None:
        with open(enc_path, "wb") as handle:
            _encrypt(handle)

    def _encrypt(buf) -> None:
        writer = ArchiveWriter(buf, key, {"kind": "bench"})
        view = memoryview(data)
        for i in range(0, len(data), MIB):
            writer.write(view[i:i + MIB])
        writer.close()

    t_enc = timed(encrypt)

    def decrypt() -> None:
        with open(enc_path, "rb") as handle:
            header = read_header(handle, "bench")
            for _ in ArchiveReader(handle, header, key).segments():
                pass

    t_dec = timed(decrypt)
    aead, nonce = AESGCM(os.urandom(32)), os.urandom(12)
    t_raw = timed(lambda: aead.encrypt(nonce, data, None))
    out.update(archive_encrypt_mib_s=round(256 / t_enc), archive_decrypt_mib_s=round(256 / t_dec),
               aesgcm_oneshot_mib_s=round(256 / t_raw))
    del data
    shutil.rmtree(scratch)

    source = KeySource.passphrase("bench passphrase 123", "bench")
    with tempfile.TemporaryDirectory(prefix="bench-bk-") as tmp:
        t = Path(tmp)
        db = t / "barbican.db"
        out["db_rows"] = make_db(db, 64)
        size = db.stat().st_size
        out["db_mib"] = round(size / MIB, 1)
        conf = t / "barbican.conf"
        conf.write_text(f"[database]\nconnection = sqlite:///{db}\n[simple_crypto_plugin]\n"
                        f"kek = {base64.b64encode(os.urandom(32)).decode()}\n")
        out["cp_s"] = round(timed(lambda: shutil.copyfile(db, t / "copy.db")), 3)

        def bare_backup() -> None:
            with sqlite3.connect(db) as src, sqlite3.connect(t / "bare.db") as dst:
                src.backup(dst)

        out["sqlite_backup_api_s"] = round(timed(bare_backup), 3)
        out["keytools_backup_s"] = round(timed(lambda: operations.backup(conf, t / "a.ktbak", source)), 3)
        target = t / "target.conf"
        target.write_text(conf.read_text().replace(str(db), str(t / "restored.db")))
        out["keytools_restore_s"] = round(timed(lambda: operations.restore(t / "a.ktbak", target, source)), 3)
        out["keytools_backup_mib_s"] = round(size / MIB / out["keytools_backup_s"])
        out["keytools_restore_mib_s"] = round(size / MIB / out["keytools_restore_s"])
    from keytools.barbican import archive

    if shutil.which("mariadbd") and "--no-mariadb" not in sys.argv:
        out.update(bench_mariadb(source))
    kdf = archive.new_kdf(source)
    out["scrypt_derive_s"] = round(timed(lambda: archive._derive(source, kdf, "bench")), 3)

    print_values(out, sep="  ")
    write_results("barbican_backup", out)


if __name__ == "__main__":
    main()
