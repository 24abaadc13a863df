"""``fixed-key show``: every fixed_key and whether the values match (by fingerprint)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from config_checks.fixed_key.placements import OPTION, Placement, distinct_digests, placements
from config_checks.inputs import discover
from keytools.errors import ConfigError, KeytoolsError, ProblemsFound


@dataclass
class ShowResult:
    """What ``show`` found: the placements, and the files it could not read (path, why)."""

    placements: list[Placement] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)

    @property
    def distinct_values(self) -> int:
        return len(distinct_digests(self.placements))

    @property
    def match(self) -> bool:
        """Not set anywhere, or one value everywhere."""
        return self.distinct_values <= 1

    def as_dict(self) -> dict[str, Any]:
        return {"match": self.match, "distinct_values": self.distinct_values,
                "placements": [p.as_dict() for p in self.placements]}


def show(roots: Sequence[str], per_node: bool = False, node: str | None = None) -> ShowResult:
    """Every fixed_key under ``roots`` and the files that could not be read."""
    audit = discover(roots, per_node=per_node, node=node)
    unreadable = [(str(p), why) for cfg in audit.configs() for p, why in cfg.unreadable]
    return ShowResult(placements(audit), unreadable)


def show_failure(result: ShowResult) -> KeytoolsError | None:
    """The error ``show`` ends with after its report, or None: ConfigError (exit 2) when a file
    could not be read (the list may be incomplete), ProblemsFound (exit 1) when values differ."""
    if result.unreadable:
        path, why = result.unreadable[0]
        return ConfigError(f"{path}: {why} ({len(result.unreadable)} unreadable file(s)); "
                           "the list above may be incomplete", "Fix the file or its permissions and rerun")
    if not result.match:
        return ProblemsFound(f"{OPTION} values differ ({result.distinct_values} distinct values)",
                             "Make every node agree on the value the volumes were encrypted with")
    return None
