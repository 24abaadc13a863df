"""CLI wiring for ``keytools swift``; the work is in swift_middleware.check and .newkey."""

from __future__ import annotations

import click

from keytools import output
from keytools.context import RunContext, pass_run
from keytools.errors import ProblemsFound
from swift_middleware import check as check_mod
from swift_middleware import newkey


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
    if output_format == "json":
        output.emit(report.as_dict(), "json")
    else:
        output.emit([f.as_dict() for f in report.findings], "table", ["check", "ok", "message"],
                    ["Check", "OK", "Message"])
        if report.keys:
            output.emit([k.as_dict() for k in report.keys], "table",
                        ["option", "key_id", "algorithm", "bit_length", "fingerprint", "active"],
                        ["Option", "Key id", "Algorithm", "Bits", "Fingerprint", "Active"])
    if report.error is not None:
        raise report.error
    if not report.ok:
        failed = sum(not f.ok for f in report.findings)
        raise ProblemsFound(f"{proxy_conf}: {failed} check(s) failed")


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
            raise click.UsageError("--migrate-from-inline needs --proxy-conf")
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
