"""One interface over Barbican's database engines: dump a consistent snapshot, describe a target,
restore crash-safely. The engine comes from ``[database] connection`` (SQLAlchemy URL); the
shared types live in db_base.py."""

from __future__ import annotations

from keytools.barbican.db_base import Database
from keytools.errors import UsageError


def open_database(url: str, dump_tool: str = "auto") -> Database:
    """The engine behind a SQLAlchemy URL; unsupported engines are refused (exit 2)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise UsageError("[database] connection is not a valid database URL",
                         "Fix barbican.conf: e.g. mysql+pymysql://barbican:PW@host/barbican") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        from keytools.barbican.db_sqlite import SqliteDatabase

        return SqliteDatabase(parsed)
    if backend in ("mysql", "mariadb"):
        from keytools.barbican.db_mysql import MysqlDatabase

        return MysqlDatabase(parsed, dump_tool)
    raise UsageError(f"database engine {backend!r} is not supported for backups",
                     "keytools backs up Barbican on MySQL/MariaDB or SQLite; use the engine's own "
                     "tools together with a copy of the KEK")
