"""CLI wiring for ``keytools swift``; the work is in swift_middleware.check and .newkey."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import click

from keytools import output
from keytools.context import RunContext, pass_run
from keytools.errors import ProblemsFound, UsageError
from swift_middleware import check as check_mod
from swift_middleware import newkey

if TYPE_CHECKING:  # swift's own modules load only for the commands that need them
    from swift_middleware.reencrypt import ReencryptReport


@click.group()
def swift() -> None:
    """Swift at-rest encryption with root secrets in Barbican.

    The proxy filter (use = egg:keytools#keymaster) replaces Swift's kms_keymaster with the same
    option names; these commands check a proxy's configuration and manage its root secrets.
    """


@swift.command()
@click.argument("proxy_conf", type=click.Path(exists=True, dir_okay=True))
@click.option("--retries", type=click.IntRange(0, 10), default=0, show_default=True,
              help="Retry an unreachable Keystone/Barbican this many times (with backoff).")
@output.format_option
def check(proxy_conf: str, retries: int, output_format: str) -> None:
    """Check PROXY_CONF's encryption setup and load every root secret it names.

    The pipeline must end with '<keymaster> encryption proxy-logging proxy-server' and use
    keytools' keymaster; encryption must not be disabled; the keymaster file must be 0600. Every
    key_id* is then loaded from Barbican with the keymaster's own credentials and shown with its
    algorithm, length and fingerprint (never the key).

    Exit codes: 0 all good; 1 problems found; 2 unreadable configuration; 4 Keystone or Barbican
    unreachable; 5 credentials refused or no read access to a secret.
    """
    report = check_mod.check(proxy_conf, attempts=retries)
    render = functools.partial(_render_check, report, output_format)
    failure = report.failure()
    if failure is not None:  # the root shows the report, then the one-line error
        raise failure.with_report(render)
    render()


def _render_check(report: check_mod.CheckReport, output_format: str) -> None:
    if output_format == "json":
        output.emit(report.as_dict(), "json")
        return
    output.emit([f.as_dict() for f in report.findings], "table", ["check", "ok", "message"],
                ["Check", "OK", "Message"])
    if report.keys:
        output.emit([k.as_dict() for k in report.keys], "table",
                    ["option", "key_id", "algorithm", "bit_length", "fingerprint", "active"],
                    ["Option", "Key id", "Algorithm", "Bits", "Fingerprint", "Active"])


@swift.command(name="new-key")
@click.option("--proxy-conf", type=click.Path(exists=True), default=None,
              help="The proxy's config: picks the next free key_id_<n> (and, with "
                   "--migrate-from-inline, holds the inline secret).")
@click.option("--secret-id", default=None,
              help="Swift secret id for the new key (key_id_<ID>); default: next free number.")
@click.option("--name", default="swift-root-secret", show_default=True,
              help="Name of the secret in Barbican.")
@click.option("--acl-user", "acl_users", multiple=True, metavar="USER",
              help="Give this user (name or id, e.g. the keymaster's 'swift') read access "
                   "(Barbican ACL). Repeatable.")
@click.option("--migrate-from-inline", is_flag=True,
              help="Store the plain keymaster's encryption_root_secret* values from --proxy-conf "
                   "in Barbican with the same bytes, instead of ordering a new key.")
@output.format_option
@pass_run
def new_key(run: RunContext, proxy_conf: str | None, secret_id: str | None, name: str,
            acl_users: tuple[str, ...], migrate_from_inline: bool, output_format: str) -> None:
    """Create a Swift root secret in Barbican and print the config lines to use it.

    Without --migrate-from-inline: orders a 256-bit AES key (the documented 'openstack secret
    order create --type key --algorithm aes --bit-length 256 --mode ctr') and prints the two-stage
    rotation: add key_id_<n> on every proxy and restart; then set active_root_secret_id = <n>
    everywhere and restart. Credentials: --os-cloud / OS_* / --auth-config-file.

    With --migrate-from-inline: moves an inline encryption_root_secret of Swift's plain keymaster
    to Barbican (same bytes, same secret ids, same fingerprints) so existing objects stay readable
    after switching to use = egg:keytools#keymaster. Reruns reuse the secrets stored before.

    Exit codes: 0 done; 2 bad option or configuration; 4 Barbican unreachable; 5 not allowed to
    create secrets (needs creator, or member under Barbican's new policy defaults).
    """
    session = run.session()
    if migrate_from_inline:
        if not proxy_conf:
            raise UsageError("--migrate-from-inline needs --proxy-conf")
        found, active, _filter = newkey.inline_secrets(proxy_conf)
        keys = newkey.store_inline(session, found, name, list(acl_users))
        lines = newkey.migration_lines(keys, active)
    else:
        if secret_id is None:
            existing = newkey.existing_secret_ids(proxy_conf)[0] if proxy_conf else [None]
            secret_id = newkey.next_secret_id(existing)
        newkey.validate_secret_id(secret_id)
        keys = [newkey.order_key(session, name, f"key_id_{secret_id}", secret_id, list(acl_users))]
        lines = newkey.rotation_lines(keys[0])
    if output_format == "json":
        output.emit({"keys": [k.as_dict() for k in keys], "config_lines": lines}, "json")
        return
    output.emit([k.as_dict() for k in keys], "table",
                ["option", "key_id", "bit_length", "fingerprint", "reused"],
                ["Option", "Key id", "Bits", "Fingerprint", "Reused"])
    click.echo("")
    for line in lines:
        click.echo(line)


def _accounts_option(func):
    return click.option("--account", "accounts", multiple=True, required=True, metavar="ACCOUNT",
                        help="Swift account to scan, e.g. AUTH_<project id> (repeatable).")(func)


def _proxy_option(func):
    return click.option("--proxy-config", "proxy_config", required=True,
                        type=click.Path(exists=True, dir_okay=True),
                        help="The proxy-server.conf of this proxy node (its rings, its keymaster).")(func)


@swift.command(name="key-usage")
@_proxy_option
@_accounts_option
@click.option("--state-dir", type=click.Path(file_okay=False), default=None,
              help="Where the resume file and the last run's summary go (default: beside the "
                   "keymaster config; the keymaster and 'swift check' read it there).")
@click.option("--concurrency", type=click.IntRange(1, 256), default=8, show_default=True,
              help="Objects HEADed at a time.")
@click.option("--restart", is_flag=True, help="Ignore a partial earlier run and scan everything.")
@click.option("--by-container", is_flag=True, help="Table output: also one row per container.")
@output.format_option
def key_usage(proxy_config: str, accounts: tuple[str, ...], state_dir: str | None, concurrency: int,
              restart: bool, by_container: bool, output_format: str) -> None:
    """Count objects (and bytes, containers, accounts) per root secret id.

    Reads the crypto metadata Swift's encrypter stored (body and user-metadata crypto meta, the
    container-listing etag's swift_meta) through Swift's InternalClient with the proxy's rings
    and a pipeline that neither decrypts nor strips sysmeta. Nothing is decrypted or changed.
    Objects Swift stored nothing encrypted for (no body, no user metadata, a plain listing etag)
    are counted as unencrypted; a symlink's listing etag is encrypted, so it counts under a key.
    Works with keytools' keymaster, Swift's kms_keymaster and Swift's keymaster.
    A killed run resumes with the next unfinished container.

    Exit codes: 0 done; 2 bad option or configuration (no encryption pipeline); 4 Swift unreachable.
    """
    from pathlib import Path

    from keytools.progress import progress
    from swift_middleware import internal, usage, usagestate

    setup = internal.load_proxy(proxy_config)
    state = usagestate.state_dir(setup.keymaster_conf, state_dir)
    holder: dict[str, object] = {}
    with _maybe_progress(progress, "Scanning objects", holder) as (advance, on_total):
        report = usage.scan(setup, list(accounts), Path(state), concurrency, restart,
                            advance=advance, on_total=on_total)
    if output_format == "json":
        output.emit(report.as_dict(), "json")
        return
    rows = [{**k.as_dict(), "label": k.label, "active": "yes" if k.active else ""} for k in report.keys]
    rows.append({"label": "(unencrypted)", "objects": report.unencrypted,
                 "bytes": sum(c.unencrypted_bytes for c in report.containers)})
    output.emit(rows, "table", ["label", "key_id", "active", "objects", "bytes", "containers", "accounts"],
                ["Root secret", "Barbican key id", "Active", "Objects", "Bytes", "Containers", "Accounts"])
    if by_container:
        output.emit([{"where": f"{c.account}/{c.container}", "objects": c.objects,
                      "unencrypted": c.unencrypted,
                      "keys": ", ".join(f"{sid or 'key_id'}: {n[0]}" for sid, n in sorted(c.by_secret.items()))}
                     for c in report.containers], "table", ["where", "objects", "unencrypted", "keys"],
                    ["Container", "Objects", "Unencrypted", "Objects per secret id"])


class _maybe_progress:
    """A progress bar whose total is only known after the listing (TTY only)."""

    def __init__(self, progress_cm, label: str, holder: dict) -> None:
        self.progress_cm, self.label, self.holder = progress_cm, label, holder
        self.bar = None

    def __enter__(self):
        def on_total(total: int) -> None:
            self.bar = self.progress_cm(total, self.label)
            self.holder["advance"] = self.bar.__enter__()

        def advance(n: int = 1) -> None:
            if "advance" in self.holder:
                self.holder["advance"](n)

        return advance, on_total

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


@swift.command()
@_proxy_option
@_accounts_option
@click.option("--from-key-id", "from_key", required=True, metavar="OLD",
              help="The root secret to move away from: option (key_id, key_id_2, "
                   "encryption_root_secret_2), secret id or Barbican UUID.")
@click.option("--journal", type=click.Path(dir_okay=False), default=None,
              help="Journal file (default: keytools-reencrypt-<option>.journal in the state dir).")
@click.option("--state-dir", type=click.Path(file_okay=False), default=None,
              help="Default place of the journal (default: beside the keymaster config).")
@click.option("--rate-limit", type=click.FloatRange(0), default=0.0, show_default=True,
              help="At most this many objects rewritten per second (0: no limit).")
@click.option("--concurrency", type=click.IntRange(1, 64), default=4, show_default=True)
@click.option("--dry-run", is_flag=True, help="Only count what would be rewritten.")
@output.format_option
def reencrypt(proxy_config: str, accounts: tuple[str, ...], from_key: str, journal: str | None,
              state_dir: str | None, rate_limit: float, concurrency: int, dry_run: bool,
              output_format: str) -> None:
    """Rewrite every object still under OLD with the active root secret.

    Each such object is copied onto itself server-side through this proxy's own pipeline (copy,
    slo, dlo, symlink, keymaster, encryption; no versioned_writes, so no history entry) with
    ?multipart-manifest=get&symlink=get: content, content-type, ETag, user metadata, X-Delete-At,
    SLO/DLO manifests and symlinks are kept as they are. The PUT's X-Timestamp is the object's own
    plus an offset, so a concurrent user write always wins (the copy is refused) and
    Last-Modified does not change. Kill -9 safe; rerun to continue. A rerun skips a container the
    journal finished only while Swift's listing of it is unchanged.

    Exit codes: 0 done; 1 some objects failed (listed); 2 bad option (unknown or active OLD, no
    encryption pipeline); 4 Swift, Keystone or Barbican unreachable; 5 keymaster credentials refused.
    """
    from pathlib import Path

    from keytools.progress import progress
    from swift_middleware import internal, usagestate
    from swift_middleware import reencrypt as reenc

    setup = internal.load_proxy(proxy_config)
    ref = reenc.resolve_key(setup.keys, from_key)
    reenc.require_not_active(setup.keys, ref)
    state = usagestate.state_dir(setup.keymaster_conf, state_dir)
    journal_path = Path(journal) if journal else Path(state) / f"keytools-reencrypt-{ref.option}.journal"
    holder: dict[str, object] = {}
    with _maybe_progress(progress, "Re-encrypting", holder) as (advance, on_total):
        report = reenc.run(setup, list(accounts), from_key, journal_path, dry_run, rate_limit,
                           concurrency, advance=advance, on_total=on_total)
    render = functools.partial(_render_reencrypt, report, output_format)
    if report.failures:  # the root shows the report, then the one-line error
        raise ProblemsFound(f"{len(report.failures)} object(s) could not be re-encrypted; rerun "
                            "to retry them", report=render)
    render()


def _render_reencrypt(report: ReencryptReport, output_format: str) -> None:
    if output_format == "json":
        output.emit(report.as_dict(), "json")
        return
    output.emit([{"outcome": k, "objects": v} for k, v in report.counts.items()], "table",
                ["outcome", "objects"], ["Outcome", "Objects"])
    for line in report.failures[:20]:
        click.echo(f"failed: {line}", err=True)


@swift.command(name="retire-key")
@click.argument("old")
@_proxy_option
@_accounts_option
@click.option("--config", "edit", is_flag=True,
              help="Edit the keymaster config in place (crudini; .bak copy; atomic; 0600) instead "
                   "of printing it.")
@click.option("--state-dir", type=click.Path(file_okay=False), default=None)
@click.option("--concurrency", type=click.IntRange(1, 256), default=8, show_default=True)
@output.format_option
def retire_key(old: str, proxy_config: str, accounts: tuple[str, ...], edit: bool, state_dir: str | None,
               concurrency: int, output_format: str) -> None:
    """Remove root secret OLD from the keymaster config once no object uses it.

    Runs key-usage on --account first and refuses (exit 6) while any object has data or metadata
    under OLD, or when OLD is the active key. Then prints the config without OLD's key_id line, or
    with --config writes it. Keep the Barbican secret until every proxy has been restarted.

    Exit codes: 0 done; 2 unknown OLD or bad configuration; 4 Swift unreachable; 6 OLD still in use
    or active.
    """
    from pathlib import Path

    from swift_middleware import internal, retire, usage, usagestate
    from swift_middleware.proxykeys import describe

    setup = internal.load_proxy(proxy_config)
    ref = retire.resolve_key(setup.keys, old)
    state = usagestate.state_dir(setup.keymaster_conf, state_dir)
    report = usage.scan(setup, list(accounts), Path(state), concurrency, restart=True)
    retire.refuse_if_used(setup, ref.option, report)
    result = retire.retire(setup, ref, edit)
    if output_format == "json":
        output.emit(result.as_dict(), "json")
    elif edit:
        click.echo(f"{result.file}: removed {describe(ref)} from [{result.section}] "
                   f"(backup: {result.backup})")
    else:
        click.echo(f"# {result.file}: delete the {ref.option} line; the key lines become "
                   "(every other option stays as it is):")
        for line in result.key_lines():
            click.echo(line)
    click.echo(f"# {retire.reminder(result)}.", err=True)
