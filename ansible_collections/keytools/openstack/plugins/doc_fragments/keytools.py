# Copyright: keytools contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Documentation shared by the keytools.openstack modules that act on one node."""

from __future__ import annotations


class ModuleDocFragment(object):  # pylint: disable=too-few-public-methods
    DOCUMENTATION = r"""
author: keytools contributors
requirements:
  - keytools, in its own virtualenv whose python runs the module (the C(keytools.openstack.install) role)
options:
  node:
    description:
      - The node's name in the result (findings, backups); pass C(inventory_hostname), never a name derived from a path.
    type: str
    required: true
"""
