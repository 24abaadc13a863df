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
