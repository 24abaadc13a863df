#!/usr/bin/python
# Copyright: keytools contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Ansible module: the fixed_key inventory (who still uses the all-zeros key id), from the deploy host."""

from __future__ import annotations

DOCUMENTATION = r"""
module: fixed_key_inventory
short_description: Every reference to ConfKeyManager's all-zeros key id, checked before fixed_key is retired
description:
  - Runs keytools' inventory (C(keytools fixed-key inventory)) through its library
    (C(config_checks.inventory.inventory)) on the host that can reach the databases (the deploy host),
    in Cinder volumes, snapshots and backups, Nova instances in every cell and Glance images.
  - Fails (rc 6, or keytools' own code when a service could not be read) while anything references
    the all-zeros id or a service was not seen; only O(ignore_services) lets it go on without a
    service, and the result records that (the retire module writes it into every backup).
version_added: "0.1.0"
author: keytools contributors
requirements: [keytools (on the host running it, the controller or the deploy host)]
options:
  db_url:
    description: Cinder's database (SQLAlchemy URL).
    type: str
  nova_config_file:
    description: A nova.conf naming the nova_api and cell databases.
    type: path
  nova_api_db_url:
    description: The nova_api database (cells from cell_mappings).
    type: str
  nova_db_url:
    description: Nova cell databases (C([CELL=]URL)) instead of cell_mappings.
    type: list
    elements: str
    default: []
  glance_cloud:
    description: A clouds.yaml cloud with the admin role, to read Glance images of every project.
    type: str
  glance_endpoint:
    description: Glance's URL (default from the service catalog).
    type: str
  ignore_services:
    description:
      - Services not to look at (C(cinder), C(nova), C(glance)), for a service that never used fixed_key.
        Explicit and recorded; never a default.
    type: list
    elements: str
    default: []
notes:
  - Supports check mode (it changes nothing anyway).
"""

EXAMPLES = r"""
- name: Nothing may reference the all-zeros key id any more
  keytools.openstack.fixed_key_inventory:
    db_url: "{{ cinder_db_url }}"
    nova_config_file: /etc/nova/nova.conf
    glance_cloud: overcloud-admin
  register: gate
"""

RETURN = r"""
inventory:
  description: The inventory (C(keytools fixed-key inventory --format json)); pass it to fixed_key_retire.
  returned: always
  type: dict
ignored_services:
  description: The services that were not looked at (O(ignore_services)).
  returned: always
  type: list
  elements: str
"""

from ansible_collections.keytools.openstack.plugins.module_utils.keytools_lib import KeytoolsModule


def take(m):
    from config_checks import fixed_key as fk
    from config_checks import inventory as fki
    from keytools.errors import KeytoolsError

    p = m.params
    ignored = fki.parse_services(p["ignore_services"], option="ignore_services")
    inv = fki.inventory({k: p[k] for k in ("db_url", "nova_config_file", "nova_api_db_url", "nova_db_url",
                                           "glance_cloud", "glance_endpoint")}, ignore=ignored)
    result = {"changed": False, "inventory": inv.as_dict(), "ignored_services": ignored}
    try:
        fk.check_inventory(inv)
    except KeytoolsError as exc:
        result.update(failed=True, rc=exc.exit_code, msg=exc.one_line())
    return result


def main():
    KeytoolsModule(dict(
        db_url=dict(type="str", no_log=True),
        nova_config_file=dict(type="path"),
        nova_api_db_url=dict(type="str", no_log=True),
        nova_db_url=dict(type="list", elements="str", default=[], no_log=True),
        glance_cloud=dict(type="str"),
        glance_endpoint=dict(type="str"),
        ignore_services=dict(type="list", elements="str", default=[]),
    )).run(take)


if __name__ == "__main__":
    main()
