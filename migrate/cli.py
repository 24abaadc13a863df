"""``keytools migrate``: click wiring only; the work is in migrate.runner, plan, readback, status, finish."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
from keystoneauth1 import session as ks_session

from keytools import auth, oslo_ini, output
from keytools.context import RunContext, pass_run
from keytools.errors import StateError, UsageError
from migrate import config, engine, runner, services
from migrate import finish as fin
from migrate import journal as jr
from migrate.barbican import Barbican
from migrate import nova as nova_acl
from migrate.consumer import Consumer, Readers
from migrate.engine import Scope

DEFAULT_CONCURRENCY = 8


def source_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Where the database, the key and the backend come from (cinder.conf or explicit)."""
    opts = [
        click.option("--config-file", type=click.Path(dir_okay=False), metavar="CINDER_CONF",
                     help="cinder.conf: [database] connection, [key_manager] backend and fixed_key "
                          "(or the deprecated [keymgr]), [keystone_authtoken] credentials."),
        click.option("--db-url", metavar="URL", help="Cinder database SQLAlchemy URL (overrides the config)."),
        click.option("--fixed-key-file", type=click.Path(dir_okay=False), metavar="FILE",
                     help="File holding the hex fixed_key (overrides the config)."),
        click.option("--backend", metavar="NAME", default=None,
                     help="Key manager backend as cinder has it configured (default: from the config, "
                          "else barbican)."),
        click.option("--barbican-endpoint", metavar="URL", default=None,
                     help="Barbican URL (default: [barbican] barbican_endpoint, else the service catalog)."),
        click.option("--state-dir", type=click.Path(file_okay=False), metavar="DIR",
                     help="Where the journal lives (default ~/.local/state/keytools/migrate)."),
        click.option("--service", metavar="LIST", help="Services to cover, comma-separated: cinder, nova, "
                     "glance (default: every service whose options are given)."),
        click.option("--nova-config-file", type=click.Path(dir_okay=False), metavar="NOVA_CONF",
                     help="nova.conf: [api_database] connection (cells from cell_mappings), [database] "
                          "connection (templated cell URLs, or the one cell of a compute's nova.conf); "
                          "fixed_key and [keystone_authtoken] when no cinder.conf is given."),
        click.option("--nova-api-db-url", metavar="URL", help="nova_api database URL (cells from cell_mappings)."),
        click.option("--nova-db-url", multiple=True, metavar="[CELL=]URL",
                     help="A Nova cell database, repeatable (instead of cell_mappings)."),
        click.option("--glance-cloud", metavar="NAME", help="clouds.yaml cloud with the admin role: Glance images "
                     "of every project are listed and patched with it, and the owner project's members "
                     "are listed from Keystone with it (the secrets themselves are created as for Cinder)."),
        click.option("--glance-endpoint", metavar="URL", help="Glance URL (default: the service catalog)."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def scope_options(f: Callable[..., Any]) -> Callable[..., Any]:
    opts = [
        click.option("--cell", metavar="CELL", help="Only Nova instances of this cell (cell_mappings name)."),
        click.option("--host", metavar="HOST", help="Only this cinder host, matched as cinder does "
                     "(host, host@backend, host@backend#pool; backups by exact host). Default: all hosts."),
        click.option("--cluster", metavar="CLUSTER", help="Only volumes of this cinder cluster (cluster_name)."),
        click.option("--only", type=click.Choice(["volumes", "backups"]), default=None,
                     help="Only volumes (with their snapshots) or only backups."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


acl_option = click.option(
    "--acl", "acl_mode", type=click.Choice(["owner", "project"]), default=None,
    help="Read ACL of the new secrets. Cinder volumes: owner (default, cinder's behaviour: the volume's user) "
         "or project (every member of the volume's project). Nova instances: project (default: the instance's "
         "user, every member of its project and every admin, so colleagues' start/reboot and admins' rebuild, "
         "migrate and evacuate keep working as with fixed_key) or owner (the instance's user only). Members "
         "are listed from Keystone when the run starts (later ones are not added). Backups: their user; "
         "Glance images: the owner project's members.")


def _scope(host: str | None, cluster: str | None, only: str | None, cell: str | None = None) -> Scope:
    return Scope(host=host, cluster=cluster, tables=(only,) if only else ("volumes", "backups"), cell=cell)


def _settings(kw: dict[str, Any], names: list[str]) -> config.Settings:
    return config.load(kw.get("config_file"), kw.get("db_url"), kw.get("fixed_key_file"), kw.get("backend"),
                       kw.get("barbican_endpoint"), require_db="cinder" in names,
                       service_conf=kw.get("nova_config_file"))


@contextlib.contextmanager
def _consumers(kw: dict[str, Any], readers: dict[str, Readers] | None = None
               ) -> Iterator[tuple[config.Settings, list[tuple[Consumer, Path]]]]:
    """Every selected service's consumer and its journal (one per service identity), disposed
    of when the block ends."""
    names = services.selected(kw)
    settings = _settings(kw, names)
    built: list[tuple[Consumer, Path]] = []
    try:
        for name in names:
            consumer = services.build(name, kw, settings, (readers or {}).get(name))
            built.append((consumer, jr.journal_path(kw.get("state_dir"), consumer.identity())))
        yield settings, built
    finally:
        for consumer, _ in built:
            consumer.dispose()


def _session(run: RunContext, settings: config.Settings, service_conf: str | None = None) -> ks_session.Session:
    """cinder's own credentials ([keystone_authtoken]; nova's when only nova.conf is given) unless
    --os-cloud/--auth-config-file says otherwise."""
    src = run.auth_source
    conf_file = settings.config_file or service_conf
    if not src.cloud and not src.config_file and conf_file:
        conf = oslo_ini.parse_with_conf_d(conf_file)
        if conf.has_section("keystone_authtoken"):
            return auth.session_from_oslo_config(conf_file, "keystone_authtoken", src.insecure)
    return run.session()


def _barbican(run: RunContext, settings: config.Settings, concurrency: int = DEFAULT_CONCURRENCY,
              timeout: float = 30.0, retries: int = 4, kw: dict[str, Any] | None = None) -> Barbican:
    return Barbican(_session(run, settings, (kw or {}).get("nova_config_file")), settings.barbican_endpoint,
                    settings.barbican_region,
                    timeout=timeout, retries=retries, pool=concurrency + 2)


@click.group()
def migrate() -> None:
    """Move Cinder's ConfKeyManager keys (all-zeros key id) to Barbican.

    Every volume, snapshot and backup still on the key id 00000000-0000-0000-0000-000000000000
    gets a Barbican secret holding the same fixed_key bytes, exactly as cinder-volume and
    cinder-backup do at start-up, but for all hosts at once, concurrently, crash-safely and with
    a plan, a verification and a log reader. Nova instances (ephemeral_key_uuid, every cell) and
    Glance images (cinder_encryption_key_id, every project, --glance-cloud admin credentials) on
    the same id are migrated the same way (--service cinder,nova,glance).

    \b
    Operator procedure:
      keytools migrate plan   --config-file cinder.conf
      keytools migrate run    --config-file cinder.conf [--grant-creator --admin-cloud ADMIN]
      keytools migrate verify --config-file cinder.conf [--luks '/dev/cinder-volumes/volume-{id}']
      keytools migrate status --config-file cinder.conf --log ctl-0=cinder-volume.log ...
      keytools migrate finish --config-file cinder.conf --revoke-creator --admin-cloud ADMIN
    then retire fixed_key from cinder.conf and nova.conf on every node (keytools fixed-key). The
    migrated secrets still hold fixed_key's bytes: 'keytools fixed-key exposure' shows what it
    still opens, 'keytools migrate rekey --luks TEMPLATE' gives the volumes keys of their own.

    \b
    Exit codes: 0 done; 1 problems found (verify, also a LUKS header not opened) or migration
    errors; 2 bad input (config, fixed_key, database URL, --luks, cryptsetup missing); 4 Barbican,
    Glance or the database unreachable; 5 forbidden (the credentials may not create secrets,
    --glance-cloud without the admin role); 6 refused by state (ConfKeyManager or an unsupported
    backend still configured, rows left on the all-zeros id at finish).
    """


@migrate.command()
@source_options
@scope_options
@acl_option
@output.format_option
def plan(output_format: str, host: str | None, cluster: str | None, only: str | None, cell: str | None,
         acl_mode: str, **kw: Any) -> None:
    """Dry run: what would be migrated, per service, table, host/cell and project, and why.

    Reads the databases and the journals only; changes nothing and does not contact Barbican.
    Shows cinder's decision (including each "Not migrating ... because" case), rows to migrate,
    snapshots that follow their volume, stranded snapshots a run would repair, Nova instances per
    cell, secrets a rerun would reuse and orphan secrets from earlier runs.
    """
    from migrate.plan import plan_services

    with _consumers(kw) as (settings, built):
        result = plan_services(settings, built, _scope(host, cluster, only, cell), acl_mode)
    if output_format == "json":
        output.emit(result.as_dict(), "json")
        return
    for plan in result.plans:
        if len(result.plans) > 1:
            click.echo(f"== {plan.service} ==")
        click.echo(f"Decision: {plan.decision}: {plan.message}")
        click.echo(f"{'Glance' if plan.service == 'glance' else 'Database'}: {plan.database}   "
                   f"backend: {plan.backend}   "
                   f"fixed_key: {plan.key_bits or 'not set'}{' bits' if plan.key_bits else ''}")
        output.emit([{"table": t, "rows": n} for t, n in plan.to_migrate.items()], "table", ["table", "rows"])
        if plan.by_host_project:
            cols = {"nova": ["table", "cell", "host", "project", "rows"],
                    "glance": ["table", "project", "rows", "acl_users"]}.get(
                        plan.service, ["table", "host", "project", "rows"])
            output.emit(plan.by_host_project, "table", cols)
        for action in plan.actions:
            click.echo(f"- would {action}")
        if plan.snapshots:
            output.emit([{**d, "repair": "yes" if d["repair"] else "no"} for d in plan.snapshots], "table",
                        ["id", "volume_id", "repair", "reason"])


@migrate.command("run")
@source_options
@scope_options
@click.option("--concurrency", type=click.IntRange(1, 64), default=DEFAULT_CONCURRENCY, show_default=True,
              help="Rows migrated at once. Barbican on SQLite serialises writes: use 1-2 there; "
                   "on MariaDB/MySQL with several workers 8-16.")
@click.option("--cleanup", is_flag=True, help="Delete orphan secrets (made by an earlier or concurrent run, "
              "used by no row) instead of only reporting them.")
@click.option("--grant-creator", is_flag=True, help="If the credentials may not create secrets, grant the "
              "missing role (creator, or member under Barbican's new policy) with --admin-cloud credentials.")
@click.option("--admin-cloud", metavar="NAME", help="clouds.yaml cloud with Keystone admin rights "
              "(for --grant-creator, and to list project members for --acl project).")
@acl_option
@click.option("--timeout", type=click.FloatRange(1, 600), default=30.0, show_default=True,
              help="Seconds to wait for one Barbican request.")
@click.option("--retries", type=click.IntRange(0, 10), default=4, show_default=True,
              help="Retries of a transient Barbican failure (5xx, timeout, refused) before it counts as an error.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: when stderr is a terminal).")
@output.format_option
@pass_run
def run_cmd(run: RunContext, output_format: str, host: str | None, cluster: str | None, only: str | None,
        cell: str | None, concurrency: int, cleanup: bool, grant_creator: bool, admin_cloud: str | None,
        acl_mode: str, timeout: float, retries: int, progress: bool | None, **kw: Any) -> None:
    """Migrate: one new Barbican secret per volume, backup and instance, rows updated by compare-and-swap.

    Logs cinder's own lines (Starting migration..., Migrating VolumeMigration <id> encryption key to
    Barbican, the closing status lines) plus one line per migrated row; --log-format json gives
    event, service, table, id, host, cell, secret_id, done/total and rate. A journal per service
    in --state-dir records each secret before a row uses it: rerun after any failure or kill and
    it finishes the work, reusing secrets already stored. Two runs at once never migrate a row twice.
    Services run one after the other (cinder, nova, glance).
    """
    if grant_creator and not admin_cloud:
        raise UsageError("--grant-creator needs --admin-cloud NAME", "Name a clouds.yaml cloud with admin rights")
    readers = _readers(run, admin_cloud, acl_mode, services.selected(kw))
    options = runner.RunOptions(concurrency=concurrency, cleanup=cleanup, grant_creator=grant_creator,
                                admin_cloud=admin_cloud, progress=progress)
    with _consumers(kw, readers) as (settings, built):
        result = runner.migrate_services(settings, built, _scope(host, cluster, only, cell),
                                         lambda: _barbican(run, settings, concurrency, timeout, retries, kw),
                                         options)
    _emit_outcomes(result.outcomes, output_format)
    if result.error is not None:
        raise result.error


def _readers(run: RunContext, admin_cloud: str | None, acl_mode: str | None,
             names: list[str]) -> dict[str, Readers]:
    """Each service's read-ACL function for ``--acl`` (see ``acl_option``): project-wide ACLs list
    members from Keystone (--admin-cloud, else the run's credentials) when the run starts."""
    modes = {"cinder": acl_mode or "owner", "nova": acl_mode or nova_acl.DEFAULT}
    wanted = [n for n in names if modes.get(n) == "project"]
    if not wanted:
        return {}
    from keytools.keystone_members import ProjectMembers

    members = ProjectMembers(auth.session_from_cloud(admin_cloud) if admin_cloud else run.session())
    readers: dict[str, Readers] = {}
    if "cinder" in wanted:
        readers["cinder"] = lambda item: (members(item.project_id) if item.table == "volumes"
                                          else [item.user_id] if item.user_id else [])
    if "nova" in wanted:
        readers["nova"] = nova_acl.project_readers(members, admin_cloud)
    return readers


def _emit_outcomes(outcomes: list[engine.Outcome], output_format: str) -> None:
    if len(outcomes) == 1:
        _emit_outcome(outcomes[0], output_format)
        return
    if output_format == "json":
        output.emit({"services": [o.as_dict() for o in outcomes]}, "json")
        return
    for outcome in outcomes:
        click.echo(f"== {outcome.service} ==")
        _emit_outcome(outcome, output_format)


def _emit_outcome(outcome: engine.Outcome, output_format: str) -> None:
    data = outcome.as_dict()
    if output_format == "json":
        output.emit(data, "json")
        return
    if outcome.service == "cinder":
        rows = {"rows": outcome.total, "volumes migrated": outcome.migrated["volumes"],
                "snapshots updated": outcome.migrated["snapshots"], "backups migrated": outcome.migrated["backups"]}
    else:
        rows = {"rows": outcome.total, **{f"{t} migrated": n for t, n in outcome.migrated.items()}}
    rows.update({"secrets reused": outcome.reused, "rows migrated by another run": outcome.lost,
                 "errors": outcome.errors, "aborted": outcome.aborted})
    if outcome.service == "cinder":
        rows["snapshots repaired"] = outcome.repaired_snapshots
        rows["snapshots left alone"] = len(outcome.snapshots_left)
    rows.update({"orphan secrets": len(outcome.orphans), "orphans deleted": outcome.deleted_orphans})
    for table, n in outcome.remaining.items():
        if outcome.service != "cinder" or table != "snapshots":
            where = {"nova": "cells", "glance": "projects"}.get(outcome.service, "hosts")
            rows[f"{table} left (all {where})"] = n
    rows.update({"seconds": data["seconds"], "rows/s": data["rate_per_s"], "journal": outcome.journal})
    output.emit(rows, "table")
    if outcome.snapshots_left:
        output.emit(outcome.snapshots_left, "table", ["id", "volume_id", "reason"])
        click.echo("Snapshots left on the all-zeros key id keep their fixed_key data; see the log lines for why.")
    if outcome.orphans and not outcome.deleted_orphans:
        output.emit(outcome.orphans, "table", ["table", "id", "secret_id"])
        click.echo("Orphan secrets are used by no row; rerun with --cleanup to delete them.")


@migrate.command()
@source_options
@click.option("--concurrency", type=click.IntRange(1, 64), default=DEFAULT_CONCURRENCY, show_default=True)
@click.option("--luks", "luks", multiple=True, metavar="TEMPLATE|VOLUME_ID=PATH",
              help="Also test that each Cinder volume's key opens its LUKS header, read-only (cryptsetup open "
                   "--test-passphrase --readonly, passphrase = hex of the key bytes as os-brick derives it). "
                   "A template with {id} (e.g. /dev/cinder-volumes/volume-{id}) covers every migrated volume "
                   "and every volume still on the all-zeros id; VOLUME_ID=PATH (repeatable) names one.")
@output.format_option
@pass_run
def verify(run: RunContext, output_format: str, concurrency: int, luks: tuple[str, ...], **kw: Any) -> None:
    """Check every row this migration moved: the secret exists, holds fixed_key, the owner may read it.

    Rows come from each service's journal (volumes, backups, instances, images). Each secret's
    payload is compared with fixed_key in constant time; the row's user (for an image: every
    current member of its owner project) must be in the secret's read ACL; a volume's snapshots
    must use the same id. With --luks, each volume's key must also open the volume's LUKS header.
    Prints a table of problems and exits 1 if there are any.
    """
    from migrate import luks as lk
    from migrate import readback

    spec = lk.PathSpec.parse(luks) if luks else None
    cryptsetup = lk.find_cryptsetup() if spec else ""
    if spec and "cinder" not in services.selected(kw):
        raise UsageError("--luks checks Cinder volumes, but no Cinder database is given",
                         "Pass --config-file cinder.conf or --db-url (and --service cinder if you name services)")
    with _consumers(kw) as (settings, built):
        result = readback.verify_migration(settings, built, lambda: _barbican(run, settings, concurrency, kw=kw),
                                           concurrency, spec, cryptsetup)
    if output_format == "json":
        output.emit(result.as_dict(), "json")
    else:
        for report in result.reports:
            left = ", ".join(f"{n} {t}" for t, n in report.remaining.items())
            click.echo(f"{report.service}: checked {report.checked} migrated row(s); "
                       f"{len(report.problems)} problem(s); left on the all-zeros id: {left}.")
            if report.problems:
                output.emit(report.problems, "table", ["table", "id", "secret_id", "problem"])
        if result.luks is not None:
            ok = len(result.luks) - len(result.bad_luks)
            click.echo(f"LUKS: {ok} of {len(result.luks)} volume header(s) open with their key.")
            if result.luks:
                output.emit([r.as_dict() for r in result.luks], "table",
                            ["volume_id", "key_id", "path", "result", "detail"])
    failure = result.failure()
    if failure is not None:
        raise failure


@migrate.command()
@click.option("--config-file", type=click.Path(dir_okay=False), metavar="CINDER_CONF",
              help="cinder.conf ([database] connection) for the remaining rows.")
@click.option("--db-url", metavar="URL", help="Cinder database URL.")
@click.option("--log", "logs", multiple=True, metavar="[HOST=]FILE|GLOB",
              help="cinder-volume/cinder-backup (or keytools) log file or quoted glob "
                   "('/var/log/cinder/*.log'); repeat for many. The host is taken from HOST= or the "
                   "file name (ctl-0-cinder-volume.log -> ctl-0).")
@click.argument("files", nargs=-1, metavar="[[HOST=]FILE|GLOB]...")
@click.option("--nova-config-file", type=click.Path(dir_okay=False), metavar="NOVA_CONF",
              help="nova.conf ([api_database]/[database] connection) for the remaining instances.")
@click.option("--nova-api-db-url", metavar="URL", help="nova_api database (cells from cell_mappings).")
@click.option("--nova-db-url", multiple=True, metavar="[CELL=]URL", help="A Nova cell database (repeatable).")
@click.option("--glance-cloud", metavar="NAME", help="clouds.yaml cloud with the admin role: images of every "
              "project still on the all-zeros cinder_encryption_key_id.")
@click.option("--glance-endpoint", metavar="URL", help="Glance URL (default: the service catalog).")
@output.format_option
def status(config_file: str | None, db_url: str | None, logs: tuple[str, ...], files: tuple[str, ...],
           output_format: str, nova_config_file: str | None, nova_api_db_url: str | None,
           nova_db_url: tuple[str, ...], glance_cloud: str | None, glance_endpoint: str | None) -> None:
    """Rows still on the all-zeros key id (from the database) and, per host, what the logs say.

    Log files come as arguments and/or --log, each a file or a glob (the shell's expansion of
    --log /var/log/cinder/*.log works too). The log summary is parsed from cinder's own lines:
    whether the migration started (or why it did not), rows attempted minus errors, errors,
    abort, and the last status line. keytools' own text and JSON lines are read too. A pattern
    that matches nothing or a file that cannot be read is an error (exit 2).
    """
    from migrate.status import migration_status

    result = migration_status(config_file, db_url, tuple(files) + tuple(logs), nova_config_file, nova_api_db_url,
                              nova_db_url, glance_cloud, glance_endpoint)
    if output_format == "json":
        output.emit(result.as_dict(), "json")
        return
    if result.cinder_remaining is not None:
        r = result.cinder_remaining
        click.echo(f"Left on the all-zeros key id (all hosts): {r['volumes']} volume(s), {r['snapshots']} "
                   f"snapshot(s), {r['backups']} backup(s).")
        if result.cinder_by_host:
            output.emit(result.cinder_by_host, "table", ["table", "host", "project", "rows"])
    if result.nova is not None:
        click.echo(f"Left on the all-zeros ephemeral key id (all cells): "
                   f"{result.nova['remaining']['instances']} instance(s).")
        if result.nova["by_cell"]:
            output.emit(result.nova["by_cell"], "table", ["table", "cell", "host", "project", "rows"])
    if result.glance is not None:
        click.echo(f"Left on the all-zeros cinder_encryption_key_id (all projects): "
                   f"{result.glance['remaining']['images']} image(s).")
        if result.glance["by_project"]:
            output.emit(result.glance["by_project"], "table", ["table", "project", "rows"])
    if result.hosts is not None:
        output.emit(result.hosts, "table",
                    ["host", "service", "state", "started", "migrated", "errors", "last_status"])


@migrate.command()
@source_options
@click.option("--revoke-creator", is_flag=True, help="Remove the role granted for the migration "
              "(recorded by --grant-creator, else --role) from the migrating user.")
@click.option("--admin-cloud", metavar="NAME", help="clouds.yaml cloud with Keystone admin rights.")
@click.option("--user", metavar="USER", help="User to revoke from (default: the migrating credentials' user).")
@click.option("--project", metavar="PROJECT", help="Project (default: the migrating credentials' project).")
@click.option("--role", metavar="ROLE", default=None, help="Role to revoke (default: what --grant-creator "
              "granted, else creator).")
@click.option("--force", is_flag=True, help="Finish although rows are still on the all-zeros key id.")
@output.format_option
@pass_run
def finish(run: RunContext, revoke_creator: bool, admin_cloud: str | None, user: str | None,
           project: str | None, role: str | None, force: bool, output_format: str, **kw: Any) -> None:
    """Close the migration: refuse while rows remain, then remove the temporary role.

    After this, retire fixed_key from cinder.conf and nova.conf on every node (keep a safe copy:
    backups made before Queens carry the all-zeros id only inside their data).
    """
    request = fin.RevokeRequest(admin_cloud, user, project, role) if revoke_creator else None
    with _consumers(kw) as (settings, built):
        result = fin.finish_migration(built, force, request, lambda: _session(run, settings))
    if output_format == "json":
        output.emit(result.as_dict(), "json")
        return
    click.echo(f"Nothing left on the all-zeros key id: {not result.left}.")
    for g in result.revoked:
        click.echo(f"Role {g.role} of {g.user} in {g.project}: {'removed' if g.removed else 'was not set'}.")
    click.echo(f"Next: {result.next}.")


@migrate.command()
@click.option("--config-file", type=click.Path(dir_okay=False), metavar="CINDER_CONF",
              help="cinder.conf: [database] connection, fixed_key, [barbican], [keystone_authtoken] credentials.")
@click.option("--db-url", metavar="URL", help="Cinder database SQLAlchemy URL (overrides the config).")
@click.option("--fixed-key-file", type=click.Path(dir_okay=False), metavar="FILE",
              help="File holding the hex fixed_key (overrides the config).")
@click.option("--barbican-endpoint", metavar="URL", default=None, help="Barbican URL (default: [barbican] "
              "barbican_endpoint, else the service catalog).")
@click.option("--state-dir", type=click.Path(file_okay=False), metavar="DIR",
              help="Where the journal lives (default ~/.local/state/keytools/migrate).")
@click.option("--luks", "luks", multiple=True, required=True, metavar="TEMPLATE|VOLUME_ID=PATH",
              help="Each volume's LUKS header, as for 'migrate verify --luks': a template with {id} "
                   "(/dev/cinder-volumes/volume-{id}) and/or VOLUME_ID=PATH (repeatable); block device or image file.")
@click.option("--volume", "volumes", multiple=True, metavar="ID", help="Re-key this volume whatever its key "
              "(repeatable; a routine key rotation). Default: every volume whose key is fixed_key.")
@click.option("--host", metavar="HOST", help="Only volumes of this cinder host, matched as cinder does.")
@click.option("--cluster", metavar="CLUSTER", help="Only volumes of this cinder cluster (cluster_name).")
@click.option("--include-in-use", is_flag=True, help="Also attached volumes (a keyslot change does not touch an "
              "open dm-crypt mapping or qemu's open image).")
@click.option("--dry-run", is_flag=True, help="Plan only: which volumes, which header, free keyslots; change nothing.")
@click.option("--concurrency", type=click.IntRange(1, 32), default=2, show_default=True,
              help="Volumes at once; lowered to the memory available (1 GiB each) unless --pbkdf pbkdf2.")
@click.option("--pbkdf", type=click.Choice(["argon2id", "argon2i", "pbkdf2"]), default=None,
              help="PBKDF of the new keyslots (passed to cryptsetup; default: cryptsetup's own).")
@click.option("--pbkdf-force-iterations", type=click.IntRange(1000, None), default=None, metavar="N",
              help="Fixed PBKDF iterations of the new keyslots (passed to cryptsetup).")
@click.option("--reencrypt-data", is_flag=True, help="LUKS2: also a new volume key (cryptsetup reencrypt "
              "--force-offline-reencrypt; resumed after a crash). LUKS1: not possible, said per volume.")
@click.option("--acl", "acl_mode", type=click.Choice(["owner", "project"]), default="owner", show_default=True,
              help="Read ACL of the new secrets: the old secret's readers plus the owner, or plus every member "
                   "of the volume's project.")
@click.option("--admin-cloud", metavar="NAME", help="clouds.yaml cloud that may list project members (--acl project).")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: when stderr is a terminal).")
@output.format_option
@pass_run
def rekey(run: RunContext, output_format: str, luks: tuple[str, ...], volumes: tuple[str, ...], host: str | None,
          cluster: str | None, include_in_use: bool, dry_run: bool, concurrency: int, pbkdf: str | None,
          pbkdf_force_iterations: int | None, reencrypt_data: bool, acl_mode: str, admin_cloud: str | None,
          progress: bool | None, **kw: Any) -> None:
    """Re-key volumes whose key is fixed_key: a new secret, a new keyslot, the row, old keyslots out.

    Per volume, crash-safely: a new secret (fresh random key of the volume type's key size, ACL'd
    like the old one, read back); cryptsetup luksAddKey and a test of the new key; compare-and-swap
    of encryption_key_id old -> new; every keyslot the old key or fixed_key opens removed, and proof
    that neither opens the header. A rerun after any failure or kill finishes from the journal and
    the header's own state. The old secret is never deleted (snapshots and backups keep the old
    header and are reported). Passphrases are os-brick's (hex of the key bytes).

    \b
    Exit codes: 0 every selected volume re-keyed; 1 one was refused or left alone (see its reason);
    2 bad input (--luks, fixed_key, cryptsetup missing); 4 Barbican or the database unreachable.
    """
    from keytools.tools import find_tool
    from migrate import keyslots
    from migrate import luks as lk
    from migrate import rekey as rk
    from migrate.db import RekeyDB

    spec = lk.PathSpec.parse(luks)
    cryptsetup = find_tool("cryptsetup", "Install it (Debian/Ubuntu: apt-get install cryptsetup-bin) or add "
                           "/usr/sbin to PATH")
    settings = config.load(kw.get("config_file"), kw.get("db_url"), kw.get("fixed_key_file"), None,
                           kw.get("barbican_endpoint"))
    if settings.backend == "ConfKeyManager":
        raise StateError("cinder's [key_manager] backend is still ConfKeyManager",
                         "Migrate to Barbican first ('keytools migrate run'): new keys are Barbican secrets")
    readers = None
    if acl_mode == "project":
        from keytools.keystone_members import ProjectMembers

        members = ProjectMembers(auth.session_from_cloud(admin_cloud) if admin_cloud else run.session())

        def readers(vol: Any) -> list[str]:
            return members(vol.project_id)

    options = rk.RekeyOptions(volumes=volumes, host=host, cluster=cluster, include_in_use=include_in_use,
                              dry_run=dry_run, concurrency=concurrency,
                              pbkdf=keyslots.Pbkdf(pbkdf, pbkdf_force_iterations), reencrypt_data=reencrypt_data,
                              progress=progress)
    db = RekeyDB(settings.db_url)
    try:
        result = rk.rekey_volumes(db, spec, lambda: _barbican(run, settings, concurrency), cryptsetup,
                                  settings.fixed_key, rk.journal_path(kw.get("state_dir"), db.describe()), options,
                                  readers)
    finally:
        db.dispose()
    if output_format == "json":
        output.emit(result.as_dict(), "json")
    else:
        counts = ", ".join(f"{n} {s}" for s, n in result.counts().items()) or "no volume selected"
        click.echo(f"{'Dry run: ' if dry_run else ''}{counts} ({result.seconds:.1f} s, concurrency "
                   f"{result.concurrency}).")
        if result.concurrency_note:
            click.echo(result.concurrency_note + ".")
        if result.volumes:
            output.emit([{**r.as_dict(), "kept_for": len(r.old_key_kept_for)} for r in result.volumes], "table",
                        ["volume_id", "status", "header", "old_key_id", "new_key_id", "volume_key", "kept_for",
                         "reason"])
        kept = [r for r in result.volumes if r.old_key_kept_for]
        if kept:
            click.echo(f"{sum(len(r.old_key_kept_for) for r in kept)} snapshot(s)/backup(s) still use an old key "
                       "(their data holds the old header): the old secrets are kept; see 'keytools fixed-key "
                       "exposure'.")
    failure = result.failure()
    if failure is not None:
        raise failure

