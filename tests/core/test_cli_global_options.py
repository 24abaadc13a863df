"""Global options before or after the (nested) subcommand, as ``openstack secret list --os-cloud X``.

The parsing tests run the real ``main()`` on the real commands with their callbacks replaced by a
probe that records what the command would have used; the cloud tests run doctor for real.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import click
import pytest

from keytools import cli, context, logs
from keytools.errors import EXIT_USAGE
from tests.helpers.cli import invoke, run_keytools

# (command path, the command's own required arguments/options)
NESTED = [
    (["doctor"], []),
    (["migrate", "run"], ["--config-file", "c.conf"]),
    (["barbican", "drill"], ["--config", "barbican.conf"]),
    (["fixed-key", "retire"], ["/etc/root", "--dry-run"]),
]
# global option -> (command-line value, what the run then uses)
GLOBALS: dict[str, tuple[str | None, dict[str, Any]]] = {
    "--os-cloud": ("cloud-x", {"cloud": "cloud-x"}),
    "--auth-config-file": ("svc.conf", {"config_file": "svc.conf"}),
    "--auth-config-section": ("service_user", {"config_section": "service_user"}),
    "--insecure": (None, {"insecure": True}),
    "--debug": (None, {"debug": True}),
    "--log-format": ("json", {"log_format": "json"}),
}


def _command(path: list[str]) -> click.Command:
    command: click.Command = cli.root
    with click.Context(cli.root) as ctx:
        for name in path:
            assert isinstance(command, click.Group)
            found = command.get_command(ctx, name)
            assert found is not None
            command = found
    return command


@pytest.fixture
def probe(monkeypatch):
    """``probe(path)``: the command at ``path`` records its params and the run's settings instead of running."""
    seen: list[dict[str, Any]] = []

    def install(path: list[str]) -> list[dict[str, Any]]:
        command = _command(path)

        def record(**params: Any) -> None:
            run = context.current()
            handler = next(h for h in logging.getLogger().handlers if getattr(h, "_keytools", False))
            seen.append({"params": params, "cloud": run.auth_source.cloud,
                         "config_file": run.auth_source.config_file,
                         "config_section": run.auth_source.config_section,
                         "insecure": run.auth_source.insecure, "debug": run.debug, "log_format": run.log_format,
                         "level": logging.getLogger().level,
                         "client_level": logging.getLogger("keystoneauth.session").getEffectiveLevel(),
                         "json_logs": isinstance(handler.formatter, logs.JsonFormatter)})

        monkeypatch.setattr(command, "callback", record)
        return seen

    yield install
    logs.setup_logging()  # later tests log as a default run does


def _argv(option: str, value: str | None, joined: bool) -> list[str]:
    if value is None:
        return [option]
    return [f"{option}={value}"] if joined else [option, value]


def test_every_root_option_is_covered():
    """A new global option is accepted after subcommands automatically; this list must name it."""
    names = {p.opts[0] for p in cli.root.params if isinstance(p, click.Option) and not p.is_eager}
    assert names == set(GLOBALS)


@pytest.mark.parametrize("path,own", NESTED, ids=[" ".join(p) for p, _ in NESTED])
@pytest.mark.parametrize("option", list(GLOBALS))
@pytest.mark.parametrize("where", ["before", "after", "after-joined"])
def test_global_option_before_and_after_the_subcommand(probe, path, own, option, where):
    seen = probe(path)
    value, expected = GLOBALS[option]
    given = _argv(option, value, joined=where == "after-joined")
    argv = [*given, *path, *own] if where == "before" else [*path, *own, *given]
    result = invoke(argv)
    assert result.exit_code == 0, result.output
    assert len(seen) == 1
    for key, want in expected.items():
        assert seen[0][key] == want, (argv, seen[0])
    if option == "--debug":  # client libraries too (quiet at WARNING without --debug)
        assert seen[0]["level"] == seen[0]["client_level"] == logging.DEBUG
    if option == "--log-format":
        assert seen[0]["json_logs"]
    assert seen[0]["params"]  # the command's own options were still parsed


def test_all_globals_after_a_nested_command_with_its_own_options(probe):
    """The issue's example: keytools migrate run --config-file c --os-cloud X --debug."""
    seen = probe(["migrate", "run"])
    result = invoke(["migrate", "run", "--config-file", "c.conf", "--os-cloud", "X", "--debug",
                     "--concurrency", "3", "--insecure", "--log-format=json", "-f", "json"])
    assert result.exit_code == 0, result.output
    got = seen[0]
    assert (got["cloud"], got["debug"], got["insecure"], got["log_format"]) == ("X", True, True, "json")
    assert got["params"]["concurrency"] == 3 and got["params"]["output_format"] == "json"
    assert got["params"]["config_file"] == "c.conf"


def test_between_group_and_subcommand_and_last_one_wins(probe, monkeypatch):
    monkeypatch.setenv("OS_CLOUD", "from-env")
    seen = probe(["migrate", "run"])
    assert invoke(["migrate", "--os-cloud", "middle", "run", "--config-file", "c"]).exit_code == 0
    assert invoke(["--os-cloud", "first", "migrate", "run", "--config-file", "c", "--os-cloud", "last"]
                  ).exit_code == 0
    assert invoke(["migrate", "run", "--config-file", "c"]).exit_code == 0  # OS_CLOUD still applies
    assert [s["cloud"] for s in seen] == ["middle", "last", "from-env"]


def test_global_option_value_that_looks_like_an_option_is_a_value(probe):
    seen = probe(["doctor"])
    assert invoke(["doctor", "--auth-config-section", "--debug"]).exit_code == 0
    assert seen[0]["config_section"] == "--debug" and seen[0]["debug"] is False


def test_after_double_dash_it_is_an_argument(probe):
    seen = probe(["fixed-key", "retire"])
    assert invoke(["fixed-key", "retire", "--dry-run", "--", "--debug"]).exit_code == 0
    assert seen[0]["params"]["roots"] == ("--debug",) and seen[0]["debug"] is False


@pytest.mark.parametrize("argv,message", [
    (["doctor", "--os-cloud"], "Option '--os-cloud' requires an argument."),
    (["migrate", "run", "--config-file", "c", "--log-format", "xml"], "Invalid value for '--log-format'"),
    (["doctor", "--no-such-global"], "No such option '--no-such-global'"),
])
def test_bad_global_after_subcommand_is_one_line_usage_error(argv, message):
    result = invoke(argv)
    assert result.exit_code == EXIT_USAGE
    assert result.stderr.startswith("keytools: error: ") and result.stderr.count("\n") == 1
    assert message in result.stderr


def test_version_after_a_subcommand():
    result = invoke(["migrate", "run", "--version"])
    assert result.exit_code == 0 and result.stdout.startswith("keytools, version ")


def _squeezed(text: str) -> str:
    return "".join(text.split())


def _help(argv: list[str]) -> str:
    """Help text without whitespace: click wraps lines anywhere, even inside '--log-format'."""
    result = invoke(argv)
    assert result.exit_code == 0, result.output
    return _squeezed(result.stdout)


@pytest.mark.parametrize("path", [["doctor"], ["migrate"], ["migrate", "run"], ["barbican", "drill"],
                                  ["fixed-key", "retire"], ["sandbox", "up"], ["verify"]])
def test_subcommand_help_says_global_options_are_accepted(path):
    text = _help([*path, "--help"])
    assert _squeezed("Global options (--os-cloud, --auth-config-file, --auth-config-section, --insecure, "
                     "--debug, --log-format) are accepted here too") in text
    assert "--os-cloudNAME" not in text  # listed once in 'keytools --help', not in every command's table


# A command of a future feature whose own options share names with global ones: its own ones win.
CLASH_SEEN: list[dict[str, Any]] = []


@click.command()
@click.option("--debug", "debug_level", type=int, default=0, help="This command's own --debug LEVEL.")
@click.option("--cloud", "os_cloud", help="Same parameter name as the global --os-cloud.")
def clashing(debug_level: int, os_cloud: str | None) -> None:
    """A command whose own options clash with global ones."""
    run = context.current()
    CLASH_SEEN.append({"debug_level": debug_level, "own_cloud": os_cloud, "run_debug": run.debug,
                       "run_insecure": run.auth_source.insecure,
                       "run_cloud": run.auth_source.cloud})


@click.group()
def future() -> None:
    """A group added later, with no code for global options."""


@future.command("leaf")
def future_leaf() -> None:
    run = context.current()
    CLASH_SEEN.append({"run_cloud": run.auth_source.cloud, "run_debug": run.debug})


@pytest.fixture
def extra_commands(monkeypatch):
    CLASH_SEEN.clear()
    monkeypatch.setitem(cli.SUBCOMMANDS, "clashing", f"{__name__}:clashing")
    monkeypatch.setitem(cli.SUBCOMMANDS, "future", f"{__name__}:future")
    yield CLASH_SEEN
    logs.setup_logging()


def test_own_option_of_the_same_name_wins(extra_commands):
    result = invoke(["--debug", "--os-cloud", "g", "clashing", "--debug", "3", "--cloud", "own",
                     "--insecure"])
    assert result.exit_code == 0, result.output
    assert extra_commands == [{"debug_level": 3, "own_cloud": "own", "run_debug": True, "run_insecure": True,
                              "run_cloud": "g"}]
    # the clashing names were not added: --os-cloud (another name, same parameter) is refused there
    result = invoke(["clashing", "--debug", "1", "--os-cloud", "x"])
    assert result.exit_code == EXIT_USAGE and "No such option '--os-cloud'" in result.stderr
    help_text = _help(["clashing", "--help"])
    assert _squeezed("--debug INTEGER This command's own --debug LEVEL.") in help_text
    assert _squeezed("Global options (--auth-config-file, --auth-config-section, --insecure, --log-format) "
                     "are accepted here too") in help_text


def test_a_new_nested_group_gets_global_options_without_code(extra_commands):
    assert invoke(["future", "leaf", "--os-cloud=new", "--debug"]).exit_code == 0
    assert extra_commands == [{"run_cloud": "new", "run_debug": True}]


# Against the real sandbox.

def _doctor_json(result):
    return {f["check"]: f for f in json.loads(result.stdout)}


def test_doctor_with_os_cloud_after_the_subcommand(kt):
    result = kt("doctor", "--os-cloud", "sandbox-demo", "--format", "json")
    assert result.exit_code == 0, result.output
    assert all(f["status"] == "ok" for f in _doctor_json(result).values())
    # the one after the subcommand overrides the one before it: cinder has no creator role
    result = kt("--os-cloud", "sandbox-demo", "doctor", "--os-cloud=sandbox-cinder", "-f", "json")
    assert result.exit_code == 1
    assert _doctor_json(result)["can create secrets"]["status"] == "fail"


def test_doctor_with_service_config_after_the_subcommand(sandbox, tmp_path, kt):
    conf = tmp_path / "cinder.conf"
    conf.write_text(f"""[service_user]
auth_url = {sandbox.keystone_url}
auth_type = password
username = demo
password = {sandbox.password('demo')}
project_name = demo
user_domain_name = Default
project_domain_name = Default
""")
    result = kt("doctor", "-f", "json", "--auth-config-file", str(conf), "--auth-config-section=service_user")
    assert result.exit_code == 0, result.output
    assert "creator" in _doctor_json(result)["roles"]["detail"]
    assert sandbox.password("demo") not in result.output


def test_debug_and_json_logs_after_the_subcommand_in_a_real_process(sandbox):
    proc = run_keytools("doctor", "--os-cloud", "sandbox-demo", "--debug", "--log-format", "json",
                        env=sandbox.env())
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    assert lines and len(lines) == len([x for x in proc.stderr.splitlines() if x.strip()])
    assert "DEBUG" in {line["level"] for line in lines}
    assert sandbox.password("demo") not in proc.stdout + proc.stderr
