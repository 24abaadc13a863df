"""Types shared by the audit's inputs and its findings model (no imports from config_checks).

``inputs`` (discovering and parsing config trees) and ``model`` (rules, findings, report) both
need ``Location``; keeping it here lets each depend on this module instead of on the other.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Severity(enum.IntEnum):
    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        return cls[text.strip().upper()]


SEVERITY_NAMES = tuple(s.label for s in Severity)


@dataclass(frozen=True)
class Location:
    """Where a finding points: the node, the file (as found and relative to the node's tree)."""

    node: str
    path: str
    relpath: str
    line: int | None = None
    section: str | None = None
    option: str | None = None

    @property
    def where(self) -> str:
        text = self.relpath + (f":{self.line}" if self.line else "")
        if self.section:
            text += f" [{self.section}]" + (f" {self.option}" if self.option else "")
        return text
