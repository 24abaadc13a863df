"""Render a report in every format and prove each one parses (JSON, SARIF against the schema,
JUnit with xml.etree); shared by the tests that feed the audit hostile or real-world trees."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema

from config_checks import formats
from config_checks.model import Report

SCHEMA = Path(__file__).with_name("sarif-2.1.0-subset.schema.json")


def render_and_parse(report: Report) -> dict[str, str]:
    """Every format's text; AssertionError/ValueError when one does not parse or validate."""
    out = {fmt: formats.render(report, fmt) for fmt in sorted(formats.RENDERERS)}
    doc = json.loads(out["json"])
    assert len(doc["findings"]) == len(report.findings)
    sarif = json.loads(out["sarif"])
    jsonschema.Draft4Validator(json.loads(SCHEMA.read_text()), format_checker=jsonschema.FormatChecker()) \
        .validate(sarif)
    assert len(sarif["runs"][0]["results"]) == len(report.findings)
    root = ET.fromstring(out["junit"])
    assert int(root.get("failures")) == len(report.findings)
    return out
