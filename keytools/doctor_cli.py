"""CLI wiring for ``keytools doctor``."""

from __future__ import annotations

import click

from keytools import output
from keytools.context import RunContext, pass_run
from keytools.doctor import FAIL, diagnose
from keytools.errors import ProblemsFound


@click.command()
@click.option("--probe", is_flag=True,
              help="Prove secret creation by storing, reading back and deleting a probe secret "
                   "(default: a policy check that stores nothing).")
@click.option("--rbac", "policy_hint", type=click.Choice(["legacy", "new"]), default=None,
              help="Barbican policy in force, if known (default: inferred from roles and answers).")
@output.format_option
@pass_run
def doctor(run: RunContext, probe: bool, policy_hint: str | None, output_format: str) -> None:
    """Check that the given credentials can use Barbican the way keytools needs.

    Reports whether Keystone is reachable, a token is issued, Barbican is in the catalog and
    reachable, the user's roles in its project, and whether it may create secrets. A missing
    role comes with the exact command to grant it. Exit 0 when everything passes, 1 otherwise.
    """
    findings = diagnose(run.session(), probe=probe, policy_hint=policy_hint)
    output.emit([f.as_dict() for f in findings], output_format, ["check", "status", "detail", "remedy"])
    failed = [f for f in findings if f.status == FAIL]
    if failed:
        raise ProblemsFound(f"doctor: {len(failed)} check(s) failed: {', '.join(f.check for f in failed)}")
