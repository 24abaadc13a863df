#!/usr/bin/python
# Copyright: keytools contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Ansible module: drop a root secret no object uses from a Swift proxy's keymaster config."""

from __future__ import annotations

DOCUMENTATION = r"""
module: swift_retire_key
short_description: Drop a Swift root secret that no object uses any more from a proxy's keymaster config
description:
  - As C(keytools swift retire-key OLD --config), through keytools' library
    (C(swift_middleware.usage.scan), C(swift_middleware.retire)). Refuses (rc 6) for the active root
    secret, and while a fresh key-usage scan of O(accounts) finds any object with data or metadata
    under O(key) (run C(keytools swift reencrypt) first). Then deletes its C(key_id*) line with
    crudini, keeping comments and order, after a 0600 C(.bak) copy, atomically (0600).
  - A key that is no longer configured is already retired (C(changed=false)). Check mode scans and
    says whether the line would go; diff mode shows the key lines before and after (ids only).
  - Restart the proxy afterwards (the playbook does it in a handler); keep the Barbican secret until
    every proxy runs without it.
version_added: "0.1.0"
extends_documentation_fragment:
  - keytools.openstack.keytools
options:
  config:
    description: The proxy's proxy-server.conf.
    type: path
    default: /etc/swift/proxy-server.conf
  key:
    description: The root secret to drop, as its option (C(key_id), C(key_id_2)), its secret id or its Barbican UUID.
    type: str
    required: true
  accounts:
    description: The accounts to scan for objects still under O(key) (every account that stores encrypted objects).
    type: list
    elements: str
    required: true
  state_dir:
    description: The key-usage state directory (default from the keymaster config).
    type: path
  concurrency:
    description: Parallel container listings in the scan.
    type: int
    default: 8
notes:
  - Supports check mode and diff mode.
"""

EXAMPLES = r"""
- name: Drop the old root secret
  keytools.openstack.swift_retire_key:
    node: "{{ inventory_hostname }}"
    key: key_id
    accounts: [AUTH_demo]
  notify: Restart the Swift proxy
"""

RETURN = r"""
configured:
  description: Whether O(key) was still configured (false means already retired).
  returned: success
  type: bool
key_lines:
  description: The keymaster section's key_id lines afterwards (ids only).
  returned: success
  type: list
  elements: str
backup:
  description: The 0600 copy of the file before the edit.
  returned: changed and not check mode
  type: str
"""

from ansible_collections.keytools.openstack.plugins.module_utils.keytools_lib import NODE_OPTION, KeytoolsModule


def retire_key(m):
    from pathlib import Path

    from keytools.errors import UsageError
    from swift_middleware import internal, retire, usage, usagestate

    p = m.params
    setup = internal.load_proxy(p["config"])
    keys = setup.keys
    given = p["key"].strip()
    path, section = retire.where(setup)
    try:
        ref = retire.resolve_key(keys, given)
    except UsageError:  # no longer configured: already retired
        lines = retire.key_lines(path.read_text(), section, keys.option_prefix, masked=keys.inline)
        return {"changed": False, "configured": False, "key_lines": lines,
                "msg": "%s is not configured in %s: already retired" % (given, path)}
    state = usagestate.state_dir(setup.keymaster_conf, p["state_dir"])
    report = usage.scan(setup, list(p["accounts"]), Path(state), p["concurrency"], restart=True)
    retire.refuse_if_used(setup, ref.option, report)  # also refuses the active key
    before = retire.key_lines(path.read_text(), section, keys.option_prefix, masked=keys.inline)
    done = retire.retire(setup, ref, edit=not m.check_mode)
    after = done.key_lines()
    result = {"changed": True, "configured": True, "key_lines": after, "option": ref.option, "key_id": ref.key_id,
              "file": done.file, "reminder": retire.reminder(done)}
    if done.backup:
        result["backup"] = done.backup
    if m.diff_mode:
        result["diff"] = m.lines_diff(done.file, before, after)
    return result


def main():
    KeytoolsModule(dict(
        node=NODE_OPTION,
        config=dict(type="path", default="/etc/swift/proxy-server.conf"),
        key=dict(type="str", required=True, no_log=False),
        accounts=dict(type="list", elements="str", required=True),
        state_dir=dict(type="path"),
        concurrency=dict(type="int", default=8),
    )).run(retire_key)


if __name__ == "__main__":
    main()
