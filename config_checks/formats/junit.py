"""JUnit XML for CI dashboards: a test suite per node and file, a failing test case per finding,
one passing case for a clean file."""

from __future__ import annotations

import xml.etree.ElementTree as ET  # noqa: S405 (we only build XML)

from config_checks.model import Report


def render(report: Report, color: bool = False) -> str:
    root = ET.Element("testsuites", name="keytools audit", tests="0", failures="0", errors="0")
    total = failures = 0
    by_file = {(f.location.node, f.location.relpath): [] for f in report.findings}
    for f in report.findings:
        by_file[(f.location.node, f.location.relpath)].append(f)
    for (node, rel), findings in by_file.items():
        suite = ET.SubElement(root, "testsuite", name=f"{node}:{rel}", tests=str(len(findings)),
                              failures=str(len(findings)), errors="0", skipped="0")
        for f in findings:
            case = ET.SubElement(suite, "testcase", classname=f"{node}.{rel}",
                                 name=f"{f.rule_id} {f.rule_name} {f.location.where}")
            failure = ET.SubElement(case, "failure", message=f.message, type=f.severity.label)
            failure.text = (f"{f.title}\nactual: {f.actual}\nexpected: {f.expected}\nfix: {f.remediation}")
        total += len(findings)
        failures += len(findings)
    if not report.findings:
        suite = ET.SubElement(root, "testsuite", name="keytools audit", tests="1", failures="0", errors="0",
                              skipped="0")
        ET.SubElement(suite, "testcase", classname="keytools.audit",
                      name=f"no findings at or above {report.threshold.label} in {report.files_checked} files")
        total = 1
    root.set("tests", str(total))
    root.set("failures", str(failures))
    return ET.tostring(root, encoding="unicode", xml_declaration=True)
