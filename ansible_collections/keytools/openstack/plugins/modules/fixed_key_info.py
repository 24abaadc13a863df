#!/usr/bin/python
# Copyright: keytools contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Ansible module: where fixed_key is set on one node, by fingerprint."""

from __future__ import annotations

DOCUMENTATION = r"""
module: fixed_key_info
short_description: Where ConfKeyManager's fixed_key is set on a node, and its fingerprints
description:
  - Reads the node's cinder and nova configs (C(keytools fixed-key show ROOT)) through keytools'
    library (C(config_checks.fixed_key.show)). Read-only.
  - The value never leaves the node; the result holds its length and sha256 fingerprint only, so
    the values of many nodes can be compared.
version_added: "0.1.0"
extends_documentation_fragment:
  - keytools.openstack.keytools
options:
  root:
    description: The node's config tree.
    type: path
    default: /var/lib/config-data/puppet-generated
notes:
  - Supports check mode.
"""

EXAMPLES = r"""
- name: Where is fixed_key set?
  keytools.openstack.fixed_key_info:
    node: "{{ inventory_hostname }}"
  register: fixed_key
"""

RETURN = r"""
is_set:
  description: Whether fixed_key is set anywhere on the node.
  returned: success
  type: bool
sha256:
  description: The distinct fingerprints of the values on this node (sorted).
  returned: success
  type: list
  elements: str
match:
  description: Whether every value on this node is the same.
  returned: success
  type: bool
placements:
  description: Every place it is set (service, file, section, line, length, sha256; never the value).
  returned: success
  type: list
  elements: dict
"""

from ansible_collections.keytools.openstack.plugins.module_utils.keytools_lib import NODE_OPTION, KeytoolsModule


def info(m):
    from config_checks import fixed_key as fk

    result = fk.show([m.params["root"]], node=m.params["node"])
    error = fk.show_failure(result)
    if error is not None and error.exit_code == 2:
        raise error
    doc = result.as_dict()
    return {"changed": False, "is_set": bool(result.placements), "match": doc["match"],
            "sha256": sorted({p["sha256"] for p in doc["placements"]}), "placements": doc["placements"]}


def main():
    KeytoolsModule(dict(node=NODE_OPTION,
                        root=dict(type="path", default="/var/lib/config-data/puppet-generated"))).run(info)


if __name__ == "__main__":
    main()
