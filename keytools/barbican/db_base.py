"""What every Barbican database engine shares: the ``Database`` interface, ``Stats``, ``Snapshot``
and the table lists. The engines (db_sqlite, db_mysql) import this, never the factory in
database.py, so there is no import cycle."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol


# The objects a restore brings back; a target holding any of them is "not empty".
DATA_TABLES = ("secrets", "orders", "containers")
# Counted too (the drill compares them through the API), but they do not make a target "not empty".
CONSUMER_TABLES = {"container_consumers": "container_consumer_metadata",
                   "secret_consumers": "secret_consumer_metadata"}


@dataclass
class Stats:
    """What a database holds, as far as a restore decision is concerned."""

    exists: bool  # any Barbican table present
    alembic_version: str | None
    counts: dict[str, int] = field(default_factory=dict)  # active (not soft-deleted) rows
    total_rows: int = 0  # rows in DATA_TABLES, deleted included
    digest: str | None = None  # ids + deleted flags of DATA_TABLES: "is this the same content?"
    tables: dict[str, list[str]] = field(default_factory=dict)  # table -> column names

    @property
    def empty(self) -> bool:
        return self.total_rows == 0


def build_stats(tables: dict[str, list[str]], query: Callable[[str], list[tuple[Any, ...]]],
                quote: Callable[[str], str]) -> Stats:
    """Stats from a table layout and a ``query(sql) -> rows`` of either engine (one code path, so
    SQLite and MariaDB restores decide the same way)."""
    stats = Stats(exists=bool(set(tables) & {"secrets", "alembic_version"}), alembic_version=None,
                  tables=tables)
    if "alembic_version" in tables:
        row = query("SELECT version_num FROM alembic_version")
        stats.alembic_version = row[0][0] if row else None
    rows: dict[str, list[tuple[Any, Any]]] = {}
    for table in DATA_TABLES:
        if table not in tables:
            stats.counts[table] = 0
            continue
        rows[table] = [tuple(r) for r in query(f"SELECT id, deleted FROM {quote(table)}")]  # noqa: S608
        stats.counts[table] = sum(1 for _, deleted in rows[table] if not deleted)
        stats.total_rows += len(rows[table])
    for name, table in CONSUMER_TABLES.items():
        if table in tables:
            found = query(f"SELECT COUNT(*) FROM {quote(table)} WHERE deleted = 0")  # noqa: S608
            stats.counts[name] = int(found[0][0]) if found else 0
    stats.digest = content_digest(rows)
    return stats


def content_digest(rows_by_table: dict[str, Iterable[tuple[Any, Any]]]) -> str:
    """SHA-256 over the sorted (table, id, deleted) triples: equal digests mean a rerun of a
    restore that already committed (nothing left to do)."""
    h = hashlib.sha256()
    for table in DATA_TABLES:
        for row_id, deleted in sorted((str(i), int(bool(d))) for i, d in rows_by_table.get(table, ())):
            h.update(f"{table}\0{row_id}\0{deleted}\n".encode())
    return "sha256:" + h.hexdigest()


@dataclass
class Snapshot:
    stats: Stats
    method: str  # "sqlite-backup-api", "mariadb-dump", "mysqldump", "pymysql"
    write: Callable[[BinaryIO], None]  # streams the dump into the archive writer


class Database(Protocol):
    engine: str
    display: str

    @property
    def files_dir(self) -> Path | None:
        """The directory of the database's own files (SQLite), None for a server (MySQL)."""
        ...

    def stats(self) -> Stats: ...

    def snapshot(self) -> AbstractContextManager[Snapshot]:
        """A consistent snapshot: its stats first (for the manifest), then its dump bytes."""
        ...

    def check_dump(self, dump: Path) -> Stats:
        """Validate a decrypted dump before anything is touched; returns the dump's stats."""
        ...

    def restore(self, dump: Path, progress: Callable[[str], None] | None = None) -> None: ...
