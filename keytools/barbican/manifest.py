"""The archive's public manifest: what the backup holds, never a secret.

It sits in the archive header, readable without the passphrase (``keytools barbican inspect``)
and authenticated by every encrypted segment. It names the KEK only by fingerprint.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import socket
from typing import Any

from keytools import __version__
from keytools.barbican import store_config
from keytools.barbican.archive import ArchiveError
from keytools.barbican.barbican_conf import BarbicanConfig
from keytools.barbican.db_base import Snapshot

KIND = "keytools-barbican-backup"
REQUIRED = ("kind", "created_at", "db_engine", "kek_fingerprint", "counts")


def barbican_version() -> str | None:
    try:
        return importlib.metadata.version("barbican")
    except importlib.metadata.PackageNotFoundError:
        return None


def build(conf: BarbicanConfig, engine: str, database: str, snap: Snapshot) -> dict[str, Any]:
    assert conf.kek_fingerprint
    return {
        "kind": KIND,
        "created_at": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "created_by": f"keytools {__version__}",
        "host": socket.gethostname(),
        "barbican_version": barbican_version(),
        "alembic_version": snap.stats.alembic_version,
        "db_engine": engine,
        "db_dump": snap.method,
        "database": database,
        "config": str(conf.path),
        "counts": dict(snap.stats.counts),
        "content_digest": snap.stats.digest,
        "kek_fingerprint": conf.kek_fingerprint,  # of the ordered KEK list (one KEK: of that KEK)
        "kek_fingerprints": conf.kek_fingerprints,  # one per KEK, primary first
        **store_config.hsm_manifest(conf.path),  # PKCS#11: the MKEK stays in the HSM, not here
    }


def validate(manifest: dict[str, Any], path: str) -> dict[str, Any]:
    missing = [k for k in REQUIRED if k not in manifest]
    if manifest.get("kind") != KIND or missing:
        raise ArchiveError(f"{path}: the archive's manifest is incomplete ({', '.join(missing) or 'kind'})",
                           "Use an intact backup written by 'keytools barbican backup'")
    return manifest
