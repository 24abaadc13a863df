"""Where fixed_key is set in discovered config trees, fingerprinted (the value never leaves)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from config_checks import secrets
from config_checks.inputs import AuditInput
from config_checks.rules.keymanager import FIXED_KEY_SECTIONS
from keytools import redaction

OPTION = "fixed_key"


@dataclass(frozen=True)
class Placement:
    """One fixed_key assignment: where it is and its fingerprint (never the value in output)."""

    node: str
    service: str
    path: str
    relpath: str
    section: str
    line: int
    value: str = field(repr=False)

    @property
    def digest(self) -> str:
        return secrets.digest(self.value, as_hex_key=True)

    def as_dict(self) -> dict[str, Any]:
        return {"node": self.node, "service": self.service, "path": self.path, "relpath": self.relpath,
                "section": self.section,
                "line": self.line, "value": "set", "length": len(self.value), "sha256": self.digest}


def placements(audit: AuditInput) -> list[Placement]:
    """Every non-empty fixed_key; each value is registered for redaction as it is found."""
    found: list[Placement] = []
    for cfg in audit.configs():
        if cfg.conf is None:
            continue
        for section in FIXED_KEY_SECTIONS:
            for s in cfg.conf.get_all(section, OPTION):
                if s.value:
                    redaction.register_secret(s.value)
                    found.append(Placement(cfg.node, cfg.service, s.path, cfg.rel(s.path), section, s.line, s.value))
    return found


def distinct_digests(found: Sequence[Placement]) -> dict[str, list[Placement]]:
    groups: dict[str, list[Placement]] = {}
    for p in found:
        groups.setdefault(p.digest, []).append(p)
    return groups
