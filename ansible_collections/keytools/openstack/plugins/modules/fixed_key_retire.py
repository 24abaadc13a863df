#!/usr/bin/python
# Copyright: keytools contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Ansible module: back up and delete fixed_key on one node."""

from __future__ import annotations

DOCUMENTATION = r"""
module: fixed_key_retire
short_description: Back up and delete ConfKeyManager's fixed_key from a node's cinder and nova configs
description:
  - Runs keytools' retire (C(keytools fixed-key retire ROOT)) through its library
    (C(config_checks.fixed_key.retire)) on the node. Each file is edited with crudini on a private
    copy, checked to differ only by the removed lines and swapped in atomically with its owner and
    mode, after a 0600 backup of the value in O(backup_dir) on the node. A rerun after an
    interruption finishes the job; on a node with nothing left to retire it reports C(changed=false).
  - Refuses (rc 6) while the values on the node differ, and while O(inventory) (the deploy host's
    C(keytools.openstack.fixed_key_inventory) result) is not clean; the inventory, with its ignored
    services, is recorded in every backup.
  - Check mode is keytools' dry run; diff mode shows the unified diff with the value masked.
version_added: "0.1.0"
extends_documentation_fragment:
  - keytools.openstack.keytools
options:
  root:
    description: The node's config tree.
    type: path
    default: /var/lib/config-data/puppet-generated
  backup_dir:
    description: Where each value is backed up on the node (0600 files in a 0700 directory).
    type: path
    required: true
  inventory:
    description: The C(inventory) returned by C(keytools.openstack.fixed_key_inventory) on the deploy host.
    type: dict
    required: true
notes:
  - Supports check mode and diff mode.
"""

EXAMPLES = r"""
- name: Retire fixed_key
  keytools.openstack.fixed_key_retire:
    node: "{{ inventory_hostname }}"
    backup_dir: /var/lib/keytools/fixed-key-backups
    inventory: "{{ hostvars['localhost'].fixed_key_gate.inventory }}"
"""

RETURN = r"""
files:
  description: The files retired (or, in check mode, that would be), with their backups and fingerprints.
  returned: success
  type: list
  elements: dict
backups:
  description: The backup files written on the node.
  returned: success
  type: list
  elements: str
ignored_services:
  description: The services the inventory did not look at (recorded in every backup).
  returned: success
  type: list
  elements: str
"""

from ansible_collections.keytools.openstack.plugins.module_utils.keytools_lib import NODE_OPTION, KeytoolsModule


def inventory_from_dict(doc):
    """The deploy host's inventory back as keytools' Inventory (what retire checks and records)."""
    from keytools.errors import UsageError
    from keytools.fixed_key_refs import Blind, Inventory, Reference

    try:
        return Inventory(references=[Reference(**r) for r in doc.get("references", [])],
                         seen=dict(doc["seen"]), blind=[Blind(b["service"], b["reason"]) for b in doc.get("blind", [])],
                         ignored=list(doc.get("ignored_services", [])))
    except (KeyError, TypeError, ValueError):
        raise UsageError("inventory: not the result of keytools.openstack.fixed_key_inventory",
                         "Pass the 'inventory' it returned on the deploy host")


def retire(m):
    from config_checks import fixed_key as fk

    p = m.params
    inv = inventory_from_dict(p["inventory"])
    result = fk.retire([p["root"]], p["backup_dir"], dry_run=m.check_mode, inventory=inv, node=p["node"])
    doc = result.as_dict()
    out = {"changed": bool(result.changes), "files": doc["files"], "ignored_services": doc["ignored_services"],
           "backups": [c.backup for c in result.changes if c.backup]}
    if m.diff_mode and result.changes:
        out["diff"] = {"prepared": "".join(c.diff() for c in result.changes)}
    return out


def main():
    KeytoolsModule(dict(
        node=NODE_OPTION,
        root=dict(type="path", default="/var/lib/config-data/puppet-generated"),
        backup_dir=dict(type="path", required=True),
        inventory=dict(type="dict", required=True),
    )).run(retire)


if __name__ == "__main__":
    main()
