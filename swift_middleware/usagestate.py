"""Where ``keytools swift key-usage`` records its last complete run, so the keymaster and ``swift
check`` can warn about old root secrets nobody has looked at.

The file is ``keytools-key-usage.json`` in the state directory: the keymaster filter's
``key_usage_state_dir`` option if set, else the directory of ``keymaster_config_path``, else the
directory of proxy-server.conf. It holds counts per secret id only (no object names, no keys).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from keytools.fileutil import atomic_write

FILE = "keytools-key-usage.json"
PARTIAL = "keytools-key-usage.partial.json"
OPTION = "key_usage_state_dir"


def state_dir(filter_conf: Mapping[str, Any], override: str | None = None) -> Path:
    """The directory for key-usage state, from an explicit option or the keymaster's config."""
    chosen = override or filter_conf.get(OPTION) or filter_conf.get("keymaster_config_path") \
        or str(filter_conf.get("__file__", "proxy-server.conf"))
    path = Path(str(chosen))
    return path if (override or filter_conf.get(OPTION)) else path.parent


def read(directory: Path) -> dict[str, Any] | None:
    try:
        return json.loads((directory / FILE).read_text())
    except (OSError, ValueError):
        return None


def write(directory: Path, doc: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / FILE
    atomic_write(path, json.dumps(doc, indent=1, sort_keys=True) + "\n", mode=0o600)
    return path


def stale_key_warnings(filter_conf: Mapping[str, Any], secret_ids: list[str | None],
                       active: str | None) -> list[str]:
    """One warning per configured, non-active secret id when key-usage never ran (or still found
    objects under it at its last run)."""
    directory = state_dir(filter_conf)
    doc = read(directory)
    warnings = []
    for sid in secret_ids:
        if sid == active:
            continue
        option = f"key_id_{sid}" if sid else "key_id"
        if doc is None:
            warnings.append(f"{option} is configured but not active and 'keytools swift key-usage' "
                            f"has never run (no {directory / FILE}): nobody knows whether objects still "
                            "need it; run key-usage, then reencrypt and retire-key")
            continue
        found = next((k for k in doc.get("keys", []) if (k.get("secret_id") or "") == (sid or "")), None)
        if found and found.get("objects", 0):
            warnings.append(f"{option} is not active; key-usage at {doc.get('finished_at', '?')} found "
                            f"{found['objects']} object(s) under it: run 'keytools swift reencrypt "
                            f"--from-key-id {option}'")
    return warnings


def remove_partial(directory: Path) -> None:
    try:
        os.unlink(directory / PARTIAL)
    except FileNotFoundError:
        pass
