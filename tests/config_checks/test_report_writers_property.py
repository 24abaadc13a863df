"""No report writer can produce a report that does not parse, whatever strings it is given
(issue 21): control characters, lone surrogates (a non-UTF-8 node or directory name read with
surrogateescape), U+FFFE, NaN and Infinity. JSON and SARIF parse with a strict parser (no
NaN/Infinity) and SARIF matches the schema subset; JUnit is well-formed XML in valid UTF-8; every
format, text included, encodes to UTF-8. Plus the audit, end to end, on such a tree.
"""

from __future__ import annotations

import json
import math
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config_checks import formats, registry
from config_checks.base import Location, Severity
from config_checks.formats import json_format, junit, sarif, text
from config_checks.model import Finding, Report
from keytools import output
from tests.fuzz.contract import strict_json
from tests.helpers.cli import invoke

SCHEMA = json.loads(Path(__file__).with_name("sarif-2.1.0-subset.schema.json").read_text())
# every code point, surrogates and control characters included
ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=20)
HOSTILE = st.sampled_from(["\x00", "\x01", "\x1b[31m", "\udcff", "\ud800", "\ufffe", "\uffff", "]]>", "&amp;",
                           "<x/>", "\r\n", '"', "\\", "\U0001f511"])
STRINGS = st.one_of(ANY_TEXT, HOSTILE, st.lists(st.one_of(ANY_TEXT, HOSTILE), max_size=4).map("".join))
MAYBE = st.one_of(st.none(), STRINGS)
RULES = registry.select(None, [])
WRITERS = {"json": json_format.render, "sarif": sarif.render, "junit": junit.render, "text": text.render}


@st.composite
def findings(draw) -> Finding:
    location = Location(draw(STRINGS), draw(STRINGS), draw(STRINGS),
                        draw(st.one_of(st.none(), st.integers(1, 10**6))), draw(MAYBE), draw(MAYBE))
    rule = draw(st.sampled_from(RULES))
    return Finding(draw(st.one_of(st.just(rule.id), STRINGS)), draw(STRINGS), draw(st.sampled_from(list(Severity))),
                   draw(STRINGS), location, draw(STRINGS), draw(MAYBE), draw(MAYBE), draw(STRINGS))


REPORTS = st.builds(Report, st.lists(findings(), max_size=4), st.just(RULES), st.lists(STRINGS, max_size=3),
                    st.integers(0, 10**6), st.lists(STRINGS, max_size=3), st.sampled_from(list(Severity)),
                    st.booleans())


def parses(fmt: str, rendered: str, report: Report) -> None:
    data = rendered.encode("utf-8")  # raises on a lone surrogate
    if fmt in ("json", "sarif"):
        doc = strict_json(data.decode("utf-8"))
        if fmt == "sarif":
            jsonschema.Draft4Validator(SCHEMA).validate(doc)
            assert len(doc["runs"][0]["results"]) == len(report.findings)
        else:
            assert len(doc["findings"]) == len(report.findings)
    elif fmt == "junit":
        root = ET.fromstring(data)
        assert int(root.get("failures")) == len(report.findings)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(REPORTS)
def test_no_writer_produces_an_unparseable_report(report):
    for fmt, render in WRITERS.items():
        parses(fmt, render(report), report)  # each writer on its own
        parses(fmt, formats.render(report, fmt), report)  # and as the CLI renders (redacted)


JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), STRINGS),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(STRINGS, inner, max_size=4),
                            st.dictionaries(st.floats(), inner, max_size=2)),
    max_leaves=20)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(JSON_VALUES)
def test_output_to_json_is_always_strict_json(value):
    rendered = output.to_json(value)
    rendered.encode("utf-8")
    back = strict_json(rendered)
    if isinstance(value, float) and not math.isfinite(value):
        assert back in ("NaN", "Infinity", "-Infinity")


def test_non_finite_numbers_and_surrogates_become_text():
    doc = json.loads(output.to_json({"a": math.nan, "b": [math.inf, -math.inf], "n\udcff": "x\ud800"}))
    assert doc == {"a": "NaN", "b": ["Infinity", "-Infinity"], "n\\xff": "x\\ud800"}


def _tree(base: Path, node: bytes, value: bytes) -> bytes:
    """An /etc tree for one node (its directory name as bytes) whose cinder.conf holds ``value``."""
    root = os.path.join(os.fsencode(base), b"root-" + node)
    cinder = os.path.join(root, node, b"etc", b"cinder")
    os.makedirs(cinder)
    with open(os.path.join(cinder, b"cinder.conf"), "wb") as handle:
        handle.write(b"[key_manager]\nbackend = " + value + b"\nfixed_key = 0123\n")
    return root


@pytest.mark.parametrize("node, value", [
    (b"ctl-\xff\xfe", b"castellan.key_manager.conf_key_mgr.ConfKeyManager"),  # not UTF-8: JUnit, SARIF
    (b"ctl-0", b"barbican\x01\x02\x1b[31m\x7f"),  # control characters: raw into JUnit before
])
def test_audit_of_a_hostile_tree_writes_reports_that_parse(tmp_path, node, value):
    root = os.fsdecode(_tree(tmp_path, node, value))
    for fmt in ("json", "sarif", "junit", "text"):
        result = invoke(["audit", "--per-node", "-f", fmt, "--severity", "info", root])
        assert result.exit_code == 1, result.output
        if fmt != "text":
            out = tmp_path / f"report.{fmt}"
            written = invoke(["audit", "--per-node", "-f", fmt, "-o", str(out), root])
            assert written.exit_code == 1, written.output
            for rendered in (result.stdout, out.read_bytes().decode("utf-8")):
                if fmt == "junit":
                    ET.fromstring(rendered.encode("utf-8"))
                else:
                    strict_json(rendered)
    sarif_doc = json.loads(invoke(["audit", "--per-node", "-f", "sarif", root]).stdout)
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in sarif_doc["runs"][0]["results"]}
    assert all(u.startswith("file://") for u in uris)
    if b"\xff" in node:  # the name's own bytes, percent-encoded
        assert any("ctl-%FF%FE" in u for u in uris)
