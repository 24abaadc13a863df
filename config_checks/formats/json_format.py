"""Machine report: one JSON document with the scope, a summary and every finding."""

from __future__ import annotations

import json

from config_checks.model import Report
from keytools import __version__


def render(report: Report, color: bool = False) -> str:
    doc = {
        "tool": "keytools audit",
        "version": __version__,
        "roots": report.roots,
        "nodes": report.nodes,
        "files_checked": report.files_checked,
        "severity_threshold": report.threshold.label,
        "incomplete": report.incomplete,
        "summary": report.counts(),
        "findings": [f.to_dict() for f in report.findings],
    }
    return json.dumps(doc, indent=2)
