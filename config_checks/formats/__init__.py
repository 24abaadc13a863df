"""Output formats: each is a small renderer of one ``Report`` into text (pip-audit's _format shape).

Rules never put secret values into findings (they are masked by position, see
``config_checks.secrets.shown``). As a second line of defence every string of the report goes
through ``keytools.redaction`` *before* it is serialised, so masking can never cut through JSON,
SARIF or XML syntax: every format always parses.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from config_checks.formats import json_format, junit, sarif, text
from config_checks.model import Finding, Report
from keytools import redaction

Renderer = Callable[[Report, bool], str]

RENDERERS: dict[str, Renderer] = {
    "text": text.render,
    "json": json_format.render,
    "sarif": sarif.render,
    "junit": junit.render,
}


def _redact_finding(f: Finding) -> Finding:
    loc = f.location
    location = dataclasses.replace(loc, **{k: redaction.redact(v) for k in ("node", "path", "relpath", "section",
                                                                             "option")
                                            if isinstance(v := getattr(loc, k), str)})
    return dataclasses.replace(f, location=location, **{
        k: redaction.redact(v) for k in ("title", "message", "actual", "expected", "remediation")
        if isinstance(v := getattr(f, k), str)})


def redacted(report: Report) -> Report:
    """The report with every string field passed through the redaction filter."""
    return dataclasses.replace(report, findings=[_redact_finding(f) for f in report.findings],
                               nodes=[redaction.redact(n) for n in report.nodes],
                               roots=[redaction.redact(r) for r in report.roots])


def render(report: Report, fmt: str, color: bool = False) -> str:
    return RENDERERS[fmt](redacted(report), color)
