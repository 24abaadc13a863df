"""The one findings model every rule produces and every output format renders.

A ``Rule`` is data (stable id, name, default severity, title, remediation) plus a check function;
a ``Finding`` is one rule firing at one place (node, file, line, option) with actual-vs-expected.
Secret values never enter a Finding: rules put ``secrets.fingerprint(value)`` there instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from config_checks.base import SEVERITY_NAMES, Location, Severity
from keytools import __version__

if TYPE_CHECKING:  # type only: inputs depends on base, never on this module
    from config_checks.inputs import AuditInput

__all__ = ["SEVERITY_NAMES", "Check", "Finding", "Location", "Report", "Rule", "Severity", "rule"]


@dataclass(frozen=True)
class Finding:
    rule_id: str
    rule_name: str
    severity: Severity
    title: str
    location: Location
    message: str
    actual: str | None
    expected: str | None
    remediation: str

    def as_dict(self) -> dict[str, Any]:
        loc = self.location
        return {"rule_id": self.rule_id, "rule": self.rule_name, "severity": self.severity.label,
                "title": self.title, "node": loc.node, "path": loc.path, "relpath": loc.relpath,
                "line": loc.line, "section": loc.section, "option": loc.option,
                "message": self.message, "actual": self.actual, "expected": self.expected,
                "remediation": self.remediation}

    def sort_key(self) -> tuple[Any, ...]:
        loc = self.location
        return (loc.node, loc.relpath, loc.line or 0, -self.severity, self.rule_id)


Check = Callable[["AuditInput"], Iterable[Finding]]


@dataclass(frozen=True)
class Rule:
    """A check with a stable id; ``check`` yields findings built with ``self.finding``."""

    id: str
    name: str
    severity: Severity
    title: str
    remediation: str
    check: Check = field(compare=False, repr=False)

    def finding(self, location: Location, message: str, actual: str | None = None,
                expected: str | None = None, severity: Severity | None = None,
                remediation: str | None = None) -> Finding:
        return Finding(self.id, self.name, severity if severity is not None else self.severity,
                       self.title, location, message, actual, expected, remediation or self.remediation)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "severity": self.severity.label, "title": self.title,
                "remediation": self.remediation}


def rule(rule_id: str, name: str, severity: Severity, title: str, remediation: str) -> Callable[[Check], Rule]:
    """Decorator turning a check function into a Rule (registered in ``config_checks.registry``)."""

    def wrap(check: Check) -> Rule:
        return Rule(rule_id, name, severity, title, " ".join(remediation.split()), check)

    return wrap


@dataclass
class Report:
    """Everything an output format needs: the findings (already filtered) and the run's scope."""

    findings: list[Finding]
    rules: tuple[Rule, ...]
    nodes: list[str]
    files_checked: int
    roots: list[str]
    threshold: Severity = Severity.LOW
    incomplete: bool = False  # some input could not be read (exit 2)

    def counts(self) -> dict[str, int]:
        out = {s.label: 0 for s in reversed(Severity)}
        for f in self.findings:
            out[f.severity.label] += 1
        return out

    def as_dict(self) -> dict[str, Any]:
        """The machine report (``--format json``): the scope, a summary and every finding."""
        return {"tool": "keytools audit", "version": __version__, "roots": self.roots, "nodes": self.nodes,
                "files_checked": self.files_checked, "severity_threshold": self.threshold.label,
                "incomplete": self.incomplete, "summary": self.counts(),
                "findings": [f.as_dict() for f in self.findings]}
