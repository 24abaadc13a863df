"""Read-only SQL against Barbican's database, for either engine (the KEK checks need kek_data rows)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from typing import Any

from keytools.barbican.database import open_database
from keytools.errors import ServiceUnavailable

Query = Callable[[str], list[tuple[Any, ...]]]


@contextlib.contextmanager
def reader(connection: str) -> Iterator[Query]:
    db = open_database(connection)
    if db.engine == "sqlite":
        path = db.path  # type: ignore[attr-defined]
        try:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=60)
            conn.execute("SELECT 1 FROM sqlite_master").fetchall()
        except sqlite3.Error as exc:
            raise ServiceUnavailable(f"cannot open the SQLite database {path}: {exc}",
                                     "Check [database] connection in barbican.conf") from None
        try:
            yield lambda sql: conn.execute(sql).fetchall()
        finally:
            conn.close()
        return
    conn = db._connect()  # type: ignore[attr-defined]

    def query(sql: str) -> list[tuple[Any, ...]]:
        with conn.cursor() as cur:
            cur.execute(sql)
            return list(cur.fetchall())

    try:
        yield query
    finally:
        conn.close()
