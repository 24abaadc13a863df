#!/usr/bin/python
# Copyright: keytools contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Ansible module: put a new KEK first on a Barbican node (old ones kept), or drop the old ones."""

from __future__ import annotations

DOCUMENTATION = r"""
module: barbican_kek_stage
short_description: Stage a new simple_crypto KEK on a Barbican node, or retire the old ones
description:
  - O(state=staged) puts O(kek) first in C([simple_crypto_plugin] kek), keeping the old KEKs after it
    (the first encrypts, all decrypt), as the stage step of C(keytools barbican kek rotate).
  - O(state=retired) leaves O(kek) alone, once every project KEK has been rewrapped under it
    (C(keytools.openstack.barbican_kek_rewrap)); it refuses (rc 6) while O(kek) is not first on the node.
  - Edits go through keytools' library (C(keytools.barbican.barbican_conf.write_keks)), with crudini on a
    private copy, the KEKs on stdin, the result parsed back, a 0600 C(.bak) copy, an atomic swap with
    mode and owner kept. C(changed) only when the file is (or, in check mode, would be) rewritten.
    Barbican must be restarted afterwards (the playbooks do it in a handler).
version_added: "0.1.0"
extends_documentation_fragment:
  - keytools.openstack.keytools
options:
  config:
    description: The node's barbican.conf.
    type: path
    default: /etc/barbican/barbican.conf
  kek:
    description: The new KEK (a Fernet key, 32 bytes URL-safe base64). Never logged.
    type: str
    required: true
  state:
    description: C(staged) (new first, old kept) or C(retired) (only the new one).
    type: str
    choices: [staged, retired]
    default: staged
notes:
  - Supports check mode and diff mode (fingerprints only).
"""

EXAMPLES = r"""
- name: New KEK first, old ones kept
  keytools.openstack.barbican_kek_stage:
    node: "{{ inventory_hostname }}"
    kek: "{{ vault_new_kek }}"
  notify: Restart Barbican
"""

RETURN = r"""
before:
  description: The KEK fingerprints before, in order.
  returned: success
  type: list
  elements: str
after:
  description: The KEK fingerprints after (or, in check mode, as they would be).
  returned: success
  type: list
  elements: str
backup:
  description: The 0600 copy of the file before the edit.
  returned: changed and not check mode
  type: str
"""

from ansible_collections.keytools.openstack.plugins.module_utils.keytools_lib import NODE_OPTION, KeytoolsModule


def stage(m):
    from keytools.barbican import barbican_conf, kek
    from keytools.errors import StateError

    p = m.params
    kek.check_project_keks_format(p["kek"])
    conf = barbican_conf.load(p["config"])
    new_fp = barbican_conf.kek_fingerprint(p["kek"])
    before = conf.kek_fingerprints
    if p["state"] == "staged":
        wanted = [p["kek"]] + [k for k in conf.keks if barbican_conf.kek_fingerprint(k) != new_fp]
    else:
        if not before or before[0] != new_fp:
            raise StateError("%s: the new KEK %s is not first (KEKs: %s); refusing to drop the others"
                             % (conf.path, new_fp, ", ".join(before) or "none"),
                             "Stage it first (state=staged), restart Barbican and rewrap, then retire")
        wanted = [p["kek"]]
    after = [barbican_conf.kek_fingerprint(k) for k in wanted]
    result = {"changed": after != before, "before": before, "after": after, "fingerprint": new_fp}
    if m.diff_mode and result["changed"]:
        result["diff"] = m.lines_diff(conf.path, ["kek: %s" % ", ".join(before)], ["kek: %s" % ", ".join(after)])
    if result["changed"] and not m.check_mode:
        target = conf.kek_files[0] if conf.kek_files else conf.path
        result["backup"] = str(barbican_conf.write_keks(target, wanted))
    return result


def main():
    KeytoolsModule(dict(
        node=NODE_OPTION,
        config=dict(type="path", default="/etc/barbican/barbican.conf"),
        kek=dict(type="str", required=True, no_log=True),
        state=dict(type="str", default="staged", choices=["staged", "retired"]),
    )).run(stage)


if __name__ == "__main__":
    main()
