"""``keytools keys reconcile|cleanup|release|undelete``: thin click wiring over keytools.keys."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import click

from keytools import output
from keytools.barbican import cli as barbican_cli
from keytools.errors import UsageError
from keytools.key_refs import options as ref_options
from keytools.keys import reconcile as rec

DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "": 86400}


def parse_duration(value: str, option: str) -> dt.timedelta:
    """``30d``, ``12h``, ``2w``, ``0``; a bare number is days."""
    m = DURATION.match(value or "")
    if not m:
        raise UsageError(f"{option} {value!r} is not a duration", "Write e.g. 30d, 12h, 2w or 0")
    return dt.timedelta(seconds=float(m.group(1)) * UNITS[m.group(2)])


def barbican_options(f: Any) -> Any:
    for opt in reversed([
        click.option("--barbican-db-url", envvar="KEYTOOLS_BARBICAN_DB_URL", metavar="URL",
                     help="Barbican's database, read-only (SQLAlchemy URL; also KEYTOOLS_BARBICAN_DB_URL)."),
        click.option("--barbican-config-file", type=click.Path(dir_okay=False), metavar="BARBICAN_CONF",
                     help="barbican.conf: its [database] connection is read instead of --barbican-db-url."),
    ]):
        f = opt(f)
    return f


def reconcile_options(f: Any) -> Any:
    for opt in reversed([
        click.option("--ignore-service", multiple=True, metavar="SERVICE",
                     help="Reconcile without this service (cinder, nova, glance, swift, barbican; repeatable or "
                          "comma-separated): recorded in the report; secrets only it references look orphaned."),
        click.option("--min-age", default="30d", show_default=True, metavar="DURATION",
                     help="Unreferenced secrets younger than this are not called orphans (30d, 12h, 2w)."),
        click.option("--project", "projects", multiple=True, metavar="PROJECT_ID",
                     help="Report orphans and leftover orders of this Keystone project only (repeatable); every "
                          "reference is still checked."),
        click.option("--clean-min-days", default=90, show_default=True, type=click.IntRange(min=0), metavar="DAYS",
                     help="barbican-manage db clean's --min-days, for the purge counts."),
    ]):
        f = opt(f)
    return f


def run_reconcile(kw: dict[str, Any]) -> rec.Report:
    """Build the sources from the options and reconcile (shared by reconcile and cleanup)."""
    from keytools.keys.barbican_db import BarbicanDB, resolve_url

    url = resolve_url(kw.get("barbican_db_url"), kw.get("barbican_config_file"))
    ignored = ref_options.parse_services(kw.get("ignore_service") or (), ref_options.ALL_SERVICES)
    min_age = parse_duration(kw.get("min_age") or "30d", "--min-age")
    db = BarbicanDB(url)
    try:
        sources = ref_options.sources({**kw, "barbican_db_url": url}, ref_options.ALL_SERVICES, ignored)
        return rec.reconcile(db, sources, ignored, min_age, int(kw.get("clean_min_days", 90)),
                             projects=kw.get("projects") or ())
    finally:
        db.dispose()


@click.group("keys")
def keys() -> None:
    """Every Barbican secret accounted for: reconcile against the services, clean up what is unused."""


@keys.command("reconcile")
@barbican_options
@ref_options.service_options
@ref_options.swift_option
@reconcile_options
@output.format_option
def reconcile_cmd(output_format: str, **kw: Any) -> None:
    """Barbican's secrets (from its database) against every service's references.

    \b
    References: Cinder volumes, snapshots, backups (--db-url); Nova instances' ephemeral keys and
    vTPM secrets, every cell (--nova-api-db-url / --nova-config-file / --nova-db-url); Glance
    images' cinder_encryption_key_id, img_signature_certificate_uuid, os_encrypt_key_id, all
    projects (--glance-cloud, admin); Swift root secrets (--swift-proxy-config, repeatable);
    Barbican's own consumer registrations.

    \b
    Reports: dangling references (missing, deleted, expired or unreadable secret, with what to
    do), orphan secrets older than --min-age by project/creator/kind, leftover orders, and what
    'barbican-manage db clean' would purge. A service not given or not readable is NOT SEEN:
    then no secret is called an orphan (--ignore-service to go on without it, recorded).

    \b
    Exit codes:
      0  no dangling reference
      1  dangling references found
      2  usage error, a database that is not Barbican's/Cinder's/Nova's
      4  the Barbican database cannot be reached
    """
    report = run_reconcile(kw)
    if output_format == "json":
        output.emit(report.as_dict(), "json")
    else:
        render(report)
    failure = report.failure()
    if failure is not None:
        raise failure


def render(report: rec.Report) -> None:
    click.echo(f"Barbican {report.barbican}: {report.secrets} secret(s), {report.live_secrets} live; "
               f"{report.references} reference(s)")
    for service, where in report.survey.seen.items():
        click.echo(f"{service}: {report.per_service.get(service, 0)} reference(s) ({where})")
    for n in report.survey.not_seen:
        state = "IGNORED" if n.service in report.survey.ignored else "NOT SEEN"
        click.echo(f"{n.service}: {state}: {n.reason}")
    for name in report.survey.ignored:
        if name not in {n.service for n in report.survey.not_seen}:
            click.echo(f"{name}: IGNORED (--ignore-service)")
    click.echo(f"\nDangling references: {len(report.dangling)}")
    if report.dangling:
        output.emit([{"service": d.ref.service, "kind": d.ref.kind, "object": d.ref.object_id, "key": d.ref.key_id,
                      "problem": d.problem, "action": d.action} for d in report.dangling], "table",
                    ["service", "kind", "object", "key", "problem", "action"],
                    ["Service", "Kind", "Object", "Key id", "Problem", "What to do"])
    click.echo(f"\nOrphan secrets (older than {report.min_age_days:g} days): {len(report.orphans)}")
    if report.orphans_withheld:
        click.echo(f"  none called orphans: {report.orphans_withheld}")
    elif report.orphans:
        output.emit(report.orphan_groups(), "table", ["project", "creator", "kind", "count", "oldest"],
                    ["Project", "Creator", "Kind", "Count", "Oldest"])
    if report.young_unreferenced:
        click.echo(f"  {report.young_unreferenced} unreferenced secret(s) younger than --min-age not counted")
    click.echo(f"\nLeftover orders: {len(report.leftover_orders)}")
    if report.leftover_orders:
        output.emit(report.leftover_orders, "table", ["order_id", "secret_id", "project", "why"],
                    ["Order", "Secret", "Project", "Why"])
    rows = [{"table": k, "rows": v} for k, v in report.clean.items() if v]
    click.echo(f"\nbarbican-manage db clean --min-days {report.clean_min_days} would purge: "
               f"{'nothing' if not rows else ''}")
    if rows:
        output.emit(rows, "table", ["table", "rows"], ["Table", "Rows"])


def _journal_option(f: Any) -> Any:
    return click.option("--journal", "journal_path", required=True, type=click.Path(dir_okay=False), metavar="FILE",
                        help="The cleanup journal (JSON lines, 0600): what was quarantined, the ACL it had, what "
                             "was deleted. Keep it with the backups.")(f)


def _endpoint_option(f: Any) -> Any:
    return click.option("--barbican-endpoint", metavar="URL",
                        help="Barbican's API URL (default: the service catalog of --os-cloud).")(f)


def _render_cleanup(result: Any, output_format: str) -> None:
    if output_format == "json":
        output.emit(result.as_dict(), "json")
        return
    verb = {"quarantine": "quarantined", "delete": "deleted", "release": "released"}[result.phase]
    head = verb if result.applied else f"would be {verb} (dry run; --apply to act)"
    click.echo(f"{result.phase}: {len(result.secrets)} secret(s), {len(result.orders)} order(s) {head}")
    for s in result.secrets:
        click.echo(f"  secret {s['secret_id']} (project {s.get('project')})")
    for o in result.orders:
        click.echo(f"  order {o['order_id']} (secret {o.get('secret_id')})")
    for s in result.skipped:
        click.echo(f"  skipped {s.get('secret_id') or s.get('order_id')}: {s['why']}")


@keys.command("cleanup")
@barbican_options
@ref_options.service_options
@ref_options.swift_option
@reconcile_options
@click.option("--phase", type=click.Choice(["quarantine", "delete"]), default="quarantine", show_default=True,
              help="quarantine: restrict and tag the orphans, record the leftover orders; delete: delete what "
                   "was quarantined at least --after ago and is still unreferenced (orders first).")
@click.option("--after", default="7d", show_default=True, metavar="DURATION",
              help="delete: only what was quarantined at least this long ago.")
@click.option("--apply", is_flag=True, help="Act (default: dry run, say what would be done).")
@click.option("--backup-out", type=click.Path(dir_okay=False), metavar="ARCHIVE",
              help="With --apply: take 'keytools barbican backup' first (needs --barbican-config-file for the KEK, "
                   "and a passphrase or key file option): deleted rows are purged by db clean one day.")
@barbican_cli.key_options
@_journal_option
@_endpoint_option
@output.format_option
@click.pass_context
def cleanup_cmd(ctx: click.Context, output_format: str, phase: str, after: str, apply: bool,
                backup_out: str | None, journal_path: str, barbican_endpoint: str | None,
                passphrase_file: str | None, passphrase_env: str | None, key_file: str | None, **kw: Any) -> None:
    """Quarantine orphan secrets and leftover orders, later delete them (dry run by default).

    \b
    Exit codes:
      0  done (or nothing to do)
      1  some items failed (rerun: finished items are not done again)
      2  usage error
      4  Barbican or a database unreachable, or Barbican failing for every failed item (rerun)
      6  refused: a service was not seen (or, for delete, ignored)
    """
    from keytools.context import RunContext
    from keytools.keys import cleanup as cl
    from keytools.keys.barbican_db import BarbicanDB, resolve_url

    after_td = parse_duration(after, "--after")
    report = run_reconcile(kw)
    url = resolve_url(kw.get("barbican_db_url"), kw.get("barbican_config_file"))
    db = BarbicanDB(url)
    journal = cl.Journal(journal_path)
    try:
        db.check()
        api = None
        if apply:
            if backup_out:
                _backup(kw, backup_out, barbican_cli.key_source(passphrase_file, passphrase_env, key_file, True))
            api = cl.Barbican((ctx.find_object(RunContext) or RunContext()).session(), barbican_endpoint)
        if phase == "quarantine":
            result = cl.quarantine(report, db, api, journal, apply)
        else:
            ignored = ref_options.parse_services(kw.get("ignore_service") or (), ref_options.ALL_SERVICES)

            def fresh_sources() -> Any:
                return ref_options.sources({**kw, "barbican_db_url": url}, ref_options.ALL_SERVICES, ignored)

            result = cl.delete(report, db, api, journal, fresh_sources, after_td, apply)
    finally:
        db.dispose()
    _render_cleanup(result, output_format)
    failure = result.failure()
    if failure is not None:
        raise failure


def _backup(kw: dict[str, Any], out: str, source: Any) -> None:
    from keytools.barbican import operations

    if not kw.get("barbican_config_file"):
        raise UsageError("--backup-out needs --barbican-config-file",
                         "The KEK in barbican.conf is backed up with the database: give its path")
    operations.backup(kw["barbican_config_file"], out, source)


@keys.command("release")
@click.argument("secret_ids", nargs=-1, metavar="[SECRET_ID]...")
@barbican_options
@click.option("--apply", is_flag=True, help="Act (default: dry run).")
@_journal_option
@_endpoint_option
@output.format_option
@click.pass_context
def release_cmd(ctx: click.Context, secret_ids: tuple[str, ...], apply: bool, journal_path: str,
                barbican_endpoint: str | None, output_format: str, **kw: Any) -> None:
    """Undo a quarantine: the read ACL from before it, the tag removed (all quarantined: no ids)."""
    from keytools.context import RunContext
    from keytools.keys import cleanup as cl
    from keytools.keys.barbican_db import BarbicanDB, resolve_url

    db = BarbicanDB(resolve_url(kw.get("barbican_db_url"), kw.get("barbican_config_file")))
    try:
        db.check()
        run = ctx.find_object(RunContext) or RunContext()
        result = cl.release(list(secret_ids), db, cl.Barbican(run.session(), barbican_endpoint), cl.Journal(journal_path), apply)
    finally:
        db.dispose()
    _render_cleanup(result, output_format)


@keys.command("undelete")
@click.argument("secret_id")
@barbican_options
@click.option("--journal", "journal_path", type=click.Path(dir_okay=False), metavar="FILE",
              help="The cleanup journal: the read ACL keytools recorded is recreated (Barbican hard-deletes ACLs).")
@click.option("--clear-expiration", is_flag=True, help="Also clear the secret's expiration (an expired secret "
                                                       "that objects still use).")
@output.format_option
def undelete_cmd(secret_id: str, journal_path: str | None, clear_expiration: bool, output_format: str,
                 **kw: Any) -> None:
    """Bring a soft-deleted secret back, same id, through Barbican's database (until db clean purges it).

    \b
    Exit codes:
      0  restored (or was not deleted)
      1  the secret is not in the database any more (purged): restore a backup
      2  usage error, not Barbican's database
      4  the database cannot be reached
    """
    from keytools.keys import cleanup as cl
    from keytools.keys.barbican_db import BarbicanDB, resolve_url

    db = BarbicanDB(resolve_url(kw.get("barbican_db_url"), kw.get("barbican_config_file")))
    try:
        db.check()
        out = cl.undelete(db, secret_id, cl.Journal(journal_path) if journal_path else None, clear_expiration)
    finally:
        db.dispose()
    output.emit(out, output_format)
