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
