"""Run several ``keystone-manage`` steps in one process (saves ~2 s of imports per step).

Usage: ``python -m keytools.sandbox.keystone_manage CONFIG STEP [STEP ...]`` where STEP is
db_sync, fernet_setup, credential_setup or bootstrap. Every step is idempotent, so a setup killed
half-way is finished by running it again. The bootstrap password comes from OS_BOOTSTRAP_PASSWORD
(never the command line); its URLs from KEYTOOLS_KEYSTONE_URL.
"""

from __future__ import annotations

import grp
import os
import pwd
import sys


def _owner_args() -> list[str]:
    user = pwd.getpwuid(os.geteuid()).pw_name
    group = grp.getgrgid(os.getegid()).gr_name
    return ["--keystone-user", user, "--keystone-group", group]


def step_argv(step: str) -> list[str]:
    if step in ("fernet_setup", "credential_setup"):
        return [step, *_owner_args()]
    if step == "bootstrap":
        url = os.environ["KEYTOOLS_KEYSTONE_URL"]
        return ["bootstrap", "--bootstrap-username", "admin", "--bootstrap-project-name", "admin",
                "--bootstrap-role-name", "admin", "--bootstrap-service-name", "keystone",
                "--bootstrap-region-id", "RegionOne", "--bootstrap-admin-url", url,
                "--bootstrap-internal-url", url, "--bootstrap-public-url", url]
    if step == "db_sync":
        return ["db_sync"]
    raise SystemExit(f"unknown step {step!r}")


def main(argv: list[str]) -> int:
    config, steps = argv[0], argv[1:]
    from keystone.cmd import cli

    for index, step in enumerate(steps):
        if index:
            # keystone-manage's main registers its CLI option once per process: undo that.
            cli.CONF.clear()
            cli.CONF.unregister_opt(cli.command_opt)
        cli.main(argv=["keystone-manage", "--config-file", config, *step_argv(step)])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
