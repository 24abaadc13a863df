"""``keytools keys reconcile|cleanup|release|undelete``: thin click wiring over keytools.keys."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import click

from keytools import output
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
    click.echo(f"\nbarbican-manage db clean --min-days {report.clean_min_days} would purge:")
    output.emit([{"table": k, "rows": v} for k, v in report.clean.items() if v], "table", ["table", "rows"],
                ["Table", "Rows"])
