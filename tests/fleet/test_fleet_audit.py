"""The fleet audit playbook on a real 5-host netns fleet: every node audits its own tree, the
controller collects the trees into a 0700 directory, runs the cross-node rules once, writes one
SARIF run (one invocation per node, a uriBaseId per node) and one JUnit suite per node, and
removes the copies. node4 holds another fixed_key (the cross-node rule), node5 is down."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import jsonschema
import pytest

from tests.fleet.fleet_helpers import start_fleet
from tests.helpers.netns_fleet import missing_tools
from tests.helpers.paths import REPO

pytestmark = pytest.mark.skipif(bool(missing_tools()), reason=f"netns fleet needs: {', '.join(missing_tools())}")

SCHEMA = json.loads((REPO / "tests/config_checks/sarif-2.1.0-subset.schema.json").read_text())


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    fleet, trees = start_fleet(tmp_path_factory.mktemp("audit-trees"), 5)
    try:
        trees.give_other_fixed_key("node4", fleet.host("node4").root)
        fleet.kill_host(fleet.host("node5"))
        reports = fleet.base / "reports"
        reports.mkdir()
        tmp = fleet.base / "controller-tmp"
        tmp.mkdir()
        env_tmp = {"TMPDIR": str(tmp)}
        run = fleet.ansible("keytools.openstack.fleet_audit", "-e", f"keytools_report_dir={reports}",
                            extra_env=env_tmp)
        yield run, reports, tmp, trees
    finally:
        fleet.stop()
        assert fleet.leftovers() == []


def test_one_sarif_run_one_invocation_per_node(audited):
    run, reports, _tmp, trees = audited
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    text = (reports / "keytools-fleet.sarif").read_text()
    for value in trees.secrets:
        assert value not in text and value not in run.stdout
    doc = json.loads(text)
    jsonschema.validate(doc, SCHEMA)
    assert len(doc["runs"]) == 1
    sarif_run = doc["runs"][0]
    inv = {i["properties"]["node"]: i for i in sarif_run["invocations"]}
    assert sorted(inv) == ["node1", "node2", "node3", "node4", "node5"]
    for name in ("node1", "node2", "node3", "node4"):
        assert inv[name]["machine"] == name and inv[name]["exitCode"] == 1 and inv[name]["executionSuccessful"]
    assert inv["node5"]["executionSuccessful"] is False and "exitCode" not in inv["node5"]
    assert "node5" in sarif_run["properties"]["nodesNotAudited"]
    assert set(sarif_run["originalUriBaseIds"]) == set(inv)
    # the same file on two nodes: same relative uri, different bases
    libvirt = [r for r in sarif_run["results"] if r["ruleId"] == "KT101" and r["locations"][0]["physicalLocation"]
               ["artifactLocation"]["uri"] == "nova_libvirt/etc/nova/nova.conf"]
    bases = sorted(r["locations"][0]["physicalLocation"]["artifactLocation"]["uriBaseId"] for r in libvirt)
    assert bases == ["node2", "node3", "node4"]  # the computes
    # the cross-node rule, from the collected trees: node4 disagrees with the others
    cross = [r for r in sarif_run["results"] if r["ruleId"] == "KT103"]
    assert cross and {r["locations"][0]["physicalLocation"]["artifactLocation"]["uriBaseId"] for r in cross} == {"node4"}


def test_junit_one_suite_per_node_and_copies_removed(audited):
    run, reports, tmp, _trees = audited
    root = ET.fromstring((reports / "keytools-fleet.junit.xml").read_text())
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert sorted(suites) == ["node1", "node2", "node3", "node4", "node5"]
    assert suites["node5"].get("errors") == "1" and int(suites["node1"].get("failures")) >= 1
    assert "nodes not audited" in run.stdout and "node5" in run.stdout
    assert list(tmp.iterdir()) == []  # the 0700 collect directory is gone
