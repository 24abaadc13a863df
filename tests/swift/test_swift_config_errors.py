"""Hostile proxy-server.conf and keymaster.conf files (issue 21): every reader (swift check,
key-usage, reencrypt, retire-key, new-key's readers, the keymaster's start in the proxy) ends
with one line naming file and line, exit 2 (check: a failed SWIFT005, exit 1), never the value.

No Barbican is needed: every case is refused before keytools would talk to one (Keystone is a
closed port on 127.0.0.1). Swift's own ``readconf`` is the oracle for what is a valid file.
"""

from __future__ import annotations

import json
import os
import socket

import pytest
from swift.common.utils import readconf
from swift.common.wsgi import ConfigFileError

from keytools.errors import ConfigError
from swift_middleware import keymaster, newkey, settings, swiftconf
from tests.fuzz import contract
from tests.helpers.cli import invoke

PASSWORD = "Pw-in-keymaster-9931"
KEY_ID = "8f0e4a52-1d3c-4cb6-9a57-2f4c7e9d1b60"


def _closed_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/v3"


GOOD = (f"auth_endpoint = {_closed_url()}\nusername = swift\npassword = {PASSWORD}\n"
        f"project_name = service\nuser_domain_name = Default\nproject_domain_name = Default\n"
        f"key_id = {KEY_ID}\nstartup_retries = 0\n")


def _proxy(tmp_path, keymaster_lines: str) -> str:
    path = tmp_path / "proxy-server.conf"
    path.write_text(
        f"[DEFAULT]\nswift_dir = {tmp_path}\n\n[pipeline:main]\n"
        "pipeline = catch_errors keymaster encryption proxy-logging proxy-server\n\n"
        "[app:proxy-server]\nuse = egg:swift#proxy\n\n[filter:catch_errors]\nuse = egg:swift#catch_errors\n\n"
        "[filter:proxy-logging]\nuse = egg:swift#proxy_logging\n\n"
        "[filter:encryption]\nuse = egg:swift#encryption\n\n"
        f"[filter:keymaster]\nuse = egg:keytools#keymaster\n{keymaster_lines}")
    return str(path)


# (case, keymaster.conf text, what the one line says). Each ended as exit 70 or quoted the password.
NO_PASSWORD = GOOD.replace(f"password = {PASSWORD}\n", "")
INDENTED = GOOD.replace("password", " password").replace("username", "key_id_9")
BROKEN = [
    ("missing section header", f"password = {PASSWORD}\n[kms_keymaster]\n{NO_PASSWORD}",
     "line 1: an option or text before the first [section] header"),
    ("duplicate option", f"[kms_keymaster]\n{GOOD}password = {PASSWORD}\n", "line 10: option password appears twice"),
    ("duplicate section", f"[kms_keymaster]\n{GOOD}[kms_keymaster]\n", "line 10: section [kms_keymaster] appears twice"),
    ("bad % reference", f"[kms_keymaster]\n{GOOD.replace(PASSWORD, PASSWORD + '%(nope)s')}",
     "line 4: [kms_keymaster] password: bad %-interpolation"),
    ("bad % syntax", f"[kms_keymaster]\n{GOOD.replace(PASSWORD, PASSWORD + '%(x')}",
     "line 4: [kms_keymaster] password: bad %-interpolation"),
    ("parsing error", f"[kms_keymaster]\n{GOOD.replace('password = ', 'password ')}", "line 4: cannot parse the line"),
    ("not UTF-8", f"[kms_keymaster]\n{GOOD}".replace(PASSWORD, PASSWORD + "\udcff").encode("utf-8",
                                                                                           "surrogateescape"),
     "line 4: not UTF-8 text"),
    ("indented password line", f"[kms_keymaster]\n{INDENTED}",
     "key_id_9 = 'swift' (+1 continuation line(s)) is not a Barbican secret id"),
]


def _failed(check) -> dict[str, str]:
    """The failed checks of ``swift check -f json`` output: name -> message."""
    return {c["check"]: c["message"] for c in json.loads(check.stdout)["checks"] if not c["ok"]}


def _write(path, content) -> str:
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return str(path)


@pytest.mark.parametrize("case, text, expected", BROKEN, ids=[c[0] for c in BROKEN])
def test_broken_keymaster_conf_is_one_line_naming_the_line_never_the_password(tmp_path, case, text, expected):
    km = _write(tmp_path / "keymaster.conf", text)
    proxy = _proxy(tmp_path, f"keymaster_config_path = {km}\n")
    check = invoke(["swift", "check", "-f", "json", proxy])
    assert check.exit_code == 1, check.output
    assert expected in _failed(check)["SWIFT005 keymaster options"]
    for args in (["swift", "key-usage", "--proxy-config", proxy, "--account", "AUTH_x"],
                 ["swift", "reencrypt", "--proxy-config", proxy, "--account", "AUTH_x", "--from-key-id", "key_id"],
                 ["swift", "retire-key", "key_id", "--proxy-config", proxy, "--account", "AUTH_x"]):
        result = invoke(args)
        assert result.exit_code == 2, (args, result.output)
        assert result.stderr.count("\n") == 1 and expected in result.stderr, result.stderr
    try:  # new-key reads the file only for the key_id* option names
        newkey.existing_secret_ids(proxy)
        new_key = ""
    except ConfigError as exc:
        new_key = exc.one_line()
        assert expected in new_key
    with pytest.raises(keymaster.KeymasterStartupError) as started:
        keymaster.filter_factory({"__file__": proxy}, keymaster_config_path=km)(lambda env, start: [b""])
    assert isinstance(started.value, ConfigFileError)  # swift-proxy-server: this line, exit 1
    assert expected in str(started.value) and "\n" not in str(started.value)
    for output in (check.output, result.output, new_key, str(started.value)):
        assert PASSWORD not in output
        assert "Traceback" not in output


@pytest.mark.parametrize("case, text, expected", BROKEN[:6], ids=[c[0] for c in BROKEN[:6]])
def test_broken_proxy_server_conf_is_exit_2_with_one_line(tmp_path, case, text, expected):
    # the keymaster's options inline in the proxy-server.conf, broken the same ways
    section_first = text.replace("[kms_keymaster]", "[filter:keymaster]")
    proxy = _write(tmp_path / "proxy-server.conf", "[pipeline:main]\npipeline = keymaster proxy-server\n"
                   + section_first if not section_first.startswith("password") else section_first)
    for args in (["swift", "check", proxy], ["swift", "key-usage", "--proxy-config", proxy, "--account", "AUTH_x"]):
        result = invoke(args)
        assert result.exit_code == 2, result.output
        assert result.stderr.startswith(f"keytools: error: {proxy} line") and result.stderr.count("\n") == 1
        assert PASSWORD not in result.output
    with pytest.raises(ConfigError):
        newkey.inline_secrets(proxy)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e999", "-1", "2.5", "1001", "many"])
def test_startup_retries_must_be_a_bounded_whole_number(tmp_path, value):
    text = GOOD.replace("startup_retries = 0", f"startup_retries = {value}")
    km = _write(tmp_path / "keymaster.conf", f"[kms_keymaster]\n{text}")
    with pytest.raises(ConfigError, match=f"startup_retries = {value} is not a number >= 0"):
        settings.parse({"keymaster_config_path": km})
    with pytest.raises(keymaster.KeymasterStartupError, match="startup_retries"):
        keymaster.filter_factory({}, keymaster_config_path=km)(lambda env, start: [b""])


@pytest.mark.parametrize("option", ["startup_backoff", "startup_backoff_max", "barbican_timeout"])
def test_backoff_and_timeout_must_be_finite(tmp_path, option):
    km = _write(tmp_path / "keymaster.conf", f"[kms_keymaster]\n{GOOD}{option} = inf\n")
    with pytest.raises(ConfigError, match=f"{option} = inf is not a number"):
        settings.parse({"keymaster_config_path": km})


def test_nul_byte_in_keymaster_config_path(tmp_path):
    km = _write(tmp_path / "keymaster.conf", f"[kms_keymaster]\n{GOOD}")
    proxy = _proxy(tmp_path, "")
    with open(proxy, "ab") as handle:
        handle.write(f"keymaster_config_path = {km}\x00x\n".encode())
    check = invoke(["swift", "check", "-f", "json", proxy])
    assert check.exit_code == 1, check.output
    assert "keymaster_config_path contains a NUL byte" in _failed(check)["SWIFT005 keymaster options"]
    result = invoke(["swift", "key-usage", "--proxy-config", proxy, "--account", "AUTH_x"])
    assert result.exit_code == 2 and "keymaster_config_path contains a NUL byte" in result.stderr
    with pytest.raises(keymaster.KeymasterStartupError, match="NUL byte"):
        keymaster.filter_factory({"__file__": proxy}, keymaster_config_path=f"{km}\x00x")(lambda env, start: [b""])


def test_fifo_as_keymaster_conf_or_proxy_conf_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "keymaster.conf"
    os.mkfifo(fifo)
    proxy = _proxy(tmp_path, f"keymaster_config_path = {fifo}\n")
    with contract.bounded(20):
        check = invoke(["swift", "check", "-f", "json", proxy])
        with pytest.raises(keymaster.KeymasterStartupError, match="FIFO"):
            keymaster.filter_factory({}, keymaster_config_path=str(fifo))(lambda env, start: [b""])
        result = invoke(["swift", "check", str(fifo)])
    assert "is a FIFO (named pipe), not a regular file" in _failed(check)["SWIFT005 keymaster options"]
    assert result.exit_code == 2 and "FIFO" in result.stderr


def test_the_reader_reads_what_swift_reads(tmp_path):
    """The oracle: Swift's readconf, on a file using what Swift allows (interpolation, DEFAULT, a
    literal %, ':' separators, continuation lines) and on a conf.d directory."""
    text = (f"[DEFAULT]\nbase = /srv\nlog_name = x\n[kms_keymaster]\n{GOOD}path = %(base)s/node\n"
            "fallocate_reserve = 1%\nuser_id: abc\nmulti = one\n  two\n")
    km = _write(tmp_path / "keymaster.conf", text)
    assert swiftconf.read(km, "kms_keymaster") == readconf(km, "kms_keymaster")
    assert swiftconf.read(km) == readconf(km)
    conf_d = tmp_path / "proxy-server.conf.d"
    conf_d.mkdir()
    _write(conf_d / "10-a.conf", "[DEFAULT]\nworkers = 2\n[app:proxy-server]\nuse = egg:swift#proxy\n")
    _write(conf_d / "20-b.conf", "[app:proxy-server]\nworkers = 3\n")
    _write(conf_d / ".hidden.conf", "not a config\n")
    assert swiftconf.read(str(conf_d)) == readconf(str(conf_d))
    _write(conf_d / "30-c.conf", "[app:proxy-server]\n  indented junk\nx\n")
    with pytest.raises(ConfigError, match="30-c.conf line 2: cannot parse"):
        swiftconf.read(str(conf_d))


def test_real_proxy_with_a_broken_keymaster_conf_exits_with_one_line(swift_sandbox, swift_workdir):
    """What swift-proxy-server shows (its pipeline load, as for Swift's own middlewares): our one
    line and exit 1; never configparser's message quoting the password line, never a traceback."""
    from swift_helpers import ProxyProcess

    km = swift_workdir / "broken-keymaster.conf"
    _write(km, f"[kms_keymaster]\n{GOOD}password = {PASSWORD}\n")
    os.chmod(km, 0o600)
    proxy = ProxyProcess(swift_sandbox.state, swift_sandbox.config, swift_workdir, "proxy-broken-conf",
                         {"use": "egg:keytools#keymaster", "keymaster_config_path": str(km)})
    assert proxy.wait_exit() != 0
    out = proxy.output()
    assert f"keytools keymaster refuses to start: {km} line 10: option password appears twice in " \
           "[kms_keymaster]" in out
    assert PASSWORD not in out and "Traceback" not in out
