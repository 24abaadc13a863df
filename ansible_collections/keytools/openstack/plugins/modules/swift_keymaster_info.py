#!/usr/bin/python
# Copyright: keytools contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Ansible module: a Swift proxy's root secrets (ids only)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: swift_keymaster_info
short_description: The root secrets a Swift proxy's Barbican keymaster is configured with
description:
  - Reads and validates the proxy's proxy-server.conf (and C(keymaster_config_path)) through keytools'
    library (C(swift_middleware.internal.load_proxy)); the pipeline must encrypt with a Barbican
    keymaster. Returns each configured root secret (option, Swift secret id, Barbican UUID) and the
    active one; never a credential or a key. Read-only.
version_added: "0.1.0"
extends_documentation_fragment:
  - keytools.openstack.keytools
options:
  config:
    description: The proxy's proxy-server.conf.
    type: path
    default: /etc/swift/proxy-server.conf
notes:
  - Supports check mode.
"""

EXAMPLES = r"""
- name: Root secrets of every proxy
  keytools.openstack.swift_keymaster_info:
    node: "{{ inventory_hostname }}"
  register: keymaster
"""

RETURN = r"""
kind:
  description: Which keymaster the pipeline runs (keytools' keymaster, Swift's kms_keymaster or keymaster).
  returned: success
  type: str
keys:
  description: Every configured root secret (option, secret_id, key_id = the Barbican UUID, null for an inline secret of Swift's keymaster, whose value is never returned).
  returned: success
  type: list
  elements: dict
active_secret_id:
  description: The secret id new objects are encrypted with (null for plain key_id).
  returned: success
  type: str
file:
  description: The file and section holding the key_id options.
  returned: success
  type: str
"""

from ansible_collections.keytools.openstack.plugins.module_utils.keytools_lib import NODE_OPTION, KeytoolsModule


def info(m):
    from swift_middleware import internal, retire

    setup = internal.load_proxy(m.params["config"])
    path, section = retire.where(setup)
    km = setup.keys  # keytools' keymaster, Swift's kms_keymaster or keymaster (ids only, never secrets)
    return {"changed": False, "file": "%s [%s]" % (path, section), "kind": km.kind,
            "active_secret_id": km.active_secret_id,
            "keys": [{"option": k.option, "secret_id": k.secret_id, "key_id": k.key_id,
                      "active": k.secret_id == km.active_secret_id} for k in km.keys]}


def main():
    KeytoolsModule(dict(node=NODE_OPTION,
                        config=dict(type="path", default="/etc/swift/proxy-server.conf"))).run(info)


if __name__ == "__main__":
    main()
