"""Input problems: files that cannot be read or parsed (never a crash, always file and line)."""

from __future__ import annotations

from collections.abc import Iterator

from config_checks.inputs import AuditInput
from config_checks.model import Finding, Severity, rule
from keytools.oslo_ini import Problem


@rule("KT001", "config-unreadable", Severity.HIGH,
      "Config file cannot be read, so it was not audited",
      """Fix the file (restore it from the deployment, or repoint the symlink) and make it readable
      by the user running the audit; then rerun the audit.""")
def unreadable(audit: AuditInput) -> Iterator[Finding]:
    for cfg in audit.configs():
        for path, reason in cfg.unreadable:
            yield unreadable.finding(cfg.loc(path=path), f"{cfg.service} config file is unreadable: {reason}",
                                     actual=reason, expected="a readable text config file")


SHOWN_LINES = 3


def _safe(message: str) -> str:
    """A malformed header's text is quoted in the message; cut it at the first ``=``/``:`` so a
    value written on that line (``[db]password=...``) never reaches the report."""
    cut = min((i for i in (message.find("="), message.find(":")) if i >= 0), default=-1)
    return message if cut < 0 else message[:cut + 1] + "...'"


@rule("KT002", "config-syntax", Severity.MEDIUM,
      "Config file has a line oslo.config cannot parse",
      """Fix or remove the line: oslo.config refuses to parse the file and the service will not
      start with it.""")
def syntax(audit: AuditInput) -> Iterator[Finding]:
    """One finding per file (at its first bad line) naming the first few lines, not one per line:
    a file mangled by a template engine has hundreds."""
    for cfg in audit.configs():
        if cfg.conf is None:
            continue
        by_file: dict[str, list[Problem]] = {}
        for problem in cfg.conf.problems:
            by_file.setdefault(problem.path, []).append(problem)
        for path, problems in by_file.items():
            problems.sort(key=lambda p: p.line)
            first = problems[:SHOWN_LINES]
            more = len(problems) - len(first)
            lines = ", ".join(str(p.line) for p in first) + (f" and {more} more" if more else "")
            if len(problems) == 1:
                message = _safe(problems[0].message)
            else:
                message = (f"{len(problems)} lines oslo.config cannot parse: "
                           + "; ".join(f"line {p.line}: {_safe(p.message)}" for p in first)
                           + (f"; and {more} more" if more else ""))
            yield syntax.finding(cfg.loc(path=path, line=first[0].line), message,
                                 actual=f"line{'s' if len(problems) > 1 else ''} {lines}",
                                 expected="section header, option = value, or comment")
