"""Input problems: files that cannot be read or parsed (never a crash, always file and line)."""

from __future__ import annotations

from collections.abc import Iterator

from config_checks.inputs import AuditInput
from config_checks.model import Finding, Severity, rule


@rule("KT001", "config-unreadable", Severity.HIGH,
      "Config file cannot be read, so it was not audited",
      """Fix the file (restore it from the deployment, or repoint the symlink) and make it readable
      by the user running the audit; then rerun the audit.""")
def unreadable(audit: AuditInput) -> Iterator[Finding]:
    for cfg in audit.configs():
        for path, reason in cfg.unreadable:
            yield unreadable.finding(cfg.loc(path=path), f"{cfg.service} config file is unreadable: {reason}",
                                     actual=reason, expected="a readable text config file")


@rule("KT002", "config-syntax", Severity.MEDIUM,
      "Config file has a line oslo.config cannot parse",
      """Fix or remove the line: oslo.config refuses to parse the file and the service will not
      start with it.""")
def syntax(audit: AuditInput) -> Iterator[Finding]:
    for cfg in audit.configs():
        if cfg.conf is None:
            continue
        for problem in cfg.conf.problems:
            yield syntax.finding(cfg.loc(path=problem.path, line=problem.line), problem.message,
                                 actual=problem.message, expected="section header, option = value, or comment")
