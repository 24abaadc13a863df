"""``keytools audit`` and ``keytools fixed-key``: thin click wiring over config_checks' library."""

from __future__ import annotations

import functools
import os
import sys

import click

from config_checks import fixed_key as fk
from config_checks import formats, registry
from config_checks.audit import audit_roots, failure
from config_checks.inputs import DEFAULT_ROOT
from config_checks.model import SEVERITY_NAMES, Severity
from config_checks import inventory as fki_inventory
from keytools import fixed_key_refs as fki
from keytools import output
from keytools.errors import UsageError
from keytools.fileutil import atomic_write
from keytools.context import RunContext, pass_run
from keytools.key_refs import options as ref_options
from keytools.key_refs.options import service_options

def _rules(only: tuple[str, ...], skip: tuple[str, ...]) -> tuple:
    try:
        return registry.select(list(only) or None, list(skip))
    except KeyError as exc:
        raise UsageError(f"unknown rule {exc.args[0]!r}", "List the rules with: keytools audit --list-rules") from None


@click.command("audit")
@click.argument("roots", nargs=-1, type=click.Path(file_okay=False), metavar="[ROOT]...")
@click.option("--per-node", is_flag=True, help="Each ROOT holds one config tree per node, in subdirectories.")
@click.option("--format", "-f", "fmt", type=click.Choice(sorted(formats.RENDERERS)), default="text",
              show_default=True, help="text for people; json, sarif (2.1.0) or junit for tools and CI.")
@click.option("--severity", type=click.Choice(SEVERITY_NAMES), default="low", show_default=True,
              help="Report findings at or above this severity; exit 1 if any.")
@click.option("--rule", "only", multiple=True, metavar="ID", help="Run only this rule (id or name; repeatable).")
@click.option("--skip-rule", "skip", multiple=True, metavar="ID", help="Do not run this rule (repeatable).")
@click.option("--list-rules", is_flag=True, help="List every rule (id, severity, title) and exit.")
@click.option("--output", "-o", "out_file", type=click.Path(dir_okay=False), metavar="FILE",
              help="Write the report to FILE (atomically) instead of stdout.")
def audit(roots: tuple[str, ...], per_node: bool, fmt: str, severity: str,
          only: tuple[str, ...], skip: tuple[str, ...], list_rules: bool, out_file: str | None) -> None:
    """Audit OpenStack config trees for fixed_key leftovers and key-manager misconfiguration.

    Reads cinder, nova (nova, nova_libvirt, nova_compute, nova_metadata), glance-api, swift proxy
    and keymaster, and barbican configs, plus their *.conf.d directories, with oslo.config's
    parsing rules, and runs every registered rule (see --list-rules) on each node and across
    nodes. Secrets are never printed: only "set", their length and a sha256 prefix.

    ROOT (default /var/lib/config-data/puppet-generated) is a TripleO tree, an /etc tree, a node's
    copy of either, or with --per-node a directory holding one such tree per node (node name =
    subdirectory). Several ROOTs are compared with each other (fixed_key, endpoints).

    \b
    Exit codes:
      0  no findings at or above --severity
      1  findings at or above --severity
      2  usage error, or some input could not be read (reported as KT001)
    """
    if list_rules:
        rules = _rules(only, skip)
        if fmt == "json":
            click.echo(output.to_json([r.as_dict() for r in rules]))
        else:
            click.echo(output.table([r.as_dict() for r in rules], ["id", "name", "severity", "title"],
                                    ["Id", "Name", "Severity", "Title"]))
        return
    if out_file and os.path.lexists(out_file) and not os.path.isfile(out_file):
        raise UsageError(f"{out_file}: not a regular file", "Give a file path for --output, or omit it for stdout")
    report = audit_roots(list(roots) or [DEFAULT_ROOT], per_node=per_node, threshold=Severity.parse(severity),
                         rules=_rules(only, skip))
    color = fmt == "text" and out_file is None and output.is_tty(sys.stdout) and "NO_COLOR" not in os.environ
    publish = functools.partial(_publish, formats.render(report, fmt, color=color), out_file, len(report.findings))
    error = failure(report)
    if error is None:
        publish()
        return
    raise error.with_report(publish)  # the root shows the report, then the one-line error


def _publish(text: str, out_file: str | None, findings: int) -> None:
    if out_file:
        atomic_write(out_file, text + "\n", mode=0o644)
        click.echo(f"report written to {out_file} ({findings} finding(s))", err=True)
    else:
        click.echo(text)


@click.group("fixed-key")
def fixed_key() -> None:
    """Show, retire and restore ConfKeyManager's fixed_key (cinder.conf, nova.conf).

    The documented order: migrate every all-zeros key to Barbican, check that the values match
    on every node, back the value up, then delete it everywhere. Values are never printed, only
    their length and a sha256 prefix to compare them.
    """


@fixed_key.command("show")
@click.argument("roots", nargs=-1, required=True, type=click.Path(file_okay=False), metavar="ROOT...")
@click.option("--per-node", is_flag=True, help="Each ROOT holds one config tree per node.")
@output.format_option
def show(roots: tuple[str, ...], per_node: bool, output_format: str) -> None:
    """Where fixed_key is set and whether every value matches (by hash).

    \b
    Exit codes:
      0  not set anywhere, or all values match
      1  values differ
      2  usage error, or a file could not be read
    """
    result = fk.show(list(roots), per_node=per_node)
    if output_format == "json":
        output.emit(result.as_dict(), "json")
    else:
        rows = [{**p.as_dict(), "value": f"set, {len(p.value)} chars"} for p in result.placements]
        if rows:
            output.emit(rows, "table", ["node", "service", "relpath", "section", "line", "value", "sha256"],
                        ["Node", "Service", "File", "Section", "Line", "Value", "SHA-256"])
        click.echo("fixed_key is not set anywhere" if not rows else
                   "all values match" if result.match else
                   f"VALUES DIFFER: {result.distinct_values} distinct values")
    error = fk.show_failure(result)
    if error is not None:
        raise error


inventory_options = service_options  # Cinder DB, Nova cells, Glance API (keytools.key_refs.options)


def _inventory_table(inv) -> None:  # noqa: ANN001
    rows = [{**r.as_dict(), "certain": "yes" if r.certain else "may depend"} for r in inv.references]
    if rows:
        output.emit(rows, "table", ["service", "kind", "location", "project", "count", "certain"],
                    ["Service", "Kind", "Host/cell", "Project", "Count", "Certain"])
    for service, where in inv.seen.items():
        n = inv.totals().get(service, 0)
        click.echo(f"{service}: {n} reference(s) to {fki.FIXED_KEY_ID} ({where})")
    for b in inv.blind:
        state = "IGNORED" if b.service in inv.ignored else "NOT SEEN"
        click.echo(f"{b.service}: {state}: {b.reason}")
    for name in inv.ignored:
        if name not in {b.service for b in inv.blind}:
            click.echo(f"{name}: IGNORED (--ignore-service)")


@fixed_key.command("inventory")
@inventory_options
@click.option("--ignore-service", multiple=True, metavar="SERVICE",
              help="Do not look at this service (cinder, nova, glance; repeatable or comma-separated).")
@output.format_option
def inventory_cmd(output_format: str, ignore_service: tuple[str, ...], **kw) -> None:  # noqa: ANN003
    """Every reference to ConfKeyManager's all-zeros key id, per service, kind, host/cell and project.

    Cinder: non-deleted volumes, snapshots and backups on the all-zeros id, plus backups that may
    depend on fixed_key (NULL encryption_key_id on an encrypted volume type: made before backups
    had the column). Nova: non-deleted instances (deleted = 0) whose ephemeral_key_uuid is the
    all-zeros id, in every cell of nova_api's cell_mappings (or --nova-db-url per cell). Glance:
    images of every project (hidden and deactivated too) whose cinder_encryption_key_id is the
    all-zeros id, through the API as admin (--glance-cloud). A service without options or that
    cannot be read (not admin, unreachable) is listed as NOT SEEN, never as zero.

    \b
    Exit codes:
      0  nothing references the all-zeros id and every service was seen (or ignored)
      1  references found, or a service was not seen
      2  usage error
    """
    inv = fki_inventory.inventory(kw, ignore=fki_inventory.parse_services(ignore_service))
    if output_format == "json":
        output.emit(inv.as_dict(), "json")
    else:
        _inventory_table(inv)
    error = fki_inventory.failure(inv)
    if error is not None:
        raise error


@fixed_key.command("exposure")
@inventory_options
@click.option("--config-file", type=click.Path(dir_okay=False), metavar="CINDER_CONF",
              help="cinder.conf: fixed_key, [database] connection (unless --db-url) and the [keystone_authtoken] "
                   "service credentials that read the secrets (unless --os-cloud/--auth-config-file).")
@click.option("--fixed-key-file", type=click.Path(dir_okay=False), metavar="FILE",
              help="File holding the hex fixed_key (e.g. the backup 'fixed-key retire' made).")
@click.option("--barbican-endpoint", metavar="URL", help="Barbican URL (default: the service catalog).")
@click.option("--ignore-service", multiple=True, metavar="SERVICE",
              help="Do not look at this service (cinder, nova, glance; repeatable or comma-separated).")
@click.option("--concurrency", type=click.IntRange(1, 64), default=8, show_default=True,
              help="Secrets read at once.")
@output.format_option
@pass_run
def exposure_cmd(run: RunContext, output_format: str, config_file: str | None, fixed_key_file: str | None,
                 barbican_endpoint: str | None, ignore_service: tuple[str, ...], concurrency: int,
                 **kw) -> None:  # noqa: ANN003
    """What fixed_key still opens: per service, kind, host/cell and project, and what ends it.

    An object is exposed when its key id is the all-zeros id or a Barbican secret whose payload
    equals fixed_key (a migrated key: compared by SHA-256 fingerprint in constant time, never
    printed). Classes: Cinder volumes are re-keyable ('keytools migrate rekey'); snapshots are
    exposed until deleted (they keep the old header); backups until deleted or re-made from a
    re-keyed volume; Glance images from encrypted volumes until replaced; Nova instances with
    ephemeral encryption until rebuilt (dm-crypt plain: no header). Secrets are read with the
    credentials that created them (cinder.conf [keystone_authtoken], as 'migrate' uses) or an admin
    with read ACLs (--os-cloud); the report says which. A service or a secret that could not be
    read is NOT SEEN, never zero.

    \b
    Exit codes:
      0  nothing is opened by fixed_key and everything was seen (or ignored)
      1  objects exposed, or a service or a secret not seen
      2  usage error (no fixed_key, bad option)
      4  Barbican or Keystone unreachable, 5 credentials refused
    """
    from config_checks import exposure as ex

    fixed = _exposure_key(config_file, fixed_key_file, kw.get("nova_config_file"))
    if not kw.get("db_url") and config_file:
        from keytools import oslo_ini

        kw["db_url"] = oslo_ini.parse_with_conf_d(config_file).get("database", "connection")
    session, read_with = _exposure_session(run, config_file)
    ignored = fki_inventory.parse_services(ignore_service)
    result = ex.assess(ref_options.sources(kw, ex.SERVICES, ignored), fixed,
                       ex.barbican_payload(session, barbican_endpoint), ignored, concurrency, read_with)
    if output_format == "json":
        output.emit(result.as_dict(), "json")
    else:
        _exposure_table(result)
    error = ex.failure(result)
    if error is not None:
        raise error


def _exposure_key(config_file: str | None, key_file: str | None, nova_conf: str | None) -> bytes:
    from keytools import fixed_key as fkv
    from keytools.errors import ConfigError

    if key_file:
        return fkv.read_fixed_key_file(key_file)
    for path in (config_file, nova_conf):
        if path:
            key = fkv.from_config(path)
            if key is not None:
                return key
    raise ConfigError("fixed_key is not given", "Pass --fixed-key-file (the backup 'fixed-key retire' made) or "
                      "--config-file cinder.conf that still sets [key_manager] fixed_key")


def _exposure_session(run: RunContext, config_file: str | None) -> tuple[object, str]:
    """The credentials that read the secrets, and a sentence saying which they are."""
    from keytools import auth, oslo_ini

    src = run.auth_source
    if src.cloud:
        return run.session(), f"--os-cloud {src.cloud}"
    if src.config_file:
        return run.session(), f"{src.config_file} [{src.config_section}]"
    if config_file and oslo_ini.parse_with_conf_d(config_file).has_section("keystone_authtoken"):
        user = oslo_ini.parse_with_conf_d(config_file).get("keystone_authtoken", "username") or "?"
        return (auth.session_from_oslo_config(config_file, "keystone_authtoken", src.insecure),
                f"{config_file} [keystone_authtoken] (service user {user}, as 'migrate' uses)")
    return run.session(), "OS_* environment"


def _exposure_table(result) -> None:  # noqa: ANN001
    rows = [e.as_dict() for e in result.exposed]
    if rows:
        output.emit(rows, "table", ["service", "kind", "location", "project", "via", "count", "class"],
                    ["Service", "Kind", "Host/cell", "Project", "Via", "Count", "Exposed"])
        remedies = {(e.klass, e.remedy) for e in result.exposed}
        for klass, remedy in sorted(remedies):
            click.echo(f"{klass}: {remedy}")
    click.echo(f"{result.total} object(s) opened by fixed_key; {result.secrets_checked} secret(s) read with "
               f"{result.read_with}, {result.secrets_fixed} hold fixed_key.")
    for why, n in result.unreadable.items():
        click.echo(f"NOT SEEN: {n} secret(s) not read: {why}")
    for service, where in result.survey.seen.items():
        click.echo(f"{service}: seen ({where})")
    for n in result.survey.not_seen:
        state = "IGNORED" if n.service in result.survey.ignored else "NOT SEEN"
        click.echo(f"{n.service}: {state}: {n.reason}")


@fixed_key.command("retire")
@click.argument("roots", nargs=-1, required=True, type=click.Path(file_okay=False), metavar="ROOT...")
@click.option("--backup-dir", type=click.Path(file_okay=False), metavar="DIR",
              help="Where each value is backed up (0600 files in a 0700 directory). Required unless --dry-run.")
@inventory_options
@click.option("--ignore-service", multiple=True, metavar="SERVICE",
              help="Retire without looking at this service (cinder, nova, glance; repeatable or comma-separated); "
                   "recorded in the output and in every backup file.")
@click.option("--per-node", is_flag=True, help="Each ROOT holds one config tree per node.")
@click.option("--dry-run", is_flag=True, help="Show the diff (values masked) and change nothing.")
@output.format_option
def retire(roots: tuple[str, ...], backup_dir: str | None, per_node: bool, dry_run: bool,
           ignore_service: tuple[str, ...], output_format: str, **kw) -> None:  # noqa: ANN003
    """Back up and delete fixed_key from every config file that sets it.

    Refuses (exit 6) while the values differ, while the inventory (see 'fixed-key inventory')
    finds any reference to the all-zeros key id in Cinder or Nova (Glance), or while a service
    could not be seen (no --db-url, no Nova database, unreachable): it names what it could not
    see; only --ignore-service SERVICE lets it go on without that service, and says so in the
    output and the backups. Each file is edited with crudini --del on a private copy, checked to
    differ only by the removed lines, and swapped in atomically with its owner and mode; a rerun
    after an interruption finishes the job. --dry-run reports a refusal as a warning.

    \b
    Exit codes:
      0  done, or nothing to do
      2  usage error or unreadable input (also a database URL that is not Cinder's/Nova's)
      4  a database cannot be reached
      6  refused: values differ, references remain, or a service was not seen
    """
    if not dry_run:
        fk.require_backup_dir(backup_dir)
    ignored = fki_inventory.parse_services(ignore_service)
    inv = fki_inventory.inventory(kw, ignore=ignored)
    why = fk.refusal(inv) if dry_run else None
    if why:
        click.echo(f"keytools: warning: retire would refuse: {why}", err=True)
    result = fk.retire(list(roots), backup_dir, per_node=per_node, dry_run=dry_run, inventory=inv)
    if ignored:
        click.echo(f"keytools: warning: not checked for the all-zeros key id (--ignore-service): "
                   f"{', '.join(ignored)}", err=True)
    if output_format == "json":
        output.emit(result.as_dict(), "json")
        return
    changes = result.changes
    if not changes:
        click.echo("fixed_key is not set anywhere: nothing to retire")
        return
    for c in changes:
        if dry_run:
            click.echo(c.diff(), nl=False)
        else:
            click.echo(f"retired {','.join(sorted({p.section for p in c.placements}))} fixed_key from {c.path} "
                       f"(backup {c.backup})")
    if dry_run:
        click.echo(f"dry run: {len(changes)} file(s) would change; nothing written")


@fixed_key.command("restore")
@click.option("--backup-dir", required=True, type=click.Path(file_okay=False), metavar="DIR",
              help="The --backup-dir given to retire.")
@click.option("--dry-run", is_flag=True, help="Say what would be restored and change nothing.")
@output.format_option
def restore(backup_dir: str, dry_run: bool, output_format: str) -> None:
    """Put fixed_key back from a retire backup.

    A file exactly as retire left it gets its original bytes back; a file edited since gets the
    option re-inserted with crudini --set. Files that already hold it are left alone.

    \b
    Exit codes:
      0  restored, or nothing to do
      2  usage error, unreadable backup or config file
    """
    done = fk.restore(backup_dir, dry_run=dry_run)
    output.emit([d.as_dict() for d in done], output_format, ["path", "action", "sha256"],
                ["File", "Action", "SHA-256"])
