"""Cinder's database: its schema, the all-zeros key id and what ``fixed-key`` asks of it.

``sync_schema`` creates the schema with Cinder's own migrations (``cinder-manage db sync``) for
the sandbox's cinder-api, the migrate tests and benchmarks: the schema keytools reads and writes
is always the one the installed Cinder creates, never a hand-written imitation. The rows on the
all-zeros id are read by ``keytools.cinder_rows.CinderRows`` (imported lazily: importing this
module for ``FIXED_KEY_ID`` does not load SQLAlchemy).
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from keytools.errors import ServiceUnavailable
from keytools.tools import find_tool


def cinder_manage() -> str:
    return find_tool("cinder-manage", "Install the sandbox extra: pip install 'keytools[sandbox]'")


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
    from keytools.cinder_rows import CinderRows

    rows = CinderRows(db_url)
    try:
        return rows.global_counts()
    finally:
        rows.dispose()


class CinderReferences:
    """Cinder's side of the fixed_key inventory (``keytools.fixed_key_refs.ReferenceSource``).

    Volumes, snapshots and backups on the all-zeros id per host and project (snapshots have no
    host: their volume's), plus backups that *may* depend on fixed_key: a NULL
    ``encryption_key_id`` (made before the column existed, the id lives only in the backup's
    stored metadata) on a volume whose type has an encryption spec."""

    service = "cinder"

    def __init__(self, db_url: str) -> None:
        from keytools.cinder_rows import CinderRows

        self.rows = CinderRows(db_url)

    def describe(self) -> str:
        return self.rows.describe()

    def dispose(self) -> None:
        self.rows.dispose()

    def references(self) -> list:
        from keytools.fixed_key_refs import Reference

        self.rows.check(("encryption",))
        groups = {"volumes": self.rows.breakdown("volumes"), "snapshots": self.rows.snapshot_breakdown(),
                  "backups": self.rows.breakdown("backups"), "backups_may_depend": self.rows.backups_may_depend()}
        return [Reference("cinder", kind, g["host"], g["project"], int(g["rows"]), certain=kind != "backups_may_depend")
                for kind, found in groups.items() for g in found]
