"""One audit report for a fleet: every node's own audit plus the cross-node rules on collected trees.

Each node audits its own tree where it is (file modes and owners are only true there); the
controller then runs the rules that compare nodes (``CROSS_NODE``: different fixed_key values,
Barbican endpoints) once over copies of every tree, one subdirectory per node. The result is one
SARIF run with one ``invocations[]`` entry per node (code-scanning services no longer merge several
runs of one tool) and a ``uriBaseId`` per node, so the same path on two nodes never collides, and
a JUnit document with one test suite per node.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET  # noqa: S405 (we only build XML)
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from config_checks import formats, registry
from config_checks.audit import audit_roots
from config_checks.base import Location, Severity
from config_checks.formats import sarif
from config_checks.formats.junit import element, xml_text
from config_checks.model import Finding, Report
from keytools import output

CROSS_NODE = ("KT103", "KT106")  # rules that compare nodes: evaluated on the collected trees


@dataclass
class NodeRun:
    """One node's audit as its module reported it; ``exit_code`` None: it was not audited."""

    node: str
    exit_code: int | None
    machine: str | None = None
    root: str | None = None
    files_checked: int = 0
    findings: list[Finding] = field(default_factory=list)
    error: str | None = None

    @property
    def audited(self) -> bool:
        return self.exit_code is not None and self.exit_code in (0, 1)


def finding_from_dict(d: Mapping[str, Any]) -> Finding:
    """A finding back from ``Finding.as_dict()`` (the audit module's result)."""
    return Finding(d["rule_id"], d["rule"], Severity.parse(d["severity"]), d["title"],
                   Location(d["node"], d["path"], d["relpath"], d.get("line"), d.get("section"), d.get("option")),
                   d["message"], d.get("actual"), d.get("expected"), d["remediation"])


def node_run(node: str, result: Mapping[str, Any] | None) -> NodeRun:
    """A node's run from its audit module result (None or a failed result: not audited)."""
    if not result:
        return NodeRun(node, None, error="no audit result (unreachable, or the play did not run there)")
    if result.get("unreachable"):
        return NodeRun(node, None, error=str(result.get("msg") or "unreachable"))
    report = result.get("report")
    code = result.get("exit_code", result.get("rc"))
    if not isinstance(report, Mapping):
        return NodeRun(node, code if code == 2 else None, machine=result.get("machine"),
                       error=str(result.get("msg") or "the audit did not run"))
    return NodeRun(node, int(code or 0), result.get("machine"), (report.get("roots") or [None])[0],
                   int(report.get("files_checked", 0)), [finding_from_dict(f) for f in report.get("findings", [])])


@dataclass
class FleetReport:
    report: Report
    runs: list[NodeRun]

    @property
    def exit_code(self) -> int:
        """2 when a node was not audited or could not read all its files, 1 on findings, else 0."""
        if any(not r.audited or r.exit_code == 2 for r in self.runs) or self.report.incomplete:
            return 2
        return 1 if self.report.findings else 0

    def as_dict(self) -> dict[str, Any]:
        return {**self.report.as_dict(), "exit_code": self.exit_code,
                "nodes_not_audited": {r.node: r.error for r in self.runs if not r.audited}}


def fleet_report(runs: Sequence[NodeRun], collected: str | None = None,
                 threshold: Severity = Severity.LOW) -> FleetReport:
    """Merge the nodes' findings; the cross-node rules come from ``collected`` (one tree per node,
    each in a subdirectory named after the node) instead of from the nodes."""
    findings = [f for r in runs for f in r.findings if f.rule_id not in CROSS_NODE and f.severity >= threshold]
    incomplete = any(r.exit_code == 2 for r in runs)
    if collected:
        names = {r.node for r in runs}
        cross = audit_roots([collected], per_node=True, threshold=threshold,
                            rules=[registry.BY_ID[i] for i in CROSS_NODE])
        findings += [f for f in cross.findings if f.location.node in names]
        incomplete = incomplete or cross.incomplete
    findings.sort(key=Finding.sort_key)
    report = Report(findings=findings, rules=registry.RULES, nodes=[r.node for r in runs],
                    files_checked=sum(r.files_checked for r in runs), roots=[collected] if collected else [],
                    threshold=threshold, incomplete=incomplete)
    return FleetReport(report, list(runs))


def _base_uri(root: str | None) -> str:
    return sarif.artifact_uri((root or "/").rstrip("/") + "/")


def render_sarif(fleet: FleetReport) -> str:
    """One run, one invocation per node (machine, exit code), results relative to a per-node base."""
    report = formats.redacted(fleet.report)
    doc = sarif.document(report)
    run = doc["runs"][0]
    run["invocations"] = [{
        "executionSuccessful": r.audited and r.exit_code != 2,
        **({"exitCode": r.exit_code} if r.exit_code is not None else {}),
        **({"machine": r.machine} if r.machine else {}),
        **({"toolExecutionNotifications": [{"level": "error", "message": {"text": r.error}}]} if r.error else {}),
        "properties": {"node": r.node},
    } for r in fleet.runs]
    run["originalUriBaseIds"] = {r.node: {"uri": _base_uri(r.root)} for r in fleet.runs}
    for res, f in zip(run["results"], report.findings):
        res["locations"][0]["physicalLocation"]["artifactLocation"] = {
            "uri": sarif.artifact_uri(f.location.relpath), "uriBaseId": f.location.node}
    run["properties"]["nodesNotAudited"] = [r.node for r in fleet.runs if not r.audited]
    return output.to_json(doc)


def render_junit(fleet: FleetReport) -> str:
    """One test suite per node: a failing case per finding, one passing case for a clean node, an
    error case for a node that was not audited. Text goes through the audit's XML escaping."""
    report = formats.redacted(fleet.report)
    root = element(None, "testsuites", name="keytools fleet audit")
    total = failures = errors = 0
    for run in fleet.runs:
        mine = [f for f in report.findings if f.location.node == run.node]
        suite = element(root, "testsuite", name=run.node, hostname=run.machine or run.node)
        if not run.audited:
            case = element(suite, "testcase", classname=f"{run.node}.audit", name="audit ran")
            element(case, "error", message=run.error or "not audited", type="not-audited")
            suite.attrib.update(tests="1", failures="0", errors="1")
            total, errors = total + 1, errors + 1
            continue
        for f in mine:
            case = element(suite, "testcase", classname=f"{run.node}.{f.location.relpath}",
                           name=f"{f.rule_id} {f.rule_name} {f.location.where}")
            fail = element(case, "failure", message=f.message, type=f.severity.label)
            fail.text = xml_text(f"{f.title}\nactual: {f.actual}\nexpected: {f.expected}\nfix: {f.remediation}")
        if not mine:
            element(suite, "testcase", classname=f"{run.node}.audit",
                    name=f"no findings at or above {report.threshold.label} in {run.files_checked} files")
        n = max(len(mine), 1)
        suite.attrib.update(tests=str(n), failures=str(len(mine)), errors="0")
        total, failures = total + n, failures + len(mine)
    root.attrib.update(tests=str(total), failures=str(failures), errors=str(errors))
    return ET.tostring(root, encoding="unicode", xml_declaration=True)
