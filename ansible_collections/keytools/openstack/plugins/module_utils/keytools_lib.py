# Copyright: keytools contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The one base of the keytools.openstack modules (openstack.cloud's OpenStackModule shape).

keytools is imported lazily on the node, from the interpreter the task runs with (keytools' own
virtualenv: ``ansible_python_interpreter``); when it is missing the module fails with Ansible's
``missing_required_lib`` naming the ``install`` role. ``KeytoolsError`` and ``OSError`` become a
failed result carrying keytools' exit code (``rc``) and hint; anything else is a bug (rc 70).
Results never hold key bytes: key parameters are ``no_log`` and the library reports fingerprints.
"""

from __future__ import annotations

import socket
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

INSTALL_ROLE = "keytools.openstack.install"
EXIT_USAGE = 2
EXIT_INTERNAL = 70


def keytools_import_error():
    """The traceback of ``import keytools`` on this interpreter, or None when it imports."""
    try:
        import keytools  # noqa: F401 pylint: disable=unused-import
    except ImportError:
        return traceback.format_exc()
    return None


class KeytoolsModule(object):
    """``AnsibleModule`` plus keytools' error mapping; ``run(fn)`` calls ``fn(module)`` and exits."""

    def __init__(self, argument_spec, supports_check_mode=True, **kwargs):
        self.module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=supports_check_mode,
                                    **kwargs)
        self.params = self.module.params
        self.node = self.params.get("node")

    @property
    def check_mode(self):
        return self.module.check_mode

    @property
    def diff_mode(self):
        return self.module._diff  # pylint: disable=protected-access

    def lines_diff(self, path, before, after):
        """Ansible's diff for a file whose relevant lines (fingerprints, ids: never secrets) change."""
        return {"before": "\n".join(before) + "\n", "after": "\n".join(after) + "\n",
                "before_header": str(path), "after_header": str(path)}

    def base(self):
        return {"node": self.node, "machine": socket.gethostname()}

    def fail(self, msg, rc, **extra):
        self.module.fail_json(msg=msg, rc=rc, **dict(self.base(), **extra))

    def run(self, fn):
        error = keytools_import_error()
        if error is not None:
            msg = missing_required_lib("keytools", reason="for the keytools.openstack modules")
            self.fail("%s Install it with the %s role (keytools in its own virtualenv; then set "
                      "ansible_python_interpreter to that virtualenv's python)."
                      % (msg, INSTALL_ROLE), EXIT_USAGE, exception=error)
        from keytools import redaction
        from keytools.errors import KeytoolsError

        try:
            result = fn(self)
        except KeytoolsError as exc:
            extra = {"hint": exc.hint} if exc.hint else {}
            if exc.details:
                extra["details"] = exc.details
            self.fail(redaction.redact(exc.one_line()), exc.exit_code, **extra)
        except OSError as exc:
            where = " %s" % exc.filename if exc.filename else ""
            self.fail(redaction.redact("cannot access%s: %s" % (where, exc.strerror or exc)), EXIT_USAGE,
                      hint="Check the path and its permissions on the node")
        except Exception as exc:  # pylint: disable=broad-except  # a bug: say so, never dump secrets
            self.fail(redaction.redact("unexpected %s: %s. Report it with this task's output"
                                       % (type(exc).__name__, exc)), EXIT_INTERNAL,
                      exception=redaction.redact(traceback.format_exc()))
        failed = result.pop("failed", False)
        if failed:
            self.module.fail_json(**dict(self.base(), **result))
        self.module.exit_json(**dict(self.base(), **result))


NODE_OPTION = dict(type="str", required=True)
