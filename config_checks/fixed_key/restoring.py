"""``fixed-key restore``: put each backed-up value back, byte-identical where the file allows."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config_checks import secrets
from config_checks.fixed_key.backup import load_backups
from config_checks.fixed_key.crudini import crudini_set
from config_checks.fixed_key.placements import OPTION
from config_checks.rules.keymanager import FIXED_KEY_SECTIONS
from keytools import oslo_ini
from keytools.errors import ConfigError
from keytools.fileutil import atomic_write, remove_stale_temps


@dataclass
class Restored:
    path: str
    action: str  # restored | re-inserted | already present
    sha256: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "action": self.action, "sha256": self.sha256}


def restore(backup_dir: str, dry_run: bool = False) -> list[Restored]:
    """Put each backed-up value back: byte-identical when the file is as retire left it, otherwise
    re-inserted with crudini --set (the rest of the file keeps its later edits)."""
    by_path: dict[str, list[dict[str, Any]]] = {}
    for doc in load_backups(backup_dir):
        by_path.setdefault(doc["path"], []).append(doc)
    done: list[Restored] = []
    for path, docs in by_path.items():
        try:
            current = Path(path).read_bytes()
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read ({exc.strerror})", "Restore the config file first") from None
        digest = hashlib.sha256(current).hexdigest()
        docs.sort(key=lambda d: d["retired_at"], reverse=True)
        match_orig = next((d for d in docs if d["original_sha256"] == digest), None)
        match_retired = next((d for d in docs if d["retired_sha256"] == digest), None)
        if match_orig is not None:
            done.append(Restored(path, "already present", match_orig["entries"][0]["sha256"]))
            continue
        if match_retired is not None:
            if not dry_run:
                atomic_write(path, base64.b64decode(match_retired["original_b64"]), mode=None)
                remove_stale_temps(Path(path))
            done.append(Restored(path, "restored" if not dry_run else "would restore",
                                 match_retired["entries"][0]["sha256"]))
            continue
        doc = docs[0]
        conf = oslo_ini.parse_text(oslo_ini.decode(current), path)
        if any(conf.get(sec, OPTION) for sec in FIXED_KEY_SECTIONS):
            done.append(Restored(path, "already present", secrets.digest(
                next(conf.get(s, OPTION) for s in FIXED_KEY_SECTIONS if conf.get(s, OPTION)) or "", True)))
            continue
        new = current
        for entry in doc["entries"]:
            section = entry.get("raw_section") or entry["section"]
            new = crudini_set(new, section, entry["value"], Path(path).name)
        if not dry_run:
            atomic_write(path, new, mode=None)
        done.append(Restored(path, "re-inserted" if not dry_run else "would re-insert", doc["entries"][0]["sha256"]))
    return done
