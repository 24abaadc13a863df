"""Output formats: each is a small renderer of one ``Report`` into text (pip-audit's _format shape).

Every renderer's output passes through ``keytools.redaction`` once more in ``render``: rules never
put secret values into findings, and this is the second line of defence.
"""

from __future__ import annotations

from collections.abc import Callable

from config_checks.formats import json_format, junit, sarif, text
from config_checks.model import Report
from keytools import redaction

Renderer = Callable[[Report, bool], str]

RENDERERS: dict[str, Renderer] = {
    "text": text.render,
    "json": json_format.render,
    "sarif": sarif.render,
    "junit": junit.render,
}


def render(report: Report, fmt: str, color: bool = False) -> str:
    return redaction.redact_bulk(RENDERERS[fmt](report, color))
