"""The 0600 backup written before a file is retired, and reading a directory of them back."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from config_checks.fixed_key.crudini import raw_sections
from config_checks.fixed_key.placements import OPTION
from config_checks.fixed_key.plan import FileChange
from keytools import oslo_ini, redaction
from keytools.errors import ConfigError, UsageError
from keytools.fileutil import atomic_write
from keytools.fixed_key_refs import Inventory

BACKUP_VERSION = 1


def backup_name(path: str, digest: str) -> str:
    return hashlib.sha256(os.path.abspath(path).encode()).hexdigest()[:16] + "-" + digest.split(":")[-1] + ".json"


def write_backup(backup_dir: Path, change: FileChange, inventory: Inventory | None = None) -> Path:
    st = os.stat(change.path)
    doc = {
        "version": BACKUP_VERSION,
        "path": os.path.abspath(change.path),
        "node": change.node,
        "service": change.service,
        "retired_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "entries": [{"section": p.section,
                     "raw_section": (raw_sections(oslo_ini.decode(change.old), p.section) or [p.section])[0],
                     "line": p.line, "option": OPTION, "value": p.value, "length": len(p.value), "sha256": p.digest}
                    for p in change.placements],
        "original_sha256": hashlib.sha256(change.old).hexdigest(),
        "retired_sha256": hashlib.sha256(change.new).hexdigest(),
        "original_b64": base64.b64encode(change.old).decode("ascii"),
        "mode": f"{st.st_mode & 0o7777:04o}",
    }
    if inventory is not None:
        doc["inventory"] = {"seen": inventory.seen, "per_service": inventory.totals(),
                            "blind": [b.as_dict() for b in inventory.blind]}
        doc["ignored_services"] = inventory.ignored
    target = backup_dir / backup_name(change.path, change.placements[0].digest)
    atomic_write(target, json.dumps(doc, indent=2) + "\n", mode=0o600)
    return target


def load_backups(backup_dir: str) -> list[dict[str, Any]]:
    bdir = Path(backup_dir)
    if not bdir.is_dir():
        raise UsageError(f"{bdir}: no such backup directory", "Give the --backup-dir used with retire")
    docs = []
    for f in sorted(bdir.glob("*.json")):
        try:
            doc = json.loads(f.read_text())
            if doc.get("version") != BACKUP_VERSION or "path" not in doc:
                raise ValueError("not a keytools fixed_key backup")
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{f}: unreadable backup ({exc})", "Restore the file from your safe copy") from None
        for e in doc["entries"]:
            redaction.register_secret(e["value"])
        doc["_file"] = str(f)
        docs.append(doc)
    if not docs:
        raise UsageError(f"{bdir}: holds no fixed_key backups", "Give the --backup-dir used with retire")
    return docs
