"""CLI wiring for ``keytools sandbox``; the work is in keytools.sandbox.manager."""

from __future__ import annotations

import time
from pathlib import Path

import click

from keytools import output
from keytools.errors import ProblemsFound
from keytools.sandbox import manager
from keytools.sandbox.state import StateDir, default_state_dir

state_dir_option = click.option(
    "--state-dir", type=click.Path(file_okay=False, path_type=Path), envvar="KEYTOOLS_SANDBOX_DIR",
    default=None, help="Where configs, databases, logs and pid files live "
                       "(default: the user data dir, e.g. ~/.local/share/keytools/sandbox).")


def _state(path: Path | None) -> StateDir:
    return StateDir(path or default_state_dir())


_COLUMNS = ["service", "pid", "port", "url", "healthy"]


@click.group()
def sandbox() -> None:
    """A real local OpenStack control plane for demos and tests.

    Keystone and Barbican (plus cinder-api, glance-api and Swift on request) installed from PyPI,
    on SQLite (or a private MariaDB), served on 127.0.0.1 only. Needs: pip install 'keytools[sandbox]'.
    """


@sandbox.command()
@state_dir_option
@click.option("--port-base", type=int, default=None,
              help="Use consecutive ports from here (keystone, barbican, ...) instead of free ones.")
@click.option("--db", type=click.Choice(["sqlite", "mariadb"]), default=None,
              help="Databases on SQLite (default) or a private MariaDB server with 4 Barbican workers.")
@click.option("--rbac", type=click.Choice(["legacy", "new"]), default=None,
              help="Barbican policy: legacy (documented creator/observer/audit roles, the default) "
                   "or new (today's defaults: secret creation needs member).")
@click.option("--with", "with_services", multiple=True, type=click.Choice(["cinder", "glance", "swift", "hsm"]),
              help="Also run this service (repeatable). hsm: Barbican with two secret stores, "
                   "software (simple_crypto) and pkcs11 (the global default) on a private SoftHSM2 "
                   "token in the state dir.")
@click.option("--with-swift", is_flag=True, help="Same as --with swift.")
@output.format_option
def up(state_dir: Path | None, port_base: int | None, db: str | None, rbac: str | None,
       with_services: tuple[str, ...], with_swift: bool, output_format: str) -> None:
    """Start the local cloud (idempotent: running services are left alone, a half-initialised
    state dir is repaired), write clouds.yaml, and print the services' status."""
    state = _state(state_dir)
    started = time.monotonic()
    services = list(with_services) + (["swift"] if with_swift else [])
    result = manager.up(state, port_base=port_base, db=db, rbac=rbac, with_services=services)
    output.emit([s.as_dict() for s in result], output_format, _COLUMNS)
    if output_format == "table":
        click.echo(f"ready in {time.monotonic() - started:.1f} s; clouds: {state.clouds_yaml}", err=True)
        click.echo(f"next: eval \"$(keytools sandbox env --state-dir {state.root})\"", err=True)


@sandbox.command()
@state_dir_option
@click.option("--purge", is_flag=True, help="Also delete the state dir (databases, keys, logs).")
def down(state_dir: Path | None, purge: bool) -> None:
    """Stop exactly the processes this sandbox started (idempotent)."""
    stopped = manager.down(_state(state_dir), purge=purge)
    click.echo(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")


@sandbox.command()
@state_dir_option
@output.format_option
def status(state_dir: Path | None, output_format: str) -> None:
    """Show each service's pid, port, URL and health."""
    state = _state(state_dir)
    if not state.exists():
        raise ProblemsFound(f"no sandbox in {state.root}", "Run 'keytools sandbox up' first")
    output.emit([s.as_dict() for s in manager.status(state)], output_format, _COLUMNS)


@sandbox.command()
@state_dir_option
def env(state_dir: Path | None) -> None:
    """Print shell lines that point OpenStack clients at the sandbox's clouds.yaml."""
    for line in manager.env_lines(_state(state_dir)):
        click.echo(line)
