"""``keytools barbican backup|restore|inspect|drill``: thin click wiring over the library."""

from __future__ import annotations

import functools
import logging
import os
import stat
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from keytools.barbican import operations
from keytools.barbican.archive import KeySource
from keytools.barbican.barbican_conf import DEFAULT_CONFIG
from keytools.barbican.db_mysql import DUMP_TOOLS
from keytools.barbican.store_cli import store_group
from keytools.context import RunContext, pass_run
from keytools.errors import ProblemsFound, UsageError
from keytools.fileutil import read_user_file
from keytools.output import emit, format_option, is_tty

if TYPE_CHECKING:  # the drills load their dependencies only when a drill runs
    from keytools.barbican.drill import Drill, DrillReport, StepReport
    from keytools.barbican.kek import RotationReport
    from keytools.barbican.scratch_drill import ScratchDrill, ScratchReport

LOG = logging.getLogger("keytools.barbican")

config_option = click.option(
    "--config", "config", default=DEFAULT_CONFIG, show_default=True, metavar="FILE",
    type=click.Path(dir_okay=False),
    help="barbican.conf of the Barbican to back up/restore: [database] connection and "
         "[simple_crypto_plugin] kek are read from it (barbican.conf.d too).")


def key_options(func: Any) -> Any:
    for option in reversed([
        click.option("--passphrase-file", type=click.Path(dir_okay=False), metavar="FILE",
                     help="Read the archive passphrase from FILE (first line)."),
        click.option("--passphrase-env", metavar="NAME",
                     help="Read the archive passphrase from environment variable NAME."),
        click.option("--key-file", type=click.Path(dir_okay=False), metavar="FILE",
                     help="Use a 32-byte key file instead of a passphrase (raw, hex or base64)."),
    ]):
        func = option(func)
    return func


def _warn_if_readable(path: str, what: str) -> None:
    mode = os.stat(path).st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        LOG.warning("%s %s is readable by other users (mode %o); chmod 600 it", what, path, mode & 0o777)


def _read(path: str, option: str) -> bytes:
    data = read_user_file(path, option, "Check the path and permissions", missing_hint="Check the path",
                          path_first=True)
    _warn_if_readable(path, option)
    return data


def key_source(passphrase_file: str | None, passphrase_env: str | None, key_file: str | None,
               confirm: bool) -> KeySource:
    """One key source: a file, an environment variable, a key file, or the prompt (never argv)."""
    given = [o for o, v in (("--passphrase-file", passphrase_file), ("--passphrase-env", passphrase_env),
                            ("--key-file", key_file)) if v]
    if len(given) > 1:
        raise UsageError(f"{' and '.join(given)} exclude each other", "Give one passphrase or key source")
    if key_file:
        return KeySource.keyfile(_read(key_file, "--key-file"), f"--key-file {key_file}")
    if passphrase_file:
        raw = _read(passphrase_file, "--passphrase-file")
        try:
            text = raw.decode("utf-8").splitlines()[0] if raw.strip() else ""
        except UnicodeDecodeError:
            raise UsageError(f"--passphrase-file {passphrase_file}: not UTF-8 text",
                             "Put the passphrase on the first line") from None
        if not text:
            raise UsageError(f"--passphrase-file {passphrase_file} is empty", "Put the passphrase on its first line")
        return KeySource.passphrase(text, f"--passphrase-file {passphrase_file}", new=confirm)
    if passphrase_env:
        value = os.environ.get(passphrase_env)
        if not value:
            raise UsageError(f"--passphrase-env {passphrase_env}: the variable is not set or empty",
                             f"Export {passphrase_env} with the passphrase")
        return KeySource.passphrase(value, f"--passphrase-env {passphrase_env}", new=confirm)
    if not sys.stdin.isatty():
        raise UsageError("no passphrase given and no terminal to ask on",
                         "Use --passphrase-file, --passphrase-env or --key-file")
    value = click.prompt("Archive passphrase", hide_input=True, confirmation_prompt=confirm, err=True)
    return KeySource.passphrase(value, "the prompt", new=confirm)


def _flat(report: dict[str, Any]) -> dict[str, Any]:
    """Nested values (counts) as one readable cell for the table view."""
    out: dict[str, Any] = {}
    for key, value in report.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        out[key] = value
    return out


def _progress(message: str) -> None:
    if is_tty():
        click.echo(f"  {message}", err=True)


@click.group("barbican")
def barbican() -> None:
    """Back up and restore Barbican's simple_crypto backend: the KEK and the database, together.

    A database dump without its KEK is useless and the KEK alone protects nothing: one archive
    holds both, encrypted with AES-256-GCM under a passphrase (scrypt) or a key file. Its manifest
    (time, versions, engine, row counts, KEK fingerprint) is readable without the passphrase.
    """


@barbican.command("backup", short_help="Write an encrypted archive: KEK + database dump.")
@config_option
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), metavar="FILE",
              help="Archive to write (0600, atomically: a kill leaves no partial file).")
@key_options
@click.option("--dump-tool", type=click.Choice(DUMP_TOOLS), default="auto", show_default=True,
              help="MySQL/MariaDB only: mysqldump/mariadb-dump --single-transaction, or the built-in "
                   "PyMySQL dumper (auto: the client tool when installed).")
@click.option("--overwrite", is_flag=True, help="Replace FILE if it exists.")
@format_option
def backup_cmd(config: str, out: str, passphrase_file: str | None, passphrase_env: str | None,
               key_file: str | None, dump_tool: str, overwrite: bool, output_format: str) -> None:
    """Write one encrypted archive with the KEK and a consistent database dump.

    \b
    SQLite is copied with SQLite's online backup API, MySQL/MariaDB with
    mysqldump --single-transaction (or PyMySQL): Barbican keeps running.
    The passphrase comes from the prompt, --passphrase-file or --passphrase-env,
    never from the command line. Keep the archive and its passphrase apart.

    \b
    Example:
      keytools barbican backup --config /etc/barbican/barbican.conf \\
          --out /backup/barbican-$(date +%F).ktbak --passphrase-file /root/bk.pass
    """
    source = key_source(passphrase_file, passphrase_env, key_file, confirm=True)
    report = operations.backup(config, out, source, dump_tool=dump_tool, overwrite=overwrite)
    emit(_flat(report) if output_format == "table" else report, output_format)


@barbican.command("restore", short_help="Restore an archive (checks everything first).")
@click.argument("archive", type=click.Path(dir_okay=False))
@config_option
@key_options
@click.option("--force", is_flag=True, help="Replace a target database that already holds secrets, "
                                            "orders or containers.")
@click.option("--restore-kek", is_flag=True,
              help="Write the archive's KEK into --config (crudini; the old file is kept as "
                   "FILE.keytools-<time>.bak). Restart Barbican afterwards.")
@click.option("--check", "check_only", is_flag=True,
              help="Run every check (passphrase, archive, KEK, target) and change nothing.")
@format_option
def restore_cmd(archive: str, config: str, passphrase_file: str | None, passphrase_env: str | None,
                key_file: str | None, force: bool, restore_kek: bool, check_only: bool,
                output_format: str) -> None:
    """Restore ARCHIVE into the Barbican named by --config.

    \b
    Before anything changes, the whole archive is decrypted and authenticated, and
    the target checked: same database engine, same schema (Alembic version), the
    KEK in --config equal to the archive's (by fingerprint) unless --restore-kek,
    and an empty database unless --force. The database is replaced crash-safely
    (SQLite: one backup-API transaction; MySQL: one transaction): if the restore is
    killed, rerun it. A rerun after a completed restore finds nothing to do.

    \b
    \b
    Exit codes: 2 wrong passphrase, damaged/truncated archive, missing kek,
    other engine; 4 database unreachable; 6 KEK mismatch, target not empty,
    other schema.
    """
    source = key_source(passphrase_file, passphrase_env, key_file, confirm=False)
    report = operations.restore(archive, config, source, force=force, restore_kek=restore_kek,
                                check_only=check_only, progress=_progress)
    emit(_flat(report) if output_format == "table" else report, output_format)
    if report.get("restart_barbican"):
        click.echo("The KEK changed: restart Barbican so that it loads it.", err=True)


@barbican.command("inspect", short_help="Show an archive's manifest; --verify authenticates it.")
@click.argument("archive", type=click.Path(dir_okay=False))
@click.option("--verify", is_flag=True, help="Also decrypt and authenticate every segment "
                                             "(needs the passphrase or key file).")
@key_options
@format_option
def inspect_cmd(archive: str, verify: bool, passphrase_file: str | None, passphrase_env: str | None,
                key_file: str | None, output_format: str) -> None:
    """Show the manifest of ARCHIVE (no passphrase needed; unauthenticated unless --verify)."""
    source = key_source(passphrase_file, passphrase_env, key_file, confirm=False) if verify else None
    report = operations.inspect(archive, source)
    emit(_flat(report) if output_format == "table" else report, output_format)


@barbican.command("drill", short_help="Prove a backup restores: into a scratch Barbican (default).")
@click.option("--config", "config", default=None, metavar="FILE", type=click.Path(dir_okay=False),
              help=f"barbican.conf of the Barbican to back up (only read) and prove [default: {DEFAULT_CONFIG}].")
@click.option("--archive", type=click.Path(dir_okay=False), metavar="FILE",
              help="Prove this backup archive instead (needs its passphrase or key file; no production access).")
@key_options
@click.option("--sample", type=int, metavar="N", help="Decrypt N secrets chosen at random instead of all.")
@click.option("--seed", type=int, metavar="S", help="Seed of the --sample draw (printed, to repeat a drill).")
@click.option("--port", type=int, metavar="PORT", help="Port of the scratch Barbican on 127.0.0.1 (default: a free one).")
@click.option("--scratch-db", metavar="URL",
              help="MySQL/MariaDB archives: an EMPTY database for the scratch copy "
                   "(mysql+pymysql://USER:PW@127.0.0.1/NAME). SQLite archives need none.")
@click.option("--in-place", is_flag=True, help="The old drill: create test secrets in the LIVE Barbican, back up, "
                                               "delete, restore (rewinds the live database), compare.")
@click.option("--keep", is_flag=True, help="--in-place: leave the test secrets and order in Barbican.")
@click.option("--yes", is_flag=True, help="--in-place: do not ask for confirmation.")
@format_option
@click.pass_context
def drill_cmd(ctx: click.Context, config: str | None, archive: str | None, passphrase_file: str | None,
              passphrase_env: str | None, key_file: str | None, sample: int | None, seed: int | None,
              port: int | None, scratch_db: str | None, in_place: bool, keep: bool, yes: bool,
              output_format: str) -> None:
    """Prove that a backup restores, without touching production.

    \b
    Default: back up --config (read only, throwaway key) or take --archive FILE,
    restore it into a scratch database, start a scratch Barbican (Barbican's own
    server code, keytools[sandbox]) on 127.0.0.1 with the backed-up KEKs, and
    prove through its API that every secret (or --sample N, reproducible with
    --seed) decrypts with its metadata and ACLs, and that secrets, containers,
    orders and consumers match the manifest. Exit 1 on any loss.

    \b
    --in-place runs the old drill against the live Barbican (admin credentials,
    --os-cloud): it rewinds the WHOLE database to a backup taken seconds earlier,
    so writes by others in that window are lost. Needs --yes or a confirmation.
    """
    if in_place:
        if archive or sample is not None or seed is not None or port is not None or scratch_db:
            raise UsageError("--in-place excludes --archive, --sample, --seed, --port and --scratch-db",
                             "Drop --in-place for the scratch drill")
        ctx.invoke(_in_place, config=config or DEFAULT_CONFIG, keep=keep, yes=yes, output_format=output_format)
        return
    if keep or yes:
        raise UsageError("--keep and --yes belong to --in-place", "The scratch drill changes nothing: drop them")
    if archive and config:
        raise UsageError("--archive and --config exclude each other", "Prove either a live config or an archive")
    from keytools.barbican.scratch_drill import ScratchDrill

    source = key_source(passphrase_file, passphrase_env, key_file, confirm=False) if archive else None
    if not archive and (passphrase_file or passphrase_env or key_file):
        raise UsageError("a passphrase or key file is only used with --archive",
                         "The drill backs up --config under a throwaway key")
    drill = ScratchDrill(config=None if archive else (config or DEFAULT_CONFIG), archive=archive, source=source,
                         sample=sample, seed=seed, port=port, scratch_db=scratch_db, progress=_progress)
    drill.run()
    _finish(drill, functools.partial(_render_scratch, drill.report, output_format))


def _finish(drill: Drill | ScratchDrill, render: Callable[[], None]) -> None:
    """Show the report; a drill that did not pass then fails (the root renders, then the error)."""
    failure = drill.failure()
    if failure is not None:
        raise failure.with_report(render)
    render()


def _render_steps(report: StepReport) -> None:
    emit([{"step": s.name, "result": "ok" if s.ok else "FAILED", "seconds": f"{s.seconds:.3f}",
           "detail": s.detail} for s in report.steps], "table",
         ["step", "result", "seconds", "detail"], ["Step", "Result", "Seconds", "Detail"])


def _render_scratch(report: ScratchReport, output_format: str) -> None:
    if output_format == "json":
        emit(report.as_dict(), "json")
        return
    _render_steps(report)
    for problem in report.problems[:20]:
        click.echo(f"LOST: {problem}")
    if len(report.problems) > 20:
        click.echo(f"... and {len(report.problems) - 20} more (--format json lists all)")
    click.echo(f"drill {report.result.upper()} in {report.seconds:.1f} s: "
               f"{report.secrets_checked}/{report.secrets_total} secrets checked"
               + (f" (sample {report.sample}, seed {report.seed})" if report.sample is not None else ""))


def _render_in_place(report: DrillReport, output_format: str, keep: bool) -> None:
    if output_format == "json":
        emit(report.as_dict(), "json")
        return
    _render_steps(report)
    click.echo(f"drill {report.result.upper()} in {report.seconds:.1f} s"
               + (f"; kept order {report.order}, secrets {', '.join(report.secrets)}" if keep else ""))


@click.command("drill-in-place", hidden=True)
@click.option("--config", "config", default=DEFAULT_CONFIG)
@click.option("--keep", is_flag=True)
@click.option("--yes", is_flag=True)
@format_option
@pass_run
def _in_place(run: RunContext, config: str, keep: bool, yes: bool, output_format: str) -> None:
    """The rewinding drill against the live Barbican (``drill --in-place``)."""
    from keytools.barbican.drill import Drill

    if not yes:
        if not sys.stdin.isatty():
            raise UsageError("the drill rewinds Barbican's database and needs confirmation",
                             "Pass --yes (no terminal to ask on)")
        click.confirm("The drill restores Barbican's database to a backup taken during the drill; "
                      "writes by others meanwhile are lost. Continue?", abort=True, err=True)
    drill = Drill(run.session(), config, keep=keep, progress=_progress)
    drill.run()
    _finish(drill, functools.partial(_render_in_place, drill.report, output_format, keep))


@barbican.group("kek")
def kek_group() -> None:
    """simple_crypto master KEK: compare nodes, rotate in resumable stages (fingerprints only)."""


@kek_group.command("status", short_help="Compare the KEK fingerprints of several nodes' barbican.conf.")
@click.option("--config", "configs", multiple=True, required=True, metavar="FILE", type=click.Path(dir_okay=False),
              help="A node's barbican.conf (repeat for every node).")
@format_option
def kek_status_cmd(configs: tuple[str, ...], output_format: str) -> None:
    """Show each node's KEK fingerprints (first = encrypts); exit 1 when the nodes differ.

    \b
    A rewrap must not run while the nodes differ: a node still encrypting new
    project KEKs with the old KEK would make them unreadable once it is retired.
    """
    from keytools.barbican import kek

    status = kek.node_status(list(configs))
    pending = kek.State(kek.default_state_file(configs[0]))
    if output_format == "json":
        emit({"nodes": [s.as_dict() for s in status], "differ": kek.nodes_differ(status),
              "rotation": pending.data or None}, "json")
    else:
        emit([{"config": s.config, "keks": len(s.fingerprints), "primary": s.primary,
               "list": s.list_fingerprint} for s in status], "table",
             ["config", "keks", "primary", "list"], ["Config", "KEKs", "Primary (encrypts)", "List fingerprint"])
        if pending.data:
            click.echo(f"rotation {'pending' if pending.pending else 'finished'} ({pending.path}): "
                       f"done {', '.join(pending.data.get('done', []))}")
    if kek.nodes_differ(status):
        raise ProblemsFound("the nodes' KEKs differ: do not rewrap until every barbican.conf holds the same kek lines")


@kek_group.command("rotate", short_help="Rotate the master KEK: plan, backup, stage, rewrap, validate, retire.")
@click.option("--config", "configs", multiple=True, metavar="FILE", type=click.Path(dir_okay=False),
              help="A node's barbican.conf (repeat for every node; the first one's database is used) "
                   f"[default: {DEFAULT_CONFIG}].")
@click.option("--backup-out", metavar="FILE", type=click.Path(dir_okay=False),
              help="Archive written before anything changes (required: no rotation without a backup).")
@key_options
@click.option("--new-kek-stdin", is_flag=True, help="Read the new KEK (a Fernet key) from stdin instead of "
                                                    "generating one.")
@click.option("--until", type=click.Choice(("plan", "backup", "stage", "rewrap", "validate", "retire")),
              help="Stop after this stage (rerun later to continue; e.g. --until stage, restart Barbican, rerun).")
@click.option("--sample", type=int, metavar="N", help="validate: decrypt N random secrets instead of all.")
@click.option("--seed", type=int, metavar="S", help="Seed of the --sample draw.")
@click.option("--state", "state_file", metavar="FILE", type=click.Path(dir_okay=False),
              help="State file (default: beside the first --config).")
@format_option
def kek_rotate_cmd(configs: tuple[str, ...], backup_out: str | None, passphrase_file: str | None,
                   passphrase_env: str | None, key_file: str | None, new_kek_stdin: bool, until: str | None,
                   sample: int | None, seed: int | None, state_file: str | None, output_format: str) -> None:
    """Rotate [simple_crypto_plugin] kek in stages, each safe to kill and rerun.
    Covers simple_crypto project KEKs only: p11_crypto project KEKs are wrapped
    by the HSM's MKEK (barbican-manage hsm rewrap_pkek); plan says how many.

    \b
    plan      fingerprints, project-KEK count; refuses a pending rotation, nodes
              that differ, and a KEK that does not unwrap the project KEKs
    backup    an archive (--backup-out) before anything changes
    stage     new KEK first in kek, old ones kept (crudini, atomic, .bak kept
              until retire) -> restart Barbican on every node
    rewrap    barbican-manage simple_crypto rewrap_pkek (refused while nodes differ)
    validate  every project KEK unwraps with the new KEK alone; every secret (or
              --sample N) decrypts through a scratch Barbican holding only it
    retire    drop the old KEKs, remove this rotation's .bak files (they hold the
              old KEK: only the --backup-out archive keeps it) -> restart Barbican
    Rerun the same command after a kill or a failure: it resumes.
    """
    from keytools.barbican import kek

    source = (key_source(passphrase_file, passphrase_env, key_file, confirm=True)
              if (passphrase_file or passphrase_env or key_file) else None)
    new = None
    if new_kek_stdin:
        new = sys.stdin.readline().strip()
        if not new:
            raise UsageError("--new-kek-stdin: nothing on stdin", "Pipe the new KEK (a Fernet key) in")
    rotation = kek.Rotation(list(configs) or [DEFAULT_CONFIG], backup_out, source, new_kek=new,
                            state_file=state_file, until=until, sample=sample, seed=seed, progress=_progress)
    render = functools.partial(_render_rotation, rotation.run(), output_format)
    if rotation.error is not None:  # the stage that stopped it: the root shows the report, then the error
        raise rotation.error.with_report(render)
    render()


def _render_rotation(report: RotationReport, output_format: str) -> None:
    if output_format == "json":
        emit(report.as_dict(), "json")
        return
    emit([{"stage": s.stage, "result": s.result, "seconds": f"{s.seconds:.3f}", "detail": s.detail}
          for s in report.stages], "table", ["stage", "result", "seconds", "detail"],
         ["Stage", "Result", "Seconds", "Detail"])
    for path in report.removed_backups:
        click.echo(f"removed {path} (it held the old KEK; the backup archive keeps it, encrypted)")
    click.echo(f"old KEK(s) {', '.join(report.old) or '-'} -> new {report.new or '-'}: "
               + ("rotation finished" if report.finished else "rotation pending (rerun to continue)"))


@barbican.command("rbac-check", short_help="Who loses secret access under enforce_new_defaults = True.")
@click.option("--project", metavar="NAME_OR_ID", help="Only this project.")
@format_option
@pass_run
def rbac_check_cmd(run: RunContext, project: str | None, output_format: str) -> None:
    """List role assignments and application credentials whose secret access depends on Barbican's
    legacy policy, what each loses with [oslo_policy] enforce_new_defaults = True, and the remedy.

    \b
    Needs admin credentials (--os-cloud). Effective assignments (groups and implied
    roles included) are read from Keystone. Exit 1 when something would break.
    """
    from keytools.barbican import rbac_check

    report = rbac_check.check(run.session(), project)
    if output_format == "json":
        emit(report.as_dict(), "json")
    else:
        emit([{"kind": f.kind + (f" {f.name}" if f.name else ""), "user": f.user, "project": f.project,
               "roles": ", ".join(f.roles), "loses": ", ".join(f.loses), "remedy": f.remedy}
              for f in report.findings], "table", ["kind", "user", "project", "roles", "loses", "remedy"],
             ["Kind", "User", "Project", "Roles", "Loses under new defaults", "Remedy"])
        for warning in report.warnings:
            click.echo(f"warning: {warning}", err=True)
        click.echo(f"{report.assignments} assignments, {report.application_credentials} application credentials: "
                   + (f"{len(report.findings)} would lose secret access" if report.findings else "ready"))
    if report.findings:
        raise ProblemsFound(f"{len(report.findings)} principals would lose secret access with "
                            "enforce_new_defaults = True (remedies above)")


barbican.add_command(store_group)  # keytools barbican store status|migrate
