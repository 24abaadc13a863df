"""Run the registered rules over discovered config trees and build one Report."""

from __future__ import annotations

import os
from collections.abc import Sequence

from config_checks import registry
from config_checks.inputs import AuditInput, discover
from config_checks.model import Finding, Report, Rule, Severity
from keytools.errors import ConfigError, KeytoolsError, ProblemsFound


def run_rules(audit: AuditInput, rules: Sequence[Rule]) -> list[Finding]:
    findings: list[Finding] = []
    for r in rules:
        findings.extend(r.check(audit))
    findings.sort(key=Finding.sort_key)
    return findings


def audit_roots(roots: Sequence[str | os.PathLike[str]], per_node: bool = False,
                threshold: Severity = Severity.LOW, rules: Sequence[Rule] | None = None,
                node: str | None = None) -> Report:
    """Audit ``roots``; the report holds findings at or above ``threshold`` only (``node``: see
    ``inputs.discover``)."""
    chosen = tuple(rules) if rules is not None else registry.RULES
    audit = discover(roots, per_node=per_node, node=node)
    findings = run_rules(audit, chosen)
    incomplete = any(cfg.unreadable for cfg in audit.configs())
    return Report(findings=[f for f in findings if f.severity >= threshold], rules=chosen,
                  nodes=[n.name for n in audit.nodes], files_checked=audit.files_checked,
                  roots=[str(r) for r in roots], threshold=threshold, incomplete=incomplete)


def failure(report: Report) -> KeytoolsError | None:
    """The error the audit ends with after its report, or None: ConfigError (exit 2) when some
    input could not be read, ProblemsFound (exit 1) for findings at or above the threshold."""
    if report.incomplete:
        unreadable = [f for f in report.findings if f.rule_id == "KT001"]
        return ConfigError(f"audit incomplete: {unreadable[0].location.path if unreadable else 'a file'} "
                           f"could not be read ({len(unreadable)} file(s) in all, see KT001)",
                           "Fix the files or their permissions and rerun")
    if report.findings:
        counts = ", ".join(f"{n} {label}" for label, n in report.counts().items() if n)
        return ProblemsFound(f"audit: {len(report.findings)} finding(s) at or above {report.threshold.label} "
                             f"({counts})")
    return None


def exit_code(report: Report) -> int:
    """2 when some input could not be read, 1 when findings at/above the threshold remain, else 0."""
    error = failure(report)
    return error.exit_code if error else 0
