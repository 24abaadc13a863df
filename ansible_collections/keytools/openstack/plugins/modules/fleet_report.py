#!/usr/bin/python
# Copyright: keytools contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Ansible module: one SARIF/JUnit report for a fleet, on the controller."""

from __future__ import annotations

DOCUMENTATION = r"""
module: fleet_report
short_description: One audit report for a fleet, from every node's audit and the collected trees
description:
  - Merges the C(keytools.openstack.audit) results of every node (through keytools' library,
    C(config_checks.fleet)) and runs the cross-node rules (different fixed_key values, Barbican
    endpoints) once over the trees the C(keytools.openstack.collect) role copied to the controller.
  - Writes one SARIF 2.1.0 run with one C(invocations[]) entry per node (machine, exit code) and a
    C(uriBaseId) per node, so the same path on two nodes never collides, and a JUnit document with
    one test suite per node. A node without a result (unreachable, keytools missing) is reported
    as not audited.
  - Runs on the controller; C(changed) only when a report file was (or would be) rewritten.
version_added: "0.1.0"
author: keytools contributors
requirements: [keytools (on the host running it, the controller or the deploy host)]
options:
  results:
    description: Node name (C(inventory_hostname)) to that node's registered audit result (or null).
    type: dict
    required: true
  collect_dir:
    description: The controller directory with one collected tree per node (subdirectories named after the nodes).
    type: path
  sarif:
    description: Write the SARIF report here.
    type: path
  junit:
    description: Write the JUnit report here.
    type: path
  severity:
    description: Report findings at or above this severity.
    type: str
    choices: [info, low, medium, high, critical]
    default: low
notes:
  - Supports check mode (nothing is written).
"""

EXAMPLES = r"""
- name: One report for the fleet
  keytools.openstack.fleet_report:
    results: "{{ dict(groups.nodes | zip(groups.nodes | map('extract', hostvars) | map(attribute='audit', default=None))) }}"
    collect_dir: "{{ collect_tmp.path }}"
    sarif: reports/keytools-fleet.sarif
    junit: reports/keytools-fleet.junit.xml
"""

RETURN = r"""
exit_code:
  description: 0 clean, 1 findings, 2 a node was not audited or could not read all its files.
  returned: success
  type: int
report:
  description: The merged report (findings, summary, nodes not audited); fingerprints only.
  returned: success
  type: dict
"""

import os

from ansible_collections.keytools.openstack.plugins.module_utils.keytools_lib import KeytoolsModule


def _write(m, path, text):
    """Write ``text`` to ``path`` unless it already holds it; True when it (would have) changed."""
    from keytools.fileutil import atomic_write

    try:
        with open(path, encoding="utf-8") as fh:
            if fh.read() == text:
                return False
    except OSError:
        pass
    if not m.check_mode:
        atomic_write(path, text, mode=0o644)
    return True


def report(m):
    from config_checks import fleet
    from config_checks.base import Severity

    p = m.params
    runs = [fleet.node_run(node, result) for node, result in sorted(p["results"].items())]
    collected = p["collect_dir"] if p["collect_dir"] and os.path.isdir(p["collect_dir"]) and any(
        os.scandir(p["collect_dir"])) else None
    merged = fleet.fleet_report(runs, collected, Severity.parse(p["severity"]))
    changed = False
    if p["sarif"]:
        changed |= _write(m, p["sarif"], fleet.render_sarif(merged) + "\n")
    if p["junit"]:
        changed |= _write(m, p["junit"], fleet.render_junit(merged) + "\n")
    return {"changed": changed, "exit_code": merged.exit_code, "report": merged.as_dict()}


def main():
    KeytoolsModule(dict(
        results=dict(type="dict", required=True),
        collect_dir=dict(type="path"),
        sarif=dict(type="path"),
        junit=dict(type="path"),
        severity=dict(type="str", default="low", choices=["info", "low", "medium", "high", "critical"]),
    )).run(report)


if __name__ == "__main__":
    main()
