"""Human report: grouped by node, then file; colour only when stdout is a terminal."""

from __future__ import annotations

from itertools import groupby

import click

from config_checks.model import Finding, Report, Severity
from keytools import output

COLORS = {Severity.CRITICAL: "magenta", Severity.HIGH: "red", Severity.MEDIUM: "yellow",
          Severity.LOW: "cyan", Severity.INFO: "white"}


def _sev(sev: Severity, color: bool) -> str:
    label = f"{sev.label.upper():<8}"
    return click.style(label, fg=COLORS[sev], bold=sev >= Severity.HIGH) if color else label


def _finding(f: Finding, color: bool, seen: set[str]) -> list[str]:
    loc = f.location
    where = f"line {loc.line}" if loc.line else "file"
    if loc.section:
        where += f" [{loc.section}]" + (f" {loc.option}" if loc.option else "")
    lines = [f"    {_sev(f.severity, color)} {f.rule_id} {f.rule_name}  {where}",
             f"             {f.message}"]
    if f.actual is not None or f.expected is not None:
        lines.append(f"             actual: {f.actual}   expected: {f.expected}")
    key = f"{f.rule_id}\0{f.remediation}"
    lines.append(f"             fix: {f.remediation}" if key not in seen else f"             fix: as for {f.rule_id} above")
    seen.add(key)
    return lines


def render(report: Report, color: bool = False) -> str:
    out: list[str] = []
    seen: set[str] = set()
    for node, by_node in groupby(report.findings, key=lambda f: f.location.node):
        out.append(click.style(f"node {node}", bold=True) if color else f"node {node}")
        for rel, by_file in groupby(by_node, key=lambda f: f.location.relpath):
            out.append(f"  {rel}")
            for f in by_file:
                out.extend(_finding(f, color, seen))
        out.append("")
    counts = ", ".join(f"{n} {label}" for label, n in report.counts().items() if n)
    summary = (f"{len(report.findings)} finding(s) at or above {report.threshold.label}: {counts}"
               if report.findings else f"no findings at or above {report.threshold.label}")
    out.append(f"{summary} ({report.files_checked} files on {len(report.nodes)} node(s) checked)")
    if report.incomplete:
        out.append("audit incomplete: some files could not be read (see KT001)")
    return output.clean_text("\n".join(out))
