"""Barbican on SQLite: dump and restore through SQLite's online backup API.

The backup API copies a consistent snapshot while Barbican keeps running, and restoring into the
live file is one write transaction on the target (rollback journal): a restore killed midway
leaves a hot journal that SQLite rolls back on the next open, so the target is the old database
until the copy commits, and Barbican's open connections read the new pages afterwards.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from keytools.barbican import faults
from keytools.barbican.archive import ArchiveError
from keytools.barbican.db_base import DATA_TABLES, Snapshot, Stats, build_stats
from keytools.errors import ServiceUnavailable, UsageError
from keytools.fileutil import private_workdir

CHUNK = 1 << 20
FAULT_PAGES_PER_STEP = 8  # small steps only under fault injection (a test kills a restore midway)


def stats_of(conn: sqlite3.Connection) -> Stats:
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' "
                                        "AND name NOT LIKE 'sqlite_%'")]
    tables = {n: [c[1] for c in conn.execute(f'PRAGMA table_info("{n}")')] for n in names}
    return build_stats(tables, lambda sql: conn.execute(sql).fetchall(), lambda name: f'"{name}"')


class SqliteDatabase:
    engine = "sqlite"

    def __init__(self, url: Any) -> None:
        if not url.database or url.database == ":memory:":
            raise UsageError("[database] connection names an in-memory SQLite database",
                             "Nothing to back up: point it at Barbican's database file")
        self.path = Path(url.database)
        self.display = f"sqlite:///{self.path}"

    @property
    def files_dir(self) -> Path:
        """Where this database's file lives: copies of it are made there, never in /tmp."""
        return self.path.parent

    @contextlib.contextmanager
    def _connect(self, path: Path, readonly: bool = False) -> Iterator[sqlite3.Connection]:
        try:
            if readonly:
                conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=60)
            else:
                conn = sqlite3.connect(path, timeout=60)
        except sqlite3.Error as exc:
            raise ServiceUnavailable(f"cannot open the SQLite database {path}: {exc}",
                                     "Check the path in [database] connection and its permissions") from None
        try:
            yield conn
        finally:
            conn.close()

    def _require_file(self) -> None:
        if not self.path.is_file():
            raise UsageError(f"the SQLite database {self.path} does not exist",
                             "Check [database] connection in barbican.conf")

    def stats(self) -> Stats:
        if not self.path.exists():
            return Stats(exists=False, alembic_version=None, counts=dict.fromkeys(DATA_TABLES, 0))
        with self._connect(self.path, readonly=True) as conn:
            try:
                return stats_of(conn)
            except sqlite3.DatabaseError as exc:
                raise ServiceUnavailable(f"cannot read the SQLite database {self.path}: {exc}",
                                         "Check that it is Barbican's database") from None

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[Snapshot]:
        self._require_file()
        # The copy is as sensitive as the database: beside it (0700), removed after, or on the next run.
        with private_workdir(self.files_dir, "backup") as tmp:
            copy = tmp / "barbican.db"
            with self._connect(self.path, readonly=True) as src, self._connect(copy) as dst:
                try:
                    src.backup(dst)
                    stats = stats_of(dst)
                except sqlite3.DatabaseError as exc:
                    raise ServiceUnavailable(f"cannot back up the SQLite database {self.path}: {exc}",
                                             "Check that it is Barbican's database") from None
            if not stats.exists:
                raise UsageError(f"{self.path} holds no Barbican tables",
                                 "Check [database] connection in barbican.conf")

            def write(out: BinaryIO) -> None:
                with open(copy, "rb") as handle:
                    shutil.copyfileobj(handle, out, CHUNK)

            yield Snapshot(stats, "sqlite-backup-api", write)

    def check_dump(self, dump: Path) -> Stats:
        with self._connect(dump, readonly=True) as conn:
            try:
                result = conn.execute("PRAGMA integrity_check").fetchone()
                if not result or result[0] != "ok":
                    raise ArchiveError(f"the database inside the archive fails SQLite's integrity check "
                                       f"({result[0] if result else '?'})", "Use another backup")
                return stats_of(conn)
            except sqlite3.DatabaseError as exc:
                raise ArchiveError(f"the database inside the archive is not readable: {exc}",
                                   "Use another backup") from None

    def restore(self, dump: Path, progress: Callable[[str], None] | None = None) -> None:
        if not self.path.parent.is_dir():
            raise UsageError(f"the directory of the SQLite database {self.path} does not exist",
                             "Create it (owned by the Barbican user) or fix [database] connection")
        if not self.path.exists():
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
            parent = self.path.parent.stat()
            if os.geteuid() == 0:  # run as root: the new file belongs to Barbican's directory owner
                os.chown(self.path, parent.st_uid, parent.st_gid)
        delay = faults.step_delay()

        def step(status: int, remaining: int, total: int) -> None:
            if progress:
                progress(f"{total - remaining}/{total} pages")
            faults.pause(delay)

        with self._connect(dump, readonly=True) as src, self._connect(self.path) as dst:
            try:
                # Page by page only when a fault test asks for it; one step is the fastest.
                src.backup(dst, pages=FAULT_PAGES_PER_STEP if delay else -1, progress=step)
            except sqlite3.OperationalError as exc:
                raise ServiceUnavailable(f"cannot write the SQLite database {self.path}: {exc}",
                                         "Another process holds a lock on it: retry, or stop Barbican "
                                         "for the restore") from None
