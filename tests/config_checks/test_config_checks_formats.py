"""Every output format renders the same findings: SARIF validates, JUnit parses, secrets never appear."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

from config_checks import formats
from config_checks.audit import audit_roots
from config_checks.model import Severity
from tests.config_checks.cc_treegen import PROBLEMS, NodeSpec, build
from tests.helpers.cli import invoke

SCHEMA = Path(__file__).with_name("sarif-2.1.0-subset.schema.json")
EVERYTHING = [
    NodeSpec("ctl-0", "controller", set(PROBLEMS) - {"kek_missing", "fixed_key_keymgr", "swift_no_encryption",
                                                     "rbd", "plain_http", "auth_endpoint_missing"}),
    NodeSpec("ctl-1", "controller", {"fixed_key_keymgr", "kek_missing", "swift_no_encryption", "plain_http"}),
    NodeSpec("cmp-0", "compute", {"fixed_key", "no_signature_verification", "auth_endpoint_missing"}),
    NodeSpec("cmp-1", "compute", {"fixed_key_mismatch", "rbd"}),
]


@pytest.fixture(scope="module")
def noisy(tmp_path_factory):
    base = tmp_path_factory.mktemp("noisy")
    tree = build(base, EVERYTHING)
    return tree, audit_roots([base], per_node=True, threshold=Severity.INFO)


def test_noisy_tree_fires_every_generated_problem(noisy):
    _, report = noisy
    fired = {f.rule_id for f in report.findings}
    assert set(PROBLEMS.values()) <= fired


@pytest.mark.parametrize("fmt", sorted(formats.RENDERERS))
def test_no_secret_in_any_format(noisy, fmt):
    tree, report = noisy
    text = formats.render(report, fmt, color=(fmt == "text"))
    for secret in tree.secrets:
        assert secret not in text, (fmt, secret)
        assert secret.upper() not in text
    assert "sha256:" in text


@pytest.mark.parametrize("fmt", sorted(formats.RENDERERS))
def test_no_secret_through_the_cli(noisy, fmt):
    tree, _ = noisy
    res = invoke(["audit", "--per-node", str(tree.base), "--format", fmt, "--severity", "info"])
    assert res.exit_code == 1
    for secret in tree.secrets:
        assert secret not in res.stdout + res.stderr
    res = invoke(["fixed-key", "show", "--per-node", str(tree.base), "--format", "json" if fmt == "json" else "table"])
    assert res.exit_code == 1  # values differ across nodes
    for secret in tree.secrets:
        assert secret not in res.stdout + res.stderr


def test_masking_does_not_rely_on_redaction(noisy):
    """Rules never put a value into a finding: rendering without the redaction filter is clean too."""
    tree, report = noisy
    raw = "".join(formats.RENDERERS[f](report, False) for f in formats.RENDERERS)
    for secret in tree.secrets:
        assert secret not in raw


def test_sarif_validates_against_schema(noisy):
    _, report = noisy
    doc = json.loads(formats.render(report, "sarif"))
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft4Validator.check_schema(schema)
    jsonschema.Draft4Validator(schema, format_checker=jsonschema.FormatChecker()).validate(doc)
    run = doc["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert len(run["results"]) == len(report.findings)
    for result in run["results"]:  # spec 3.27.6/3.27.7: ruleIndex designates the rule with that id
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["level"] in ("error", "warning", "note")
        uri = result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        assert uri.startswith("file:///")


def test_sarif_schema_rejects_broken_documents():
    """The fixture schema really checks something (guards against a vacuous schema)."""
    validator = jsonschema.Draft4Validator(json.loads(SCHEMA.read_text()))
    good = {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}}, "results": [
        {"message": {"text": "m"}, "level": "error", "locations": [
            {"physicalLocation": {"artifactLocation": {"uri": "a.conf"}, "region": {"startLine": 1}}}]}]}]}
    validator.validate(good)
    bad_cases = [
        {"version": "2.0.0", "runs": []},
        {"runs": []},
        {"version": "2.1.0", "runs": [{"tool": {"driver": {}}}]},
        {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}}, "results": [{"level": "error"}]}]},
        {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}}, "results": [
            {"message": {"text": "m"}, "level": "fatal"}]}]},
        {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}}, "results": [
            {"message": {"text": "m"}, "locations": [{"physicalLocation": {"region": {"startLine": 0}}}]}]}]},
        {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}}, "bogus": 1}]},
    ]
    for bad in bad_cases:
        assert not validator.is_valid(bad), bad


def test_junit_parses_and_counts(noisy):
    _, report = noisy
    root = ET.fromstring(formats.render(report, "junit"))
    assert root.tag == "testsuites"
    cases = root.findall("./testsuite/testcase")
    failures = root.findall("./testsuite/testcase/failure")
    assert len(cases) == len(failures) == len(report.findings) == int(root.get("failures"))
    assert int(root.get("tests")) == len(cases)
    for suite in root.findall("testsuite"):
        assert int(suite.get("tests")) == len(suite.findall("testcase"))
    assert {f.get("type") for f in failures} <= {"critical", "high", "medium", "low", "info"}


def test_junit_clean_run_has_one_passing_case(tmp_path):
    build(tmp_path, [NodeSpec("ctl-0")])
    res = invoke(["audit", "--per-node", str(tmp_path), "--format", "junit"])
    assert res.exit_code == 0
    root = ET.fromstring(res.stdout)
    assert root.get("failures") == "0" and len(root.findall("./testsuite/testcase")) == 1


def test_json_report_shape(noisy):
    _, report = noisy
    doc = json.loads(formats.render(report, "json"))
    assert doc["files_checked"] == report.files_checked and doc["nodes"] == ["cmp-0", "cmp-1", "ctl-0", "ctl-1"]
    assert sum(doc["summary"].values()) == len(doc["findings"])
    first = doc["findings"][0]
    assert {"rule_id", "severity", "node", "path", "line", "actual", "expected", "remediation"} <= set(first)


def test_text_groups_by_node_then_file_and_colours_only_on_request(noisy):
    _, report = noisy
    plain = formats.render(report, "text", color=False)
    assert "\x1b[" not in plain
    node_lines = [ln for ln in plain.splitlines() if ln.startswith("node ")]
    assert node_lines == ["node cmp-0", "node cmp-1", "node ctl-0", "node ctl-1"]
    assert "  cinder/etc/cinder/cinder.conf" in plain.splitlines()
    assert "\x1b[" in formats.render(report, "text", color=True)


def test_cli_text_has_no_colour_when_not_a_tty(tmp_path):
    build(tmp_path, [NodeSpec("ctl-0", "controller", {"fixed_key"})])
    res = invoke(["audit", "--per-node", str(tmp_path)])
    assert res.exit_code == 1 and "\x1b[" not in res.stdout and "KT101" in res.stdout
    assert res.stderr.startswith("keytools: error: audit: 3 finding(s)")


def test_output_file_is_written(tmp_path):
    build(tmp_path / "t", [NodeSpec("ctl-0", "controller", {"kek_sample"})])
    out = tmp_path / "report.sarif"
    res = invoke(["audit", "--per-node", str(tmp_path / "t"), "-f", "sarif", "-o", str(out)])
    assert res.exit_code == 1 and res.stdout == ""
    assert json.loads(out.read_text())["runs"][0]["results"][0]["ruleId"] == "KT402"


def test_redact_bulk_matches_redact():
    from keytools import redaction

    values = ["abcdefg", "0123456789abcdef", "0123456789", "pass:word/with+chars", "s" * 64]
    for v in values:
        redaction.register_secret(v)
    text = ("x 0123456789abcdef y abcdefg z 0123456789 q pass:word/with+chars " + "s" * 70 + " 01234567 end") * 3
    assert redaction.redact_bulk(text) == redaction.redact(text)
    assert "0123456789" not in redaction.redact_bulk(text) and "abcdefg" not in redaction.redact_bulk(text)
