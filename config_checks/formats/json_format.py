"""Machine report: one JSON document with the scope, a summary and every finding."""

from __future__ import annotations

from config_checks.model import Report
from keytools import output


def render(report: Report, color: bool = False) -> str:
    return output.to_json(report.as_dict())
