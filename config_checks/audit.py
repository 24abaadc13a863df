"""Run the registered rules over discovered config trees and build one Report."""

from __future__ import annotations

import os
from collections.abc import Sequence

from config_checks import registry
from config_checks.inputs import AuditInput, discover
from config_checks.model import Finding, Report, Rule, Severity


def run_rules(audit: AuditInput, rules: Sequence[Rule]) -> list[Finding]:
    findings: list[Finding] = []
    for r in rules:
        findings.extend(r.check(audit))
    findings.sort(key=Finding.sort_key)
    return findings


def audit_roots(roots: Sequence[str | os.PathLike[str]], per_node: bool = False,
                threshold: Severity = Severity.LOW, rules: Sequence[Rule] | None = None) -> Report:
    """Audit ``roots``; the report holds findings at or above ``threshold`` only."""
    chosen = tuple(rules) if rules is not None else registry.RULES
    audit = discover(roots, per_node=per_node)
    findings = run_rules(audit, chosen)
    incomplete = any(cfg.unreadable for cfg in audit.configs())
    return Report(findings=[f for f in findings if f.severity >= threshold], rules=chosen,
                  nodes=[n.name for n in audit.nodes], files_checked=audit.files_checked,
                  roots=[str(r) for r in roots], threshold=threshold, incomplete=incomplete)


def exit_code(report: Report) -> int:
    """2 when some input could not be read, 1 when findings at/above the threshold remain, else 0."""
    if report.incomplete:
        return 2
    return 1 if report.findings else 0
