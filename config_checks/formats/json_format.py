"""Machine report: one JSON document with the scope, a summary and every finding."""

from __future__ import annotations

import json

from config_checks.model import Report


def render(report: Report, color: bool = False) -> str:
    return json.dumps(report.as_dict(), indent=2)
