"""``keytools barbican store status|migrate``: thin click wiring over store_status and store_migrate."""

from __future__ import annotations

import functools
import os
import sys
from typing import Any

import click

from keytools.barbican.barbican_conf import DEFAULT_CONFIG
from keytools.context import RunContext, pass_run
from keytools.errors import ProblemsFound
from keytools.output import emit, format_option
from keytools.progress import progress


def _has_credentials(run: RunContext) -> bool:
    source = run.auth_source
    return bool(source.cloud or source.config_file
                or any(k.startswith("OS_AUTH") or k == "OS_CLOUD" for k in os.environ))


@click.group("store")
def store_group() -> None:
    """Secret stores: where secrets are (per crypto plugin), and moving them to PKCS#11 in place."""


@store_group.command("status", short_help="Secrets per store/plugin and project; stores on each node.")
@click.option("--config", "configs", multiple=True, metavar="FILE", type=click.Path(dir_okay=False),
              help=f"A node's barbican.conf (repeat for every node; the first one's database is counted) "
                   f"[default: {DEFAULT_CONFIG}].")
@format_option
@pass_run
def status_cmd(run: RunContext, configs: tuple[str, ...], output_format: str) -> None:
    """Count secrets per crypto plugin and project from Barbican's database
    (encrypted_data.kek_id -> kek_data.plugin_name), show the stores each node
    configures and whether PKCS#11 is the global default on every node. With
    credentials (--os-cloud) it also asks the Barbican API for its microversion
    (1.3 adds PUT /v1/secrets/{id}/secret-store/{store-id})."""
    from keytools.barbican import store_status

    version = store_status.api_max_version(run.session()) if _has_credentials(run) else None
    result = store_status.status(list(configs) or [DEFAULT_CONFIG], api_max_version=version)
    if output_format == "json":
        emit(result.as_dict(), "json")
        return
    emit([{"project": c.project, "plugin": c.plugin, "active": c.active, "deleted": c.deleted}
          for c in result.counts], "table", ["project", "plugin", "active", "deleted"],
         ["Project", "Crypto plugin", "Secrets", "Soft-deleted"])
    emit([{"config": n.config, "stores": ", ".join(f"{s.name}={s.crypto_plugin}" for s in n.stores) or "-",
           "plugins": ", ".join(n.crypto_plugins), "default": n.default_crypto or "-"} for n in result.nodes],
         "table", ["config", "stores", "plugins", "default"], ["Config", "Stores", "Crypto plugins", "New secrets go to"])
    for pref in result.preferences:
        click.echo(f"project {pref.project} prefers store {pref.store} ({pref.crypto_plugin})")
    click.echo(f"PKCS#11 global default on every node: {'yes' if result.p11_default_everywhere else 'no'}")
    if version:
        click.echo(f"Barbican API microversion {version}: "
                   + ("offers 1.3 (secret-store move)" if result.api_offers_move else "no 1.3 (secret-store move)"))


@store_group.command("migrate", short_help="Move secrets from simple_crypto to PKCS#11, keeping their ids.")
@click.option("--to", "to", type=click.Choice(["pkcs11"]), required=True, help="The store to move to.")
@click.option("--config", "configs", multiple=True, metavar="FILE", type=click.Path(dir_okay=False),
              help="barbican.conf of this node (first; its database, KEK and HSM PIN are used) and of every "
                   f"other node (each checked) [default: {DEFAULT_CONFIG}].")
@click.option("--dry-run", is_flag=True, help="Run the preflight and count what would move; change nothing.")
@click.option("--sample", type=int, metavar="N", help="Move N secrets chosen at random (a trial run).")
@click.option("--seed", type=int, metavar="S", help="Seed of the --sample draw.")
@click.option("--project", metavar="ID", help="Only this Keystone project's secrets.")
@click.option("--api-sample", type=int, default=5, show_default=True, metavar="N",
              help="With credentials (--os-cloud): read N moved secrets of the user's project back through "
                   "the API (0: none).")
@format_option
@pass_run
def migrate_cmd(run: RunContext, to: str, configs: tuple[str, ...], dry_run: bool, sample: int | None,
                seed: int | None, project: str | None, api_sample: int, output_format: str) -> None:
    """Move every active secret from simple_crypto to the PKCS#11 store in place:
    same secret ids, ACLs, consumers and containers. Run it on a Barbican node.

    \b
    Refused (exit 6) unless every --config node enables both plugins and stores
    new secrets on PKCS#11, the HSM holds the MKEK and HMAC key, and no project
    prefers the software store. A wrong PIN is never retried (exit 5).
    Per secret, one transaction: decrypt (simple_crypto), encrypt (p11_crypto,
    the project's KEK), decrypt again and compare, update the row. Kill it and
    rerun: it goes on. Every moved secret is read back through p11_crypto alone.
    Soft-deleted secrets are not moved: keep the simple_crypto KEK until
    'barbican-manage db clean' has purged them. Exit 1 if a secret was skipped.
    """
    from keytools.barbican import store_migrate

    paths = list(configs) or [DEFAULT_CONFIG]
    session = run.session() if api_sample > 0 and _has_credentials(run) else None
    mover = store_migrate.Mover(paths[0], paths[1:], to=to, dry_run=dry_run, sample=sample, seed=seed,
                                project=project, api_session=session, api_sample=api_sample, progress=progress)
    report = mover.run()
    render = functools.partial(_render, report, output_format)
    if not report.ok:
        raise ProblemsFound(f"{len(report.skipped)} secrets skipped, {len(report.verify_failed)} failed "
                            "verification (listed above)",
                            "They stay readable on simple_crypto: see the reasons, fix, and rerun"
                            ).with_report(render)
    render()


def _render(report: Any, output_format: str) -> None:
    if output_format == "json":
        emit(report.as_dict(), "json")
        return
    for problem in [*report.skipped, *report.verify_failed]:
        click.echo(f"SKIPPED/FAILED: secret {problem.secret} (project {problem.project}): {problem.reason}")
    verb = "would move" if report.dry_run else "moved"
    click.echo(f"{verb} {report.selected if report.dry_run else report.moved} of {report.selected} selected "
               f"secrets to {report.to} in {report.seconds:.1f} s; already moved {report.already}; "
               f"verified {report.verified} through p11_crypto alone ({report.fingerprints_compared} by "
               f"fingerprint); API read-back {report.api_checked}{' (' + report.api_note + ')' if report.api_note else ''}; "
               f"still on simple_crypto: {report.remaining}")
    for note in report.notes:
        click.echo(f"note: {note}", err=True)
    sys.stdout.flush()
