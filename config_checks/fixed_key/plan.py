"""Plan a retire: check the preconditions on the files and compute every edit; nothing is written."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from config_checks.fixed_key.crudini import crudini_delete, raw_sections, verify_only_deleted
from config_checks.fixed_key.placements import OPTION, Placement, distinct_digests, placements
from config_checks.inputs import ServiceConfig, discover
from keytools import oslo_ini, redaction
from keytools.errors import ConfigError, StateError

_FIXED_KEY_LINE = re.compile(r"^([-+ ]\s*fixed_key\s*[:=])(.*?)(\r?\n?)$")


def _mask_fixed_key_line(line: str) -> str:
    """A diff line setting fixed_key keeps its option name, never its value (masked by position:
    a short value such as ``00`` is not registered for substring redaction)."""
    if line.startswith(("---", "+++")):
        return line
    m = _FIXED_KEY_LINE.match(line)
    if not m or not m.group(2).strip():
        return line
    value = m.group(2)
    return f"{m.group(1)}{value[:len(value) - len(value.lstrip())]}{redaction.MASK}{m.group(3)}"


@dataclass
class FileChange:
    path: str
    node: str
    service: str
    placements: list[Placement]
    old: bytes = field(repr=False)
    new: bytes = field(repr=False)
    raw_sections: list[str]
    backup: str | None = None

    def diff(self) -> str:
        """Unified diff with the secret masked (fixed_key is registered for redaction)."""
        lines = difflib.unified_diff(oslo_ini.decode(self.old).splitlines(keepends=True),
                                     oslo_ini.decode(self.new).splitlines(keepends=True),
                                     fromfile=f"a{self.path}" if self.path.startswith("/") else f"a/{self.path}",
                                     tofile=f"b{self.path}" if self.path.startswith("/") else f"b/{self.path}")
        return redaction.redact("".join(_mask_fixed_key_line(line) for line in lines))

    def as_dict(self, dry_run: bool = False) -> dict[str, Any]:
        return {"path": self.path, "node": self.node, "service": self.service,
                "action": "would retire" if dry_run else "retired",
                "sections": sorted({p.section for p in self.placements}),
                "sha256": sorted({p.digest for p in self.placements}), "backup": self.backup}


def plan_retire(roots: Sequence[str], per_node: bool = False,
                seen_files: list[str] | None = None, node: str | None = None) -> list[FileChange]:
    """Check the preconditions on the files and compute every edit; nothing is written.
    ``seen_files`` (if given) receives every config file found."""
    audit = discover(roots, per_node=per_node, node=node)
    if seen_files is not None:
        seen_files.extend(str(f) for cfg in audit.configs() for f in cfg.files)
    unreadable = [(str(p), why) for cfg in audit.configs() for p, why in cfg.unreadable]
    if unreadable:
        path, why = unreadable[0]
        raise ConfigError(f"{path}: {why}; cannot tell whether it holds {OPTION}",
                          "Fix or remove the file (keytools audit lists all such files) and rerun")
    found = placements(audit)
    groups = distinct_digests(found)
    if len(groups) > 1:
        summary = "; ".join(f"{d} in {', '.join(f'{p.service}@{p.node}' for p in ps[:3])}"
                            for d, ps in groups.items())
        raise StateError(f"{OPTION} values differ ({len(groups)} distinct: {summary}); refusing to retire",
                         "Find the value the volumes were encrypted with, make every node agree, migrate, "
                         "then rerun (keytools fixed-key show)")
    by_file: dict[str, list[Placement]] = {}
    service_of: dict[str, ServiceConfig] = {}
    for p in found:
        by_file.setdefault(p.path, []).append(p)
    for cfg in audit.configs():
        for f in cfg.files:
            service_of.setdefault(str(f), cfg)
    changes: list[FileChange] = []
    for path, ps in by_file.items():
        old = Path(path).read_bytes()
        text = oslo_ini.decode(old)
        raws = [raw for sec in sorted({p.section for p in ps}) for raw in raw_sections(text, sec)]
        new = crudini_delete(old, raws, Path(path).name)
        verify_only_deleted(path, old, new)
        cfg = service_of[path]
        changes.append(FileChange(path, cfg.node, cfg.service, ps, old, new, raws))
    return changes
