"""Core pieces that need no cloud: errors, redaction, logging, oslo_ini, atomic writes, CLI contract."""

from __future__ import annotations

import io
import json
import logging
import os
import stat
from pathlib import Path

import click
import pytest

from keytools import errors, logs, oslo_ini, redaction
from keytools.fileutil import atomic_write
from tests.helpers.cli import invoke


def test_error_one_line_has_message_and_hint():
    err = errors.ConfigError("cinder.conf: [key_manager] fixed_key is not hex", "Fix the value.")
    assert err.one_line() == "cinder.conf: [key_manager] fixed_key is not hex. Fix the value."
    assert err.exit_code == errors.EXIT_USAGE
    assert "\n" not in errors.KeytoolsError("a\nb").one_line()


def test_redaction_masks_registered_secrets_in_every_log_format():
    secret = bytes.fromhex("00112233445566778899aabbccddeeff")
    redaction.register_secret(secret)
    redaction.register_secret("s3cr3t-password")
    for fmt in ("text", "json"):
        stream = io.StringIO()
        logs.setup_logging(fmt, stream=stream)
        logging.getLogger("keytools.test").warning("key %s pw %s", secret.hex(), "s3cr3t-password")
        logs.log_event(logging.getLogger("keytools.test"), logging.INFO, "done", "unit", detail=secret.hex())
        text = stream.getvalue()
        assert secret.hex() not in text and "s3cr3t-password" not in text
        assert "***" in text
    logs.setup_logging("text")


def test_text_log_line_is_oslo_format():
    stream = io.StringIO()
    logs.setup_logging("text", stream=stream)
    logging.getLogger("keytools.migrate").info("Starting migration of ConfKeyManager keys.")
    line = stream.getvalue().strip()
    import re

    regex = (r"^(?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) (?P<pid>\d+) (?P<level>[A-Z]+) "
             r"(?P<logger>\S+) \[(?P<ctx>[^\]]*)\] (?P<msg>.*)$")  # EXPECTED.json's line_regex
    match = re.match(regex, line)
    assert match and match["level"] == "INFO" and match["msg"] == "Starting migration of ConfKeyManager keys."
    logs.setup_logging("text")


def test_json_log_lines_carry_event_fields():
    stream = io.StringIO()
    logs.setup_logging("json", stream=stream)
    logs.log_event(logging.getLogger("keytools.migrate"), logging.INFO, "migrated", "item_migrated",
                   table="volumes", done=1, total=2)
    doc = json.loads(stream.getvalue())
    assert doc["event"] == "item_migrated" and doc["table"] == "volumes" and doc["level"] == "INFO"
    logs.setup_logging("text")


def test_oslo_ini_semantics(tmp_path):
    text = ("\ufeff[DEFAULT]\ndebug = true\n[Key_Manager]\nbackend = 'barbican'\n# fixed_key = x\n"
            "[key_manager]\nfixed_key: abcd\n  continued\n[keymgr]\nbogus line\n")
    conf = oslo_ini.parse_text(text.replace("\n", "\r\n"), "x.conf")
    assert conf.get("key_manager", "backend") == "barbican"  # sections merged, quotes stripped
    assert conf.get("KEY_MANAGER", "fixed_key") == "abcd\ncontinued"
    assert conf.setting("key_manager", "fixed_key").line == 7
    assert conf.get("DEFAULT", "debug") == "true"
    assert [p.line for p in conf.problems] == [10]


def test_oslo_ini_rejects_binary_and_missing(tmp_path):
    binary = tmp_path / "b.conf"
    binary.write_bytes(b"\x00\x01")
    with pytest.raises(errors.ConfigError, match="binary"):
        oslo_ini.parse_file(binary)
    with pytest.raises(errors.ConfigError, match="no such file"):
        oslo_ini.parse_file(tmp_path / "missing.conf")


def test_atomic_write_is_0600_and_keeps_mode_on_request(tmp_path):
    target = tmp_path / "secret.json"
    atomic_write(target, "x")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    conf = tmp_path / "a.conf"
    conf.write_text("old")
    os.chmod(conf, 0o640)
    atomic_write(conf, "new", mode=None)
    assert conf.read_text() == "new" and stat.S_IMODE(conf.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_cli_help_lists_commands_and_exit_codes():
    result = invoke(["--help"])
    assert result.exit_code == 0
    for word in ("sandbox", "doctor", "migrate", "audit", "Exit codes"):
        assert word in result.stdout


def test_cli_usage_error_is_one_line_exit_2():
    result = invoke(["doctor", "--format", "xml"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_no_credentials_is_one_line_exit_2(monkeypatch):
    env = {k: None for k in os.environ if k.startswith("OS_")}
    result = invoke(["doctor"], env=env)
    assert result.exit_code == 2
    assert result.stderr.startswith("keytools: error: no credentials given")
    assert len(result.stderr.strip().splitlines()) == 1


def test_progress_is_silent_without_a_tty(capsys):
    from keytools.progress import progress

    with progress(10, "Working") as advance:
        for _ in range(10):
            advance(1)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_key_manager_from_service_config(tmp_path):
    from castellan.key_manager.barbican_key_manager import BarbicanKeyManager

    from keytools.keymanager import key_manager_from_config

    conf = tmp_path / "nova.conf"
    conf.write_text("[key_manager]\nbackend = barbican\n[barbican]\nauth_endpoint = http://127.0.0.1:1/v3\n")
    assert isinstance(key_manager_from_config(str(conf)), BarbicanKeyManager)
    conf.write_text("[key_manager]\nbackend = no.such.Backend\n")
    with pytest.raises(errors.ConfigError, match="cannot load the key manager"):
        key_manager_from_config(str(conf))


@click.command()
@click.pass_context
def exits_six(ctx: click.Context) -> None:
    ctx.exit(6)


def test_ctx_exit_code_is_kept(monkeypatch):
    from keytools import cli

    monkeypatch.setitem(cli.SUBCOMMANDS, "exits", f"{__name__}:exits_six")
    assert invoke(["exits"]).exit_code == 6


def test_unreachable_keystone_is_named_keystone():
    from keystoneauth1 import exceptions as ksa_exc

    from keytools.service_errors import translate

    err = translate(ksa_exc.ConnectFailure("Unable to establish connection to http://127.0.0.1:9/v3/auth/tokens"),
                    "Barbican", "storing the key")
    assert err.exit_code == errors.EXIT_UNREACHABLE
    assert err.one_line().startswith("cannot reach Keystone while storing the key")


def test_command_whose_extra_is_missing_keeps_help_working(monkeypatch):
    from keytools import cli

    monkeypatch.setitem(cli.SUBCOMMANDS, "swift", "no_such_module.cli:swift")
    assert "(unavailable: no_such_module)" in invoke(["--help"]).stdout
    result = invoke(["swift", "check", "x.conf"])
    assert result.exit_code == errors.EXIT_USAGE
    assert result.stderr.strip() == ("keytools: error: the 'swift' command cannot load: No module named "
                                     "'no_such_module'. Install the Swift extra: pip install 'keytools[swift]'.")


@click.command()
@click.option("--broken-report", is_flag=True)
def reports_then_fails(broken_report: bool) -> None:
    def report() -> None:
        if broken_report:
            raise OSError(28, "No space left on device")
        click.echo("REPORT: 2 problems")

    raise errors.ProblemsFound("found 2 problems", "Fix them", report=report)


def test_root_renders_the_report_then_the_one_line_error(monkeypatch):
    from keytools import cli

    monkeypatch.setitem(cli.SUBCOMMANDS, "fails", f"{__name__}:reports_then_fails")
    result = invoke(["fails"])
    assert result.exit_code == errors.EXIT_PROBLEMS
    assert result.stdout == "REPORT: 2 problems\n"
    assert result.stderr.strip() == "keytools: error: found 2 problems. Fix them."
    # a report that cannot be shown does not hide the command's own error and exit code
    result = invoke(["fails", "--broken-report"])
    assert result.exit_code == errors.EXIT_PROBLEMS and "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        "keytools: error: could not write the report: OSError: [Errno 28] No space left on device",
        "keytools: error: found 2 problems. Fix them."]


def test_signature_format_error_is_a_usage_error_and_a_value_error():
    from keytools import image_signature as sig

    with pytest.raises(errors.UsageError) as info:
        sig.check_key_type("RSA")
    assert isinstance(info.value, ValueError) and info.value.exit_code == errors.EXIT_USAGE


def test_read_user_file_names_the_file_in_one_line(tmp_path):
    from keytools.fileutil import read_user_file

    (tmp_path / "f").write_bytes(b"x")
    assert read_user_file(tmp_path / "f", "certificate") == b"x"
    with pytest.raises(errors.UsageError) as info:
        read_user_file(tmp_path / "missing", "--key-password-file", None)
    assert info.value.one_line() == (f"cannot read --key-password-file {tmp_path / 'missing'}: "
                                     "No such file or directory.")
    with pytest.raises(errors.ConfigError):
        read_user_file(tmp_path, "config", error=errors.ConfigError)  # a directory


def test_read_user_file_path_first_shape_and_missing_hint(tmp_path):
    """The shape config files and backup inputs use: the path first, its own hint when missing."""
    from keytools.fileutil import read_user_file

    missing = tmp_path / "missing.conf"
    with pytest.raises(errors.ConfigError) as info:
        read_user_file(missing, "", "Check the path and permissions", errors.ConfigError,
                       missing_hint="Check the path", path_first=True)
    assert (info.value.message, info.value.hint) == (f"{missing}: no such file", "Check the path")
    with pytest.raises(errors.UsageError) as info:
        read_user_file(tmp_path, "--kek-file", "Check the path and permissions", path_first=True)
    assert info.value.exit_code == errors.EXIT_USAGE
    assert info.value.message == f"--kek-file {tmp_path} is a directory, not a regular file"


@pytest.mark.parametrize("kind", ["fifo", "device", "directory", "socket"])
def test_read_user_file_refuses_what_is_not_a_regular_file_without_blocking(tmp_path, kind):
    """A FIFO with no writer would block open() forever, /dev/zero would be read until memory
    runs out: both are refused at once, naming the file (exit 2)."""
    import socket

    from keytools.fileutil import open_user_file, read_user_file

    path = tmp_path / kind
    sock = None
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "device":
        path = Path("/dev/zero")
    elif kind == "directory":
        path.mkdir()
    else:
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(path))
    try:
        for reader in (read_user_file, open_user_file):
            with pytest.raises(errors.UsageError) as info:
                reader(path, "--cert")
            assert info.value.exit_code == errors.EXIT_USAGE
            assert info.value.one_line().startswith(f"--cert {path} is a") and "not a regular file" in info.value.message
    finally:
        if sock is not None:
            sock.close()


def test_read_user_file_bounds_what_it_reads_whole(tmp_path):
    from keytools.fileutil import MIB, read_user_file

    big = tmp_path / "big.pem"
    big.write_bytes(b"x" * (MIB + 1))
    with pytest.raises(errors.UsageError) as info:
        read_user_file(big, "certificate")
    assert info.value.message == f"certificate {big} is larger than 1 MiB, more than such a file holds"
    assert read_user_file(big, "config", max_bytes=2 * MIB) == b"x" * (MIB + 1)
    with pytest.raises(errors.UsageError) as info:
        read_user_file(str(tmp_path / "a\x00b"), "--config")
    assert "NUL byte" in info.value.message


def test_find_tool_prefers_this_virtualenv_and_names_what_is_missing(monkeypatch, tmp_path):
    import sys

    from keytools.errors import KeytoolsError, UsageError
    from keytools.tools import find_tool

    from pathlib import Path

    here = Path(sys.executable).parent / "crudini"
    assert find_tool("crudini", "pip install crudini") == str(here)  # beside the interpreter first
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(UsageError) as caught:
        find_tool("no-such-tool-kt", "Install it")
    assert caught.value.one_line() == "no-such-tool-kt is not installed. Install it."
    with pytest.raises(KeytoolsError) as caught:
        find_tool("no-such-tool-kt", "Install it", KeytoolsError)
    assert caught.value.exit_code == 1


def test_private_workdir_is_0700_beside_the_file_and_a_dead_runs_is_removed(tmp_path):
    """Decrypted material is worked on in a 0700 dot-directory beside its file; the next run removes
    the one a killed run left (owner pid gone), never one whose owner still runs."""
    import subprocess
    import sys

    from keytools.fileutil import private_workdir

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".keytools-restore-{int(dead.stdout)}-abc"
    stale.mkdir(mode=0o700)
    (stale / "dump").write_bytes(b"decrypted")
    alive = tmp_path / f".keytools-restore-{os.getppid()}-def"  # pytest's parent: running
    alive.mkdir(mode=0o700)
    with private_workdir(tmp_path, "restore") as work:
        assert work.parent == tmp_path and stat.S_IMODE(work.stat().st_mode) == 0o700
        assert work.name.startswith(f".keytools-restore-{os.getpid()}-")
        assert not stale.exists() and alive.exists()
    assert not work.exists()
    with pytest.raises(errors.UsageError) as refused, private_workdir(tmp_path / "missing", "restore"):
        pass
    assert str(tmp_path / "missing") in refused.value.one_line()
