"""JUnit XML for CI dashboards: a test suite per node and file, a failing test case per finding,
one passing case for a clean file."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET  # noqa: S405 (we only build XML)

from config_checks.model import Report
from keytools import output

# What XML 1.0 cannot hold at all, not even as a character reference (section 2.2): C0 controls
# but tab, newline and carriage return; U+FFFE/U+FFFF; lone surrogates (clean_text writes those out).
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(value: object) -> str:
    """``value`` as text XML can carry: what XML forbids is written out as ``\\xNN``/``\\uNNNN``."""
    text = output.clean_text(str(value))
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                        else f"\\u{ord(m.group()):04x}", text)


def element(parent: ET.Element | None, tag: str, **attrs: object) -> ET.Element:
    clean = {k: xml_text(v) for k, v in attrs.items()}
    return ET.Element(tag, clean) if parent is None else ET.SubElement(parent, tag, clean)


def render(report: Report, color: bool = False) -> str:
    root = element(None, "testsuites", name="keytools audit", tests="0", failures="0", errors="0")
    total = failures = 0
    by_file = {(f.location.node, f.location.relpath): [] for f in report.findings}
    for f in report.findings:
        by_file[(f.location.node, f.location.relpath)].append(f)
    for (node, rel), findings in by_file.items():
        suite = element(root, "testsuite", name=f"{node}:{rel}", tests=len(findings),
                         failures=len(findings), errors="0", skipped="0")
        for f in findings:
            case = element(suite, "testcase", classname=f"{node}.{rel}",
                            name=f"{f.rule_id} {f.rule_name} {f.location.where}")
            failure = element(case, "failure", message=f.message, type=f.severity.label)
            failure.text = xml_text(f"{f.title}\nactual: {f.actual}\nexpected: {f.expected}\n"
                                    f"fix: {f.remediation}")
        total += len(findings)
        failures += len(findings)
    if not report.findings:
        suite = element(root, "testsuite", name="keytools audit", tests="1", failures="0", errors="0",
                         skipped="0")
        element(suite, "testcase", classname="keytools.audit",
                 name=f"no findings at or above {report.threshold.label} in {report.files_checked} files")
        total = 1
    root.set("tests", str(total))
    root.set("failures", str(failures))
    return ET.tostring(root, encoding="unicode", xml_declaration=True)
