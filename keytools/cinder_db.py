"""Create a Cinder database schema with Cinder's own migrations (``cinder-manage db sync``).

Used by the sandbox's cinder-api, the migrate tests and benchmarks: the schema keytools reads and
writes is always the one the installed Cinder creates, never a hand-written imitation.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from keytools.errors import ServiceUnavailable, UsageError


def cinder_manage() -> str:
    exe = Path(sys.executable).with_name("cinder-manage")
    found = str(exe) if exe.exists() else shutil.which("cinder-manage")
    if not found:
        raise UsageError("cinder-manage is not installed", "Install the sandbox extra: pip install 'keytools[sandbox]'")
    return found


def sync_schema(db_url: str) -> None:
    """Run ``cinder-manage db sync`` against ``db_url`` (idempotent; about 2.5 s on SQLite)."""
    with tempfile.TemporaryDirectory(prefix="keytools-cinder-") as tmp:
        conf = Path(tmp, "cinder.conf")
        conf.write_text(f"[DEFAULT]\nstate_path = {tmp}\n[database]\nconnection = {db_url}\n")
        conf.chmod(0o600)
        result = subprocess.run([cinder_manage(), "--config-file", str(conf), "db", "sync"],
                                capture_output=True, text=True)
    if result.returncode != 0:
        tail = " | ".join(result.stderr.strip().splitlines()[-3:])
        raise ServiceUnavailable(f"cinder-manage db sync failed: {tail[:400]}")


# ConfKeyManager's key id for every volume, snapshot and backup (cinder.keymgr.migration).
FIXED_KEY_ID = "00000000-0000-0000-0000-000000000000"
FIXED_KEY_TABLES = ("volumes", "snapshots", "backups")


def count_fixed_key_rows(db_url: str) -> dict[str, int]:
    """Non-deleted rows per table still on the all-zeros key id (cinder's exact test: string
    equality, ``deleted`` false; a NULL ``deleted`` is invisible to cinder too)."""
    import sqlalchemy as sa

    from keytools.errors import ServiceUnavailable as _Unavailable

    try:
        engine = sa.create_engine(db_url)
    except Exception as exc:
        raise UsageError(f"database URL not usable: {type(exc).__name__}",
                         "Give a SQLAlchemy URL such as mysql+pymysql://user:pw@host/cinder") from None
    counts: dict[str, int] = {}
    try:
        with engine.connect() as conn:
            for table in FIXED_KEY_TABLES:
                counts[table] = conn.execute(
                    sa.text(f"SELECT COUNT(*) FROM {table} WHERE encryption_key_id = :zeros "  # noqa: S608
                            "AND deleted = :false"), {"zeros": FIXED_KEY_ID, "false": False}).scalar_one()
    except sa.exc.OperationalError as exc:
        raise _Unavailable(f"cannot read the Cinder database: {exc.orig.__class__.__name__}",
                           "Check [database] connection and that the database is up") from None
    except sa.exc.ProgrammingError:
        raise UsageError("the database is not a Cinder database (tables volumes/snapshots/backups missing)",
                         "Point --db-url at Cinder's database") from None
    finally:
        engine.dispose()
    return counts


class CinderReferences:
    """Cinder's side of the fixed_key inventory (``keytools.fixed_key_refs.ReferenceSource``).

    Volumes, snapshots and backups on the all-zeros id per host and project (snapshots have no
    host: their volume's), plus backups that *may* depend on fixed_key: a NULL
    ``encryption_key_id`` (made before the column existed, the id lives only in the backup's
    stored metadata) on a volume whose type has an encryption spec."""

    service = "cinder"

    def __init__(self, db_url: str) -> None:
        import sqlalchemy as sa

        try:
            self.url = sa.engine.make_url(db_url)
            self.engine = sa.create_engine(self.url)
        except Exception as exc:
            raise UsageError(f"Cinder database URL not usable: {type(exc).__name__}",
                             "Give a SQLAlchemy URL such as mysql+pymysql://user:pw@host/cinder") from None

    def describe(self) -> str:
        return self.url.render_as_string(hide_password=True)

    def dispose(self) -> None:
        self.engine.dispose()

    def references(self) -> list:
        import sqlalchemy as sa

        from keytools.fixed_key_refs import Reference

        queries = {
            "volumes": "SELECT host AS loc, project_id, COUNT(*) FROM volumes WHERE encryption_key_id = :z "
                       "AND deleted = :f GROUP BY host, project_id",
            "snapshots": "SELECT v.host AS loc, s.project_id, COUNT(*) FROM snapshots s LEFT JOIN volumes v "
                         "ON v.id = s.volume_id WHERE s.encryption_key_id = :z AND s.deleted = :f "
                         "GROUP BY v.host, s.project_id",
            "backups": "SELECT host AS loc, project_id, COUNT(*) FROM backups WHERE encryption_key_id = :z "
                       "AND deleted = :f GROUP BY host, project_id",
            "backups_may_depend": "SELECT b.host AS loc, b.project_id, COUNT(*) FROM backups b JOIN volumes v "
                                  "ON v.id = b.volume_id WHERE b.encryption_key_id IS NULL AND b.deleted = :f "
                                  "AND v.volume_type_id IN (SELECT volume_type_id FROM encryption) "
                                  "GROUP BY b.host, b.project_id",
        }
        found = []
        try:
            with self.engine.connect() as conn:
                names = set(sa.inspect(conn).get_table_names())
                missing = [t for t in (*FIXED_KEY_TABLES, "encryption") if t not in names]
                if missing:
                    raise UsageError(f"{self.describe()} is not a Cinder database (no table {', '.join(missing)})",
                                     "Point --db-url at Cinder's database")
                for kind, sql in queries.items():
                    for loc, project, n in conn.execute(sa.text(sql), {"z": FIXED_KEY_ID, "f": False}):
                        found.append(Reference("cinder", kind, loc, project, int(n),
                                               certain=kind != "backups_may_depend"))
        except sa.exc.OperationalError as exc:
            raise ServiceUnavailable(f"cannot read the Cinder database {self.describe()}: "
                                     f"{' '.join(str(exc.orig).split())[:160]}",
                                     "Check [database] connection and that the database is up") from None
        except sa.exc.ProgrammingError:
            raise UsageError(f"{self.describe()} is not a Cinder database", "Point --db-url at Cinder's database") from None
        return found
