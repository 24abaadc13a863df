#!/usr/bin/python
# Copyright: keytools contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Ansible module: put fixed_key back on one node from its retire backups."""

from __future__ import annotations

DOCUMENTATION = r"""
module: fixed_key_restore
short_description: Put fixed_key back on a node from the backups fixed_key_retire wrote there
description:
  - Runs keytools' restore (C(keytools fixed-key restore)) through its library
    (C(config_checks.fixed_key.restore)). A file exactly as retire left it gets its original bytes
    back; a file edited since gets the option re-inserted with crudini; a file that holds it is left alone.
  - Check mode says what would be restored and changes nothing.
version_added: "0.1.0"
extends_documentation_fragment:
  - keytools.openstack.keytools
options:
  backup_dir:
    description: The O(backup_dir) given to C(keytools.openstack.fixed_key_retire) on this node.
    type: path
    required: true
notes:
  - Supports check mode.
"""

EXAMPLES = r"""
- name: Roll back a retirement
  keytools.openstack.fixed_key_restore:
    node: "{{ inventory_hostname }}"
    backup_dir: /var/lib/keytools/fixed-key-backups
"""

RETURN = r"""
files:
  description: Each file and what was (or would be) done (restored, re-inserted, already present), with the fingerprint.
  returned: success
  type: list
  elements: dict
"""

from ansible_collections.keytools.openstack.plugins.module_utils.keytools_lib import NODE_OPTION, KeytoolsModule


def restore(m):
    from config_checks import fixed_key as fk

    done = fk.restore(m.params["backup_dir"], dry_run=m.check_mode)
    return {"changed": any(d.action != "already present" for d in done), "files": [d.as_dict() for d in done]}


def main():
    KeytoolsModule(dict(node=NODE_OPTION, backup_dir=dict(type="path", required=True))).run(restore)


if __name__ == "__main__":
    main()
