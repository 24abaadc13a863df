#!/usr/bin/python
# Copyright: keytools contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Ansible module: a Barbican node's KEK fingerprints."""

from __future__ import annotations

DOCUMENTATION = r"""
module: barbican_kek_info
short_description: The fingerprints of a Barbican node's simple_crypto KEKs
description:
  - Reads C([simple_crypto_plugin] kek) from the node's barbican.conf (and barbican.conf.d) through
    keytools' library (C(keytools.barbican.kek.node_status), as C(keytools barbican kek status)).
    Read-only. The KEKs never leave the node; the result holds their fingerprints, so nodes can be compared.
version_added: "0.1.0"
extends_documentation_fragment:
  - keytools.openstack.keytools
options:
  config:
    description: The node's barbican.conf.
    type: path
    default: /etc/barbican/barbican.conf
notes:
  - Supports check mode.
"""

EXAMPLES = r"""
- name: KEK fingerprints
  keytools.openstack.barbican_kek_info:
    node: "{{ inventory_hostname }}"
  register: kek
"""

RETURN = r"""
fingerprints:
  description: The fingerprint of every kek line, in order (the first encrypts).
  returned: success
  type: list
  elements: str
primary:
  description: The fingerprint of the first KEK.
  returned: success
  type: str
list_fingerprint:
  description: One fingerprint of the whole ordered list (equal on nodes holding the same kek lines).
  returned: success
  type: str
"""

from ansible_collections.keytools.openstack.plugins.module_utils.keytools_lib import NODE_OPTION, KeytoolsModule


def info(m):
    from keytools.barbican import kek

    (status,) = kek.node_status([m.params["config"]])
    return {"changed": False, "config": status.config, "fingerprints": status.fingerprints,
            "primary": status.primary, "list_fingerprint": status.list_fingerprint}


def main():
    KeytoolsModule(dict(node=NODE_OPTION,
                        config=dict(type="path", default="/etc/barbican/barbican.conf"))).run(info)


if __name__ == "__main__":
    main()
