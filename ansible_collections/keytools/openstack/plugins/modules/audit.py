#!/usr/bin/python
# Copyright: keytools contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Ansible module: keytools' config audit of one node's tree (read-only)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: audit
short_description: Audit a node's OpenStack config tree for fixed_key leftovers and key-manager misconfiguration
description:
  - Runs keytools' audit (C(keytools audit ROOT)) on the node, through its library
    (C(config_checks.audit.audit_roots)), and returns the findings. Read-only, C(changed) is always false.
  - Secret values never appear in the result, only C(set), their length and a sha256 prefix.
  - Runs with keytools' own virtualenv as interpreter (see the C(keytools.openstack.install) role).
version_added: "0.1.0"
extends_documentation_fragment:
  - keytools.openstack.keytools
options:
  root:
    description: The node's config tree (a TripleO puppet-generated tree or an /etc tree).
    type: path
    default: /var/lib/config-data/puppet-generated
  severity:
    description: Report findings at or above this severity.
    type: str
    choices: [info, low, medium, high, critical]
    default: low
  rules:
    description: Run only these rules (ids such as C(KT101) or names).
    type: list
    elements: str
    default: []
  skip_rules:
    description: Do not run these rules.
    type: list
    elements: str
    default: []
  fail_on_findings:
    description: Fail the task when findings at or above O(severity) remain (the report is still returned).
    type: bool
    default: false
notes:
  - Supports check mode (it changes nothing anyway).
"""

EXAMPLES = r"""
- name: Audit every node
  keytools.openstack.audit:
    node: "{{ inventory_hostname }}"
    root: /var/lib/config-data/puppet-generated
  register: audit
"""

RETURN = r"""
exit_code:
  description: keytools' exit code for this audit (0 clean, 1 findings, 2 some file could not be read).
  returned: success
  type: int
rc:
  description: keytools' exit code when the task failed (2 bad input, 1 findings with O(fail_on_findings)).
  returned: failure
  type: int
findings:
  description: How many findings at or above O(severity).
  returned: success
  type: int
report:
  description: The audit report (C(keytools audit --format json)); every finding names the node, file, line and rule.
  returned: success
  type: dict
node:
  description: O(node).
  returned: always
  type: str
machine:
  description: The node's host name as the node sees it.
  returned: always
  type: str
"""

from ansible_collections.keytools.openstack.plugins.module_utils.keytools_lib import NODE_OPTION, KeytoolsModule


def audit(m):
    from config_checks import registry
    from config_checks.audit import audit_roots, failure
    from config_checks.base import Severity
    from keytools.errors import UsageError

    p = m.params
    try:
        rules = registry.select(list(p["rules"]) or None, list(p["skip_rules"]))
    except KeyError as exc:
        raise UsageError("unknown rule %r" % exc.args[0], "List the rules with: keytools audit --list-rules")
    report = audit_roots([p["root"]], threshold=Severity.parse(p["severity"]), rules=rules, node=p["node"])
    error = failure(report)
    rc = error.exit_code if error else 0
    result = {"changed": False, "exit_code": rc, "findings": len(report.findings), "report": report.as_dict()}
    if rc == 2 or (rc and p["fail_on_findings"]):
        result.update(failed=True, rc=rc, msg=error.one_line())
    return result


def main():
    KeytoolsModule(dict(
        node=NODE_OPTION,
        root=dict(type="path", default="/var/lib/config-data/puppet-generated"),
        severity=dict(type="str", default="low", choices=["info", "low", "medium", "high", "critical"]),
        rules=dict(type="list", elements="str", default=[]),
        skip_rules=dict(type="list", elements="str", default=[]),
        fail_on_findings=dict(type="bool", default=False),
    )).run(audit)


if __name__ == "__main__":
    main()
