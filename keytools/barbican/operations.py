"""Backup, restore and inspect: the library behind ``keytools barbican``.

Restore checks everything before it changes anything: the passphrase, every segment of the archive,
the dump itself, the KEK against the target's barbican.conf, the target's schema and emptiness.
Then it writes the KEK (if asked) and replaces the database crash-safely; a rerun after a kill
either finds the old state (and restores) or the restored one (and says so).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from keytools import redaction, untrusted_json
from keytools.barbican import barbican_conf, faults, manifest as manifest_mod
from keytools.barbican.archive import (ArchiveError, ArchiveHeader, ArchiveReader, ArchiveWriter,
                                              KeySource, read_header)
from keytools.barbican.database import open_database
from keytools.barbican.db_base import Database, Stats
from keytools.errors import ConfigError, StateError, UsageError
from keytools.fileutil import atomic_writer, open_user_file
from keytools.logs import log_event

LOG = logging.getLogger("keytools.barbican")


def backup(config: str | os.PathLike[str], out: str | os.PathLike[str], source: KeySource,
           dump_tool: str = "auto", overwrite: bool = False) -> dict[str, Any]:
    """Write one encrypted archive: KEK + consistent database dump + public manifest."""
    started = time.monotonic()
    conf = barbican_conf.load(config)
    db = open_database(conf.connection, dump_tool)
    target = Path(out)
    if target.exists() and not overwrite:
        raise UsageError(f"--out {target} already exists", "Choose a new file name, or pass --overwrite")
    if not target.parent.is_dir():
        raise UsageError(f"--out {target}: directory {target.parent} does not exist", "Create it first")
    with db.snapshot() as snap:
        manifest = manifest_mod.build(conf, db.engine, db.display, snap)
        with atomic_writer(target) as handle:
            writer = ArchiveWriter(handle, source, manifest)
            record = {"keks": list(conf.keks), "kek_fingerprint": conf.kek_fingerprint}
            writer.write_record(json.dumps(record).encode("utf-8"))
            handle.flush()
            faults.pause(faults.step_delay(faults.BACKUP_ENV))
            snap.write(writer)  # type: ignore[arg-type]  # ArchiveWriter has write()
            writer.close()
    size = target.stat().st_size
    log_event(LOG, logging.INFO, f"Barbican backup written to {target}", "barbican.backup",
              archive=str(target), bytes=size, engine=db.engine)
    return {"archive": str(target), "bytes": size, "dump_bytes": writer.bytes_in,
            "seconds": round(time.monotonic() - started, 3), **manifest}


def inspect(archive: str | os.PathLike[str], source: KeySource | None = None) -> dict[str, Any]:
    """The manifest; with a key source, also verify every segment (nothing is written)."""
    path = str(archive)
    with _open(path) as handle:
        header = read_header(handle, path)
        manifest = manifest_mod.validate(header.manifest, path)
        result = {"archive": path, **manifest, "verified": False}
        if source is not None:
            segments = ArchiveReader(handle, header, source).segments()
            first = next(segments)
            _check_record(first, manifest, path)
            total = len(first) + sum(len(seg) for seg in segments)
            result.update(verified=True, plaintext_bytes=total)
    return result


@contextlib.contextmanager
def _open(path: str) -> Iterator[BinaryIO]:
    handle = open_user_file(path, "", "Check the path and permissions", path_first=True,
                            missing_hint="Give the path of a backup archive")
    with handle:
        yield handle


def _check_record(segment: bytes, manifest: dict[str, Any], path: str) -> list[str]:
    """The secret record (segment 0): returns the KEK list after matching it with the manifest."""
    try:
        keks = untrusted_json.loads(segment, "secret record", max_bytes=len(segment))["keks"]
        if not isinstance(keks, list) or not keks or not all(isinstance(k, str) and k for k in keks):
            raise TypeError
    except (UsageError, KeyError, TypeError):
        raise ArchiveError(f"{path}: the archive's secret record is damaged", "Use another backup") from None
    for kek in keks:
        redaction.register_secret(kek)
    if barbican_conf.kek_fingerprint(keks) != manifest["kek_fingerprint"]:
        raise ArchiveError(f"{path}: the KEK inside does not match the manifest's fingerprint",
                           "Use another backup")
    return keks


@dataclass
class Extracted:
    header: ArchiveHeader
    manifest: dict[str, Any]
    keks: list[str]
    dump: Path


def extract(path: str, source: KeySource, workdir: Path, engine: str | None = None) -> Extracted:
    """Authenticate and decrypt the whole archive into ``workdir`` (0700) before any change."""
    with _open(path) as handle:
        header = read_header(handle, path)
        manifest = manifest_mod.validate(header.manifest, path)
        if engine and manifest["db_engine"] != engine:
            raise UsageError(f"{path} holds a {manifest['db_engine']} database, but the target is {engine}",
                             "Restore into a Barbican on the same database engine")
        reader = ArchiveReader(handle, header, source)
        segments = reader.segments()
        keks = _check_record(next(segments), manifest, path)
        dump = workdir / "dump"
        fd = os.open(dump, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            for segment in segments:
                out.write(segment)
    return Extracted(header, manifest, keks, dump)


def _schema_problem(target: Stats, dumped: Stats) -> str | None:
    if not target.exists:
        return None
    if target.alembic_version != dumped.alembic_version:
        return (f"the target's schema is at Alembic version {target.alembic_version or 'none'}, "
                f"the archive's at {dumped.alembic_version or 'none'}")
    for table, columns in dumped.tables.items():
        have = target.tables.get(table)
        if have is not None and sorted(have) != sorted(columns):
            return f"table {table} has other columns in the target than in the archive"
    return None


def restore(archive: str | os.PathLike[str], config: str | os.PathLike[str], source: KeySource,
            force: bool = False, restore_kek: bool = False, check_only: bool = False,
            progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Restore the database (and with ``restore_kek`` the KEK) from ``archive`` into the target
    named by ``config``. Raises before any change when a check fails."""
    started = time.monotonic()
    path = str(archive)
    conf = barbican_conf.load(config, need_kek=False)
    db: Database = open_database(conf.connection)
    with tempfile.TemporaryDirectory(prefix="keytools-restore-") as tmp:
        data = extract(path, source, Path(tmp), engine=db.engine)
        manifest = data.manifest
        kek_action = _kek_decision(conf, data.keks, restore_kek)
        dumped = db.check_dump(data.dump)
        target = db.stats()
        problem = _schema_problem(target, dumped)
        if problem and not target.empty:
            raise StateError(f"cannot restore into {db.display}: {problem}",
                             "Restore into an empty database (drop and recreate it), then run "
                             "'barbican-manage db upgrade' if the Barbican version is newer")
        if problem and db.engine == "mysql":
            raise StateError(f"cannot restore into {db.display}: {problem}",
                             "Drop and recreate the (empty) database, then rerun the restore")
        db_action = "restore"
        if not target.empty:
            if target.digest and target.digest == manifest.get("content_digest"):
                db_action = "already restored"
            elif not force:
                counts = ", ".join(f"{n} {t}" for t, n in target.counts.items())
                raise StateError(f"the target database {db.display} is not empty ({counts})",
                                 "Pass --force to replace its content with the archive's")
        report: dict[str, Any] = {
            "archive": path, "config": str(conf.path), "database": db.display, "engine": db.engine,
            "created_at": manifest.get("created_at"), "kek_fingerprint": manifest["kek_fingerprint"],
            "kek": kek_action, "database_action": db_action, "counts": manifest.get("counts"),
            "checked_only": check_only,
        }
        if check_only:
            report["seconds"] = round(time.monotonic() - started, 3)
            return report
        if kek_action == "write":
            # the file that sets it wins: barbican.conf.d/*.conf may override barbican.conf
            kek_file = conf.kek_files[0] if conf.kek_files else conf.path
            backup_file = barbican_conf.write_keks(kek_file, data.keks)
            report.update(kek="written", kek_file=str(kek_file), config_backup=str(backup_file))
            log_event(LOG, logging.INFO, f"KEK written to {kek_file} (old file kept as {backup_file})",
                      "barbican.restore.kek", config=str(kek_file), backup=str(backup_file))
        if db_action == "restore":
            db.restore(data.dump, progress)
            report["database_action"] = "restored"
            log_event(LOG, logging.INFO, f"Barbican database {db.display} restored from {path}",
                      "barbican.restore.database", archive=path, database=db.display)
    after = db.stats()
    report["counts"] = after.counts
    report["restart_barbican"] = report["kek"] == "written"
    report["seconds"] = round(time.monotonic() - started, 3)
    return report


def _kek_decision(conf: barbican_conf.BarbicanConfig, archive_keks: list[str], restore_kek: bool) -> str:
    """"unchanged" when the target's KEKs include every KEK of the archive (they decrypt all it
    holds, even after a later rotation), "write" with --restore-kek, else refuse."""
    wanted = barbican_conf.kek_fingerprint(archive_keks)
    if not conf.keks:
        if not restore_kek:
            raise ConfigError(f"{conf.path}: [simple_crypto_plugin] kek is not set",
                              "Pass --restore-kek to write the archive's KEK into it")
    elif set(map(barbican_conf.kek_fingerprint, archive_keks)) <= set(conf.kek_fingerprints):
        return "unchanged"
    elif not restore_kek:
        raise StateError(f"the KEK in {conf.path} ({conf.kek_fingerprint}) is not the archive's ({wanted}): "
                         "the restored secrets would be unreadable",
                         "Pass --restore-kek to write the archive's KEK (the old file is kept), "
                         "or use the matching barbican.conf")
    if len(conf.kek_files) > 1:
        raise StateError(f"[simple_crypto_plugin] kek is set in several files "
                         f"({', '.join(map(str, conf.kek_files))}): keytools will not rewrite them all",
                         "Keep the kek lines in one file, then rerun with --restore-kek")
    return "write"
