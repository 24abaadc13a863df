#!/usr/bin/python
# Copyright: keytools contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Ansible module: rewrap every project KEK under the staged KEK, once, and validate."""

from __future__ import annotations

DOCUMENTATION = r"""
module: barbican_kek_rewrap
short_description: Rewrap Barbican's project KEKs under the staged master KEK, then check them
description:
  - Runs Barbican's own C(barbican-manage simple_crypto rewrap_pkek) with the node's barbican.conf
    (through keytools' library, C(keytools.barbican.kek.run_rewrap)), then checks that every
    simple_crypto project KEK unwraps with O(kek) alone (C(keytools.barbican.kek.check_project_keks)).
  - Run it once (C(run_once)) on one Barbican node, after O(kek) was staged first on every node and
    Barbican restarted everywhere. Nothing to do (C(changed=false)) when every project KEK already
    unwraps with O(kek) alone. Refuses (rc 6) while O(kek) is not first in this node's config.
version_added: "0.1.0"
extends_documentation_fragment:
  - keytools.openstack.keytools
options:
  config:
    description: The node's barbican.conf (its C([database] connection) is used).
    type: path
    default: /etc/barbican/barbican.conf
  kek:
    description: The staged KEK. Never logged.
    type: str
    required: true
notes:
  - Supports check mode (says whether a rewrap is needed).
"""

EXAMPLES = r"""
- name: Rewrap once and validate
  keytools.openstack.barbican_kek_rewrap:
    node: "{{ inventory_hostname }}"
    kek: "{{ vault_new_kek }}"
  run_once: true
"""

RETURN = r"""
project_keks:
  description: How many simple_crypto project KEKs the database holds.
  returned: success
  type: int
unwrap_with_new_alone:
  description: Whether every project KEK unwraps with O(kek) alone afterwards.
  returned: success
  type: bool
"""

from ansible_collections.keytools.openstack.plugins.module_utils.keytools_lib import NODE_OPTION, KeytoolsModule


def rewrap(m):
    from keytools.barbican import barbican_conf, kek
    from keytools.errors import ProblemsFound, StateError

    p = m.params
    kek.check_project_keks_format(p["kek"])
    conf = barbican_conf.load(p["config"])
    before = kek.check_project_keks(conf.connection, [p["kek"]])
    if not before.failed:
        return {"changed": False, "project_keks": before.total, "unwrap_with_new_alone": True}
    new_fp = barbican_conf.kek_fingerprint(p["kek"])
    if not conf.kek_fingerprints or conf.kek_fingerprints[0] != new_fp:
        raise StateError("%s: the new KEK %s is not first; refusing to rewrap" % (conf.path, new_fp),
                         "Stage it on every node (barbican_kek_stage), restart Barbican, then rerun")
    if m.check_mode:
        return {"changed": True, "project_keks": before.total, "unwrap_with_new_alone": False}
    kek.run_rewrap(conf)
    after = kek.check_project_keks(conf.connection, [p["kek"]])
    if after.failed:
        raise ProblemsFound("%d of %d project KEKs do not unwrap with the new KEK %s alone after the rewrap"
                            % (len(after.failed), after.total, new_fp),
                            "Restart every Barbican node with the staged config, then rerun")
    return {"changed": True, "project_keks": after.total, "unwrap_with_new_alone": True}


def main():
    KeytoolsModule(dict(
        node=NODE_OPTION,
        config=dict(type="path", default="/etc/barbican/barbican.conf"),
        kek=dict(type="str", required=True, no_log=True),
    )).run(rewrap)


if __name__ == "__main__":
    main()
