"""``keytools migrate``: click wiring only; the work is in migrate.engine, plan, verify, logparse."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from keystoneauth1 import session as ks_session

from keytools import auth, oslo_ini, output, rbac
from keytools.context import RunContext, pass_run
from keytools.errors import KeytoolsError, StateError, UsageError
from keytools.logs import log_event
from keytools.service_errors import translated
from migrate import config, engine, logparse, preflight, repair
from migrate import journal as jr
from migrate.barbican import Barbican
from migrate.db import CinderDB
from migrate.engine import LOG, MSG_NO_ITEMS, Scope

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
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def scope_options(f: Callable[..., Any]) -> Callable[..., Any]:
    opts = [
        click.option("--host", metavar="HOST", help="Only this cinder host, matched as cinder does "
                     "(host, host@backend, host@backend#pool; backups by exact host). Default: all hosts."),
        click.option("--cluster", metavar="CLUSTER", help="Only volumes of this cinder cluster (cluster_name)."),
        click.option("--only", type=click.Choice(["volumes", "backups"]), default=None,
                     help="Only volumes (with their snapshots) or only backups."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _scope(host: str | None, cluster: str | None, only: str | None) -> Scope:
    return Scope(host=host, cluster=cluster, tables=(only,) if only else ("volumes", "backups"))


def _load(kw: dict[str, Any]) -> tuple[config.Settings, CinderDB, Path]:
    settings = config.load(kw.get("config_file"), kw.get("db_url"), kw.get("fixed_key_file"), kw.get("backend"),
                           kw.get("barbican_endpoint"))
    db = CinderDB(settings.db_url)
    path = jr.journal_path(kw.get("state_dir"), db.describe())
    return settings, db, path


def _session(run: RunContext, settings: config.Settings) -> ks_session.Session:
    """cinder's own credentials ([keystone_authtoken]) unless --os-cloud/--auth-config-file says otherwise."""
    src = run.auth_source
    if not src.cloud and not src.config_file and settings.config_file:
        conf = oslo_ini.parse_with_conf_d(settings.config_file)
        if conf.has_section("keystone_authtoken"):
            return auth.session_from_oslo_config(settings.config_file, "keystone_authtoken", src.insecure)
    return run.session()


def _barbican(run: RunContext, settings: config.Settings, concurrency: int = DEFAULT_CONCURRENCY,
              timeout: float = 30.0, retries: int = 4) -> Barbican:
    return Barbican(_session(run, settings), settings.barbican_endpoint, settings.barbican_region,
                    timeout=timeout, retries=retries, pool=concurrency + 2)


@click.group()
def migrate() -> None:
    """Move Cinder's ConfKeyManager keys (all-zeros key id) to Barbican.

    Every volume, snapshot and backup still on the key id 00000000-0000-0000-0000-000000000000
    gets a Barbican secret holding the same fixed_key bytes, exactly as cinder-volume and
    cinder-backup do at start-up, but for all hosts at once, concurrently, crash-safely and with
    a plan, a verification and a log reader.

    \b
    Operator procedure:
      keytools migrate plan   --config-file cinder.conf
      keytools migrate run    --config-file cinder.conf [--grant-creator --admin-cloud ADMIN]
      keytools migrate verify --config-file cinder.conf
      keytools migrate status --config-file cinder.conf --log ctl-0=cinder-volume.log ...
      keytools migrate finish --config-file cinder.conf --revoke-creator --admin-cloud ADMIN
    then retire fixed_key from cinder.conf and nova.conf on every node (keytools fixed-key).

    \b
    Exit codes: 0 done; 1 problems found (verify) or migration errors; 2 bad input (config,
    fixed_key, database URL); 4 Barbican or the database unreachable; 5 forbidden (the
    credentials may not create secrets); 6 refused by state (ConfKeyManager or an unsupported
    backend still configured, rows left on the all-zeros id at finish).
    """


@migrate.command()
@source_options
@scope_options
@output.format_option
def plan(output_format: str, host: str | None, cluster: str | None, only: str | None, **kw: Any) -> None:
    """Dry run: what would be migrated, per table, host and project, and why.

    Reads the database and the journal only; changes nothing and does not contact Barbican.
    Shows cinder's decision (including each "Not migrating ... because" case), rows to migrate,
    snapshots that follow their volume, stranded snapshots a run would repair, secrets a rerun
    would reuse and orphan secrets from earlier runs.
    """
    from migrate.plan import make_plan

    settings, db, path = _load(kw)
    try:
        result = make_plan(settings, db, _scope(host, cluster, only), path)
    finally:
        db.dispose()
    if output_format == "json":
        output.emit(result, "json")
        return
    click.echo(f"Decision: {result['decision']}: {result['message']}")
    click.echo(f"Database: {result['database']}   backend: {result['backend']}   "
               f"fixed_key: {result['key_bits'] or 'not set'}{' bits' if result['key_bits'] else ''}")
    output.emit([{"table": t, "rows": n} for t, n in result["to_migrate"].items()], "table", ["table", "rows"])
    if result["by_host_project"]:
        output.emit(result["by_host_project"], "table", ["table", "host", "project", "rows"])
    for action in result["actions"]:
        click.echo(f"- would {action}")
    if result["snapshots"]:
        output.emit([{**d, "repair": "yes" if d["repair"] else "no"} for d in result["snapshots"]], "table",
                    ["id", "volume_id", "repair", "reason"])


@migrate.command()
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
              "(for --grant-creator).")
@click.option("--timeout", type=click.FloatRange(1, 600), default=30.0, show_default=True,
              help="Seconds to wait for one Barbican request.")
@click.option("--retries", type=click.IntRange(0, 10), default=4, show_default=True,
              help="Retries of a transient Barbican failure (5xx, timeout, refused) before it counts as an error.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: when stderr is a terminal).")
@output.format_option
@pass_run
def run(runctx: RunContext, output_format: str, host: str | None, cluster: str | None, only: str | None,
        concurrency: int, cleanup: bool, grant_creator: bool, admin_cloud: str | None, timeout: float,
        retries: int, progress: bool | None, **kw: Any) -> None:
    """Migrate: one new Barbican secret per volume and per backup, rows updated by compare-and-swap.

    Logs cinder's own lines (Starting migration..., Migrating VolumeMigration <id> encryption key to
    Barbican, the closing status lines) plus one line per migrated row; --log-format json gives
    event, table, id, host, secret_id, done/total and rate. A journal in --state-dir records each
    secret before a row uses it: rerun after any failure or kill and it finishes the work, reusing
    secrets already stored. Two runs at once never migrate a row twice.
    """
    if grant_creator and not admin_cloud:
        raise UsageError("--grant-creator needs --admin-cloud NAME", "Name a clouds.yaml cloud with admin rights")
    settings, db, path = _load(kw)
    try:
        db.check()
        engine.check_decision(settings, db)
        scope = _scope(host, cluster, only)
        pending = jr.replay(path)
        total = sum(db.count(t, scope.host, scope.cluster) for t in scope.tables)
        if total == 0 and not pending.unresolved_intents():
            outcome = engine.Outcome(journal=str(path))
            needs_read_back = any(d.reason == repair.NOT_CHECKED for d in repair.assess(
                db, scope.host, scope.cluster, "volumes" in scope.tables, path, None))
            barbican = _barbican(runctx, settings, concurrency, timeout, retries) if needs_read_back else None
            key = settings.fixed_key or b""
            repaired, outcome.snapshots_left = engine.repair_stranded(
                db, scope, path, (lambda k: barbican.holds(k, key)) if barbican else None)
            outcome.repaired_snapshots = len(repaired)
            log_event(LOG, logging.INFO, MSG_NO_ITEMS, config.SKIP_NOTHING_TO_MIGRATE, host=host)
            outcome.skipped = config.SKIP_NOTHING_TO_MIGRATE
            outcome.orphans = engine.find_orphans(db, pending)
            if outcome.orphans and cleanup:
                barbican = barbican or _barbican(runctx, settings, concurrency, timeout, retries)
                with jr.Journal(path) as journal:
                    m = engine.Migrator(settings, db, barbican, journal, concurrency, progress=False)
                    outcome.deleted_orphans = m.delete_orphans(outcome.orphans)
            outcome.remaining = engine.log_status(db)
            _emit_outcome(outcome, output_format)
            return
        try:  # cinder: creating the client authenticates, finds and contacts Barbican
            barbican = _barbican(runctx, settings, concurrency, timeout, retries)
            check = preflight.probe(barbican)
        except KeytoolsError as exc:
            engine.client_failed(db, exc)
            raise
        with jr.Journal(path) as journal:
            preflight.ensure_can_create(barbican, journal, grant_creator, admin_cloud, check)
            migrator = engine.Migrator(settings, db, barbican, journal, concurrency, progress)
            try:
                outcome = migrator.run(scope, cleanup)
            except Exception:
                _emit_outcome(migrator.outcome, output_format)
                raise
        _emit_outcome(outcome, output_format)
    finally:
        db.dispose()


def _emit_outcome(outcome: engine.Outcome, output_format: str) -> None:
    data = outcome.as_dict()
    if output_format == "json":
        output.emit(data, "json")
        return
    rows = {"rows": outcome.total, "volumes migrated": outcome.migrated["volumes"],
            "snapshots updated": outcome.migrated["snapshots"], "backups migrated": outcome.migrated["backups"],
            "secrets reused": outcome.reused, "rows migrated by another run": outcome.lost,
            "errors": outcome.errors, "aborted": outcome.aborted,
            "snapshots repaired": outcome.repaired_snapshots,
            "snapshots left alone": len(outcome.snapshots_left),
            "orphan secrets": len(outcome.orphans), "orphans deleted": outcome.deleted_orphans,
            "volumes left (all hosts)": outcome.remaining.get("volumes"),
            "backups left (all hosts)": outcome.remaining.get("backups"),
            "seconds": data["seconds"], "rows/s": data["rate_per_s"], "journal": outcome.journal}
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
@output.format_option
@pass_run
def verify(runctx: RunContext, output_format: str, concurrency: int, **kw: Any) -> None:
    """Check every row this migration moved: the secret exists, holds fixed_key, the owner may read it.

    Rows come from the journal. Each secret's payload is compared with fixed_key in constant time;
    the row's user must be in the secret's read ACL; a volume's snapshots must use the same id.
    Prints a table of problems and exits 1 if there are any.
    """
    from keytools.errors import ConfigError, ProblemsFound
    from migrate.verify import verify as run_verify

    settings, db, path = _load(kw)
    if not settings.fixed_key:
        raise ConfigError("fixed_key is not set, so secrets cannot be compared with it",
                          "Pass --fixed-key-file or --config-file with [key_manager] fixed_key")
    try:
        report = run_verify(db, _barbican(runctx, settings, concurrency), settings.fixed_key, path, concurrency)
    finally:
        db.dispose()
    if output_format == "json":
        output.emit(report, "json")
    else:
        click.echo(f"Checked {report['checked']} migrated row(s); {len(report['problems'])} problem(s); "
                   f"left on the all-zeros id: {report['remaining']['volumes']} volume(s), "
                   f"{report['remaining']['snapshots']} snapshot(s), {report['remaining']['backups']} backup(s).")
        if report["problems"]:
            output.emit(report["problems"], "table", ["table", "id", "secret_id", "problem"])
    if report["problems"]:
        raise ProblemsFound(f"{len(report['problems'])} problem(s) among migrated rows",
                            "See the table; rerun 'keytools migrate run' for rows still to migrate")


@migrate.command()
@click.option("--config-file", type=click.Path(dir_okay=False), metavar="CINDER_CONF",
              help="cinder.conf ([database] connection) for the remaining rows.")
@click.option("--db-url", metavar="URL", help="Cinder database URL.")
@click.option("--log", "logs", multiple=True, metavar="[HOST=]FILE|GLOB",
              help="cinder-volume/cinder-backup (or keytools) log file or quoted glob "
                   "('/var/log/cinder/*.log'); repeat for many. The host is taken from HOST= or the "
                   "file name (ctl-0-cinder-volume.log -> ctl-0).")
@click.argument("files", nargs=-1, metavar="[[HOST=]FILE|GLOB]...")
@output.format_option
def status(config_file: str | None, db_url: str | None, logs: tuple[str, ...], files: tuple[str, ...],
           output_format: str) -> None:
    """Rows still on the all-zeros key id (from the database) and, per host, what the logs say.

    Log files come as arguments and/or --log, each a file or a glob (the shell's expansion of
    --log /var/log/cinder/*.log works too). The log summary is parsed from cinder's own lines:
    whether the migration started (or why it did not), rows attempted minus errors, errors,
    abort, and the last status line. keytools' own text and JSON lines are read too. A pattern
    that matches nothing or a file that cannot be read is an error (exit 2).
    """
    logs = tuple(files) + tuple(logs)
    if not (config_file or db_url or logs):
        raise UsageError("nothing to report on", "Pass --config-file/--db-url and/or --log FILE")
    result: dict[str, Any] = {}
    if config_file or db_url:
        if db_url is None:
            db_url = config.load(config_file, None, None, "barbican").db_url if config_file else None
        db = CinderDB(db_url or "")
        try:
            db.check()
            result["remaining"] = db.global_counts()
            result["by_host"] = [r for t in ("volumes", "backups") for r in db.breakdown(t)]
            result["stranded_snapshots"] = len(db.stranded_snapshots())
        finally:
            db.dispose()
    if logs:
        result["hosts"] = logparse.summarize(list(logs))
    if output_format == "json":
        output.emit(result, "json")
        return
    if "remaining" in result:
        r = result["remaining"]
        click.echo(f"Left on the all-zeros key id (all hosts): {r['volumes']} volume(s), {r['snapshots']} "
                   f"snapshot(s), {r['backups']} backup(s).")
        if result["by_host"]:
            output.emit(result["by_host"], "table", ["table", "host", "project", "rows"])
    if logs:
        output.emit(result["hosts"], "table",
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
def finish(runctx: RunContext, revoke_creator: bool, admin_cloud: str | None, user: str | None,
           project: str | None, role: str | None, force: bool, output_format: str, **kw: Any) -> None:
    """Close the migration: refuse while rows remain, then remove the temporary role.

    After this, retire fixed_key from cinder.conf and nova.conf on every node (keep a safe copy:
    backups made before Queens carry the all-zeros id only inside their data).
    """
    settings, db, path = _load(kw)
    try:
        db.check()
        remaining = db.global_counts()
    finally:
        db.dispose()
    left = sum(remaining.values())
    if left and not force:
        raise StateError(f"{remaining['volumes']} volume(s), {remaining['snapshots']} snapshot(s) and "
                         f"{remaining['backups']} backup(s) still use the all-zeros key id",
                         "Run 'keytools migrate run' (and check 'keytools migrate status') first, or pass --force")
    result: dict[str, Any] = {"remaining": remaining, "revoked": []}
    if revoke_creator:
        if not admin_cloud:
            raise UsageError("--revoke-creator needs --admin-cloud NAME", "Name a clouds.yaml cloud with admin rights")
        grants = _grants(path)
        if user or project or role or not grants:
            if not (user and project):
                sess = _session(runctx, settings)
                with translated("Keystone", "reading the migrating user"):
                    access = sess.auth.get_access(sess)
                user = user or access.username
                project = project or access.project_name
            grants = [{"user": user, "project": project, "role": role or "creator"}]
        admin = auth.session_from_cloud(admin_cloud)
        for g in grants:
            removed = rbac.revoke_role(admin, g["user"], g["project"], g["role"])
            result["revoked"].append({**g, "removed": removed})
            log_event(LOG, logging.INFO, f"Revoked role {g['role']} from {g['user']} in project {g['project']}"
                      if removed else f"{g['user']} had no role {g['role']} in project {g['project']}",
                      "revoked_role", **g, removed=removed)
    result["next"] = ("Retire fixed_key: back it up, then remove [key_manager]/[keymgr] fixed_key from "
                      "cinder.conf and nova.conf on every node (keytools fixed-key)")
    if output_format == "json":
        output.emit(result, "json")
        return
    click.echo(f"Nothing left on the all-zeros key id: {not left}.")
    for g in result["revoked"]:
        click.echo(f"Role {g['role']} of {g['user']} in {g['project']}: {'removed' if g['removed'] else 'was not set'}.")
    click.echo(f"Next: {result['next']}.")


def _grants(path: Path) -> list[dict[str, str]]:
    seen: dict[tuple[str, str, str], dict[str, str]] = {}
    for doc in jr.records(path):
        if doc.get("op") == "granted":
            g = {"user": doc["user"], "project": doc["project"], "role": doc["role"]}
            seen[(g["user"], g["project"], g["role"])] = g
    return list(seen.values())
