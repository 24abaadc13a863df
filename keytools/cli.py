"""The ``keytools`` command: global options, lazy subcommands, and the error-to-exit-code contract.

Subcommands live in their feature packages (``<package>.cli``) and are imported only when used,
so a missing optional dependency (the Swift extra, say) never breaks the other commands.
Global options work before or after any (nested) subcommand, as with the ``openstack`` CLI:
every command the root hands out accepts them (``keytools migrate run ... --os-cloud X``).
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
import sys
import traceback
from collections.abc import Mapping
from typing import Any

import click
from click.core import ParameterSource

from keytools import __version__, output, redaction
from keytools.context import RunContext
from keytools.errors import EXIT_CLOSED_STDOUT, EXIT_INTERNAL, EXIT_USAGE, KeytoolsError, UsageError
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
    "barbican": "keytools.barbican.cli:barbican",
    "keys": "keytools.keys.cli:keys",
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
            command = _unavailable(cmd_name, exc)
        else:
            command = getattr(module, attr)
        accept_global_options(command, ctx)
        return command


# Root option name -> AuthSource field.
_AUTH_FIELDS = {"os_cloud": "cloud", "auth_config_file": "config_file",
                "auth_config_section": "config_section", "insecure": "insecure"}
_RUN_FIELDS = ("debug", "log_format")
_ACCEPTS_GLOBALS = "_keytools_accepts_global_options"


def apply_global_options(run: RunContext, values: Mapping[str, Any]) -> None:
    """Set the run's credentials source and logging from global options, wherever they were given."""
    unknown = set(values) - set(_AUTH_FIELDS) - set(_RUN_FIELDS)
    if unknown:  # a new root option must be wired here, or it would be silently ignored
        raise AssertionError(f"global option(s) not applied: {sorted(unknown)}")
    changes = {_AUTH_FIELDS[name]: value for name, value in values.items() if name in _AUTH_FIELDS}
    if changes:
        run.set_auth_source(dataclasses.replace(run.auth_source, **changes))
    for name in _RUN_FIELDS:
        if name in values:
            setattr(run, name, values[name])
    setup_logging(run.log_format, run.debug)


def _given_after_subcommand(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Callback of a global option's copy on a subcommand: given there, it overrides the root's."""
    if param.name and ctx.get_parameter_source(param.name) is ParameterSource.COMMANDLINE:
        apply_global_options(ctx.ensure_object(RunContext), {param.name: value})
    return value


def _late_copy(option: click.Option) -> click.Option:
    """The root ``option`` as a subcommand accepts it: hidden, no env var, no default, not passed on."""
    if option.is_eager:  # --version: the same action wherever it is given
        return click.Option(option.opts, is_flag=True, is_eager=True, expose_value=False, hidden=True,
                            callback=option.callback)
    if option.is_flag:
        return click.Option(option.opts, is_flag=True, expose_value=False, hidden=True,
                            callback=_given_after_subcommand)
    return click.Option(option.opts, type=option.type, metavar=option.metavar, expose_value=False,
                        hidden=True, callback=_given_after_subcommand)


def accept_global_options(command: click.Command, ctx: click.Context) -> None:
    """Let ``command`` and every command below it take the root's options too (once per command).

    A command's own option with the same name or flag wins: that global option is not added there.
    """
    if getattr(command, _ACCEPTS_GLOBALS, False):
        return
    setattr(command, _ACCEPTS_GLOBALS, True)
    taken = {p.name for p in command.params} | {o for p in command.params for o in p.opts + p.secondary_opts}
    added = []
    for option in root.params:
        if not isinstance(option, click.Option) or option.name in taken or set(option.opts) & taken:
            continue
        command.params.append(_late_copy(option))
        if not option.is_eager:
            added.append(option.opts[0])
    if added:
        note = (f"Global options ({', '.join(added)}) are accepted here too, as well as before the "
                "command name; see 'keytools --help'.")
        command.epilog = f"{command.epilog}\n\n{note}" if command.epilog else note
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None:
                accept_global_options(sub, ctx)


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
def root(ctx: click.Context, **global_options: Any) -> None:
    """Encryption integration for OpenStack clouds on Barbican.

    Authentication follows the openstack CLI: --os-cloud NAME (clouds.yaml, OS_CLIENT_CONFIG_FILE)
    or OS_* environment variables; --auth-config-file uses a service's own credentials (cinder.conf
    [keystone_authtoken]). Results go to stdout, logs to stderr. Like the openstack CLI, these
    options also work after the command: keytools doctor --os-cloud NAME --debug (the last one
    given wins).

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
    141  stdout was closed early (keytools ... | head), as for any command
    """
    ctx.obj = RunContext()
    apply_global_options(ctx.obj, global_options)


def _report(message: str) -> None:
    click.echo(f"keytools: error: {redaction.redact(message)}", err=True)


def _show_report(exc: KeytoolsError) -> None:
    """Render what the command established before failing (verify, audit), before the error line."""
    if exc.report is None:
        return
    try:
        exc.report()
    except BrokenPipeError:
        raise
    except Exception as report_exc:  # e.g. --output on a full disk: the error line still follows
        _report(f"could not write the report: {type(report_exc).__name__}: {report_exc}")


def _stdout_closed() -> int:
    """End quietly when stdout was closed early (``keytools ... | head -1``), as CLIs do: nothing
    more is written there (Python's own flush at exit would complain) and no error line."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # not a real file (in-process runs)
        pass
    return EXIT_CLOSED_STDOUT


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and turn every expected failure into a one-line message and an exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    output.safe_streams()
    try:
        return _main(args)
    except BrokenPipeError:
        return _stdout_closed()


def _main(args: list[str]) -> int:
    debug = "--debug" in args
    stdout = sys.stdout
    try:
        # Without standalone mode click returns (not raises) the code given to ctx.exit(n).
        code = root.main(args=args, prog_name="keytools", standalone_mode=False)
        return code if isinstance(code, int) else 0
    except SystemExit:
        if sys.stdout is not stdout:  # click's answer to EPIPE: it swapped in a quiet stdout, then exit(1)
            return _stdout_closed()
        raise
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        _report("aborted")
        return 130
    except click.exceptions.NoArgsIsHelpError as exc:  # a group without its command: the help, as is
        click.echo(exc.format_message(), err=True)
        return EXIT_USAGE
    except click.ClickException as exc:
        _report(exc.format_message())
        return exc.exit_code if exc.exit_code else EXIT_USAGE
    except KeytoolsError as exc:
        _show_report(exc)
        if debug:
            click.echo(redaction.redact(traceback.format_exc()), err=True)
        _report(exc.one_line())
        return exc.exit_code
    except KeyboardInterrupt:
        _report("interrupted")
        return 130
    except BrokenPipeError:
        raise
    except Exception as exc:  # a bug: say so plainly, never dump secrets
        if debug:
            click.echo(redaction.redact(traceback.format_exc()), err=True)
        _report(f"unexpected {type(exc).__name__}: {exc}. Rerun with --debug and report it")
        return EXIT_INTERNAL


def run() -> Any:
    code = main()
    try:
        sys.stdout.flush()  # here, not in the interpreter's exit (which would print an error)
    except BrokenPipeError:
        code = _stdout_closed()
    sys.exit(code)


if __name__ == "__main__":
    run()
