"""The ``keytools`` command: global options, lazy subcommands, and the error-to-exit-code contract.

Subcommands live in their feature packages (``<package>.cli``) and are imported only when used,
so a missing optional dependency (the Swift extra, say) never breaks the other commands.
"""

from __future__ import annotations

import importlib
import logging
import sys
import traceback
from typing import Any

import click

from keytools import __version__, redaction
from keytools.auth import AuthSource
from keytools.context import RunContext
from keytools.errors import EXIT_INTERNAL, EXIT_USAGE, KeytoolsError, UsageError
from keytools.logs import setup_logging

LOG = logging.getLogger("keytools")

# name -> "module:attribute"; one place that lists every command.
SUBCOMMANDS: dict[str, str] = {
    "sandbox": "keytools.sandbox.cli:sandbox",
    "doctor": "keytools.doctor_cli:doctor",
    "migrate": "migrate.cli:migrate",
    "audit": "config_checks.cli:audit",
    "fixed-key": "config_checks.cli:fixed_key",
    "cert": "sign.cli:cert",
    "sign": "sign.cli:sign",
    "verify": "verify.cli:verify",
    "swift": "swift_middleware.cli:swift",
    "volume-type": "keytools.volume_types.cli:volume_type",
    "barbican": "keytools.barbican_backup.cli:barbican",
}

_MISSING_EXTRA_HINT = {
    "swift": "Install the Swift extra: pip install 'keytools[swift]'",
    "sandbox": "Install the sandbox extra: pip install 'keytools[sandbox]'",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = SUBCOMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            return _unavailable(cmd_name, exc)
        return getattr(module, attr)


def _unavailable(cmd_name: str, exc: ImportError) -> click.Command:
    """A stand-in that keeps --help working and fails with a one-line error when invoked."""
    hint = _MISSING_EXTRA_HINT.get(cmd_name, "Reinstall keytools with its dependencies")

    def fail(**_: Any) -> None:
        raise UsageError(f"the '{cmd_name}' command cannot load: {exc}", hint)

    return click.Command(cmd_name, callback=fail, short_help=f"(unavailable: {exc.name or exc})",
                         context_settings={"ignore_unknown_options": True, "allow_extra_args": True})


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"],
                                              "max_content_width": 100})
@click.version_option(__version__, prog_name="keytools")
@click.option("--os-cloud", envvar="OS_CLOUD", metavar="NAME",
              help="Cloud from clouds.yaml (also OS_CLOUD). Without it, OS_* variables are used.")
@click.option("--auth-config-file", type=click.Path(dir_okay=False), metavar="FILE",
              help="Authenticate with a service's credentials from this oslo config file "
                   "(e.g. cinder.conf), instead of clouds.yaml/OS_*.")
@click.option("--auth-config-section", default="keystone_authtoken", show_default=True, metavar="SECTION",
              help="Section of --auth-config-file holding the credentials.")
@click.option("--insecure", is_flag=True, help="Do not verify TLS certificates (test clouds only).")
@click.option("--debug", is_flag=True, help="Log debug details and show tracebacks on errors.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="Log lines in oslo.log's format, or one JSON object per line for tools.")
@click.pass_context
def root(ctx: click.Context, os_cloud: str | None, auth_config_file: str | None, auth_config_section: str,
         insecure: bool, debug: bool, log_format: str) -> None:
    """Encryption integration for OpenStack clouds on Barbican.

    Authentication follows the openstack CLI: --os-cloud NAME (clouds.yaml, OS_CLIENT_CONFIG_FILE)
    or OS_* environment variables; --auth-config-file uses a service's own credentials (cinder.conf
    [keystone_authtoken]). Results go to stdout, logs to stderr.

    \b
    Exit codes:
      0  success
      1  problems found (failed check, conflict, invalid signature)
      2  usage error or bad input (option, file, configuration)
      3  certificate problem
      4  a service (Keystone, Barbican, database) is unreachable
      5  authentication failed or a role is missing
      6  refused because of the cloud's state (in use, not migrated, locked)
     70  unexpected error (a bug: rerun with --debug and report it)
    """
    setup_logging(log_format, debug)
    source = AuthSource(cloud=os_cloud, config_file=auth_config_file, config_section=auth_config_section,
                        insecure=insecure)
    ctx.obj = RunContext(auth_source=source,
                         debug=debug, log_format=log_format)


def _report(message: str) -> None:
    click.echo(f"keytools: error: {redaction.redact(message)}", err=True)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and turn every expected failure into a one-line message and an exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        # Without standalone mode click returns (not raises) the code given to ctx.exit(n).
        code = root.main(args=args, prog_name="keytools", standalone_mode=False)
        return code if isinstance(code, int) else 0
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        _report("aborted")
        return 130
    except click.ClickException as exc:
        _report(exc.format_message())
        return exc.exit_code if exc.exit_code else EXIT_USAGE
    except KeytoolsError as exc:
        if debug:
            click.echo(redaction.redact(traceback.format_exc()), err=True)
        _report(exc.one_line())
        return exc.exit_code
    except KeyboardInterrupt:
        _report("interrupted")
        return 130
    except Exception as exc:  # a bug: say so plainly, never dump secrets
        if debug:
            click.echo(redaction.redact(traceback.format_exc()), err=True)
        _report(f"unexpected {type(exc).__name__}: {exc}. Rerun with --debug and report it")
        return EXIT_INTERNAL


def run() -> Any:
    sys.exit(main())


if __name__ == "__main__":
    run()
