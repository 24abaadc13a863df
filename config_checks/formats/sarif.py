"""SARIF 2.1.0 (OASIS) for code-scanning dashboards: one run, every rule, one result per finding."""

from __future__ import annotations

import os
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote

from config_checks.model import Finding, Report, Severity
from keytools import __version__, output

SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
LEVELS = {Severity.CRITICAL: "error", Severity.HIGH: "error", Severity.MEDIUM: "warning",
          Severity.LOW: "note", Severity.INFO: "note"}
# GitHub code scanning reads security-severity (0-10) from rule properties.
SECURITY_SEVERITY = {Severity.CRITICAL: "9.5", Severity.HIGH: "7.5", Severity.MEDIUM: "5.0",
                     Severity.LOW: "3.0", Severity.INFO: "1.0"}


def _path_bytes(path: str) -> bytes:
    """A path's bytes: a non-UTF-8 name (read with surrogateescape) gets its own bytes back."""
    try:
        return path.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate no file name decodes to
        return output.clean_text(path).encode("utf-8")


def artifact_uri(path: str) -> str:
    """A file URI (RFC 8089) for ``path``; non-UTF-8 bytes are percent-encoded as themselves."""
    posix = PurePosixPath(path.replace(os.sep, "/"))
    uri = quote(_path_bytes(str(posix)))
    return "file://" + uri if posix.is_absolute() else uri


def result(f: Finding, index: int) -> dict[str, Any]:
    text = f.message
    if f.actual is not None or f.expected is not None:
        text += f" (actual: {f.actual}; expected: {f.expected})"
    physical: dict[str, Any] = {"artifactLocation": {"uri": artifact_uri(f.location.path)}}
    if f.location.line:
        physical["region"] = {"startLine": f.location.line}
    return {
        "ruleId": f.rule_id,
        "ruleIndex": index,
        "level": LEVELS[f.severity],
        "message": {"text": text},
        "locations": [{"physicalLocation": physical}],
        "properties": {"severity": f.severity.label, "node": f.location.node, "section": f.location.section,
                       "option": f.location.option, "remediation": f.remediation},
    }


def document(report: Report) -> dict[str, Any]:
    """The SARIF log as a dict (one run); ``render`` serialises it, the fleet report extends it."""
    index = {r.id: i for i, r in enumerate(report.rules)}
    rules = [{
        "id": r.id,
        "name": r.name,
        "shortDescription": {"text": r.title},
        "fullDescription": {"text": r.title},
        "help": {"text": r.remediation},
        "defaultConfiguration": {"level": LEVELS[r.severity]},
        "properties": {"severity": r.severity.label, "security-severity": SECURITY_SEVERITY[r.severity],
                       "tags": ["security", "openstack", "key-manager"]},
    } for r in report.rules]
    doc = {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "keytools-audit", "version": __version__,
                                "informationUri": "https://opendev.org/openstack/castellan", "rules": rules}},
            "invocations": [{"executionSuccessful": not report.incomplete}],
            "results": [result(f, index.get(f.rule_id, -1)) for f in report.findings],
            "properties": {"nodes": report.nodes, "filesChecked": report.files_checked,
                           "severityThreshold": report.threshold.label},
        }],
    }
    return doc


def render(report: Report, color: bool = False) -> str:
    return output.to_json(document(report))
