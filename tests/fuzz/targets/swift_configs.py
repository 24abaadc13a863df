"""Every reader of a proxy-server.conf and a keymaster.conf: ``swift check``, ``key-usage``,
``reencrypt``, ``retire-key``, ``new-key`` (its config readers) and the keymaster's start.

The first byte picks which file the rest of ``data`` is: the separate keymaster.conf (the
proxy-server.conf points at it) or a proxy-server.conf with the keymaster's options inline. A
password is planted in each seed; it must never be shown, unless the mutated file itself gives its
text to a non-secret option (then an error may quote that option's first line). Swift's own
``readconf`` is the oracle: keytools' reader accepts exactly what it accepts, with the same values.
Keystone is a closed port on 127.0.0.1, so a valid config ends as "unreachable" (exit 4) at once.
"""

from __future__ import annotations

import socket

# Imported here, not in the first input: Swift's imports take seconds, and libFuzzer's alarm
# (armed until the first contract.bounded) counts a first input that slow as a timeout.
import swift.common.internal_client  # noqa: F401
import swift.proxy.server  # noqa: F401
from swift.common.utils import readconf

from keytools.errors import ConfigError, KeytoolsError
from swift_middleware import (check, cli, internal, keymaster, newkey, reencrypt, retire,  # noqa: F401
                              settings, swiftconf)
from tests.fuzz import contract

PASSWORD = "Fz-planted-Pw-4711"
SECRETS = ("password", "application_credential_secret")
KEY_ID = "8f0e4a52-1d3c-4cb6-9a57-2f4c7e9d1b60"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once the socket is closed


KEYSTONE = f"http://127.0.0.1:{_closed_port()}/v3"
KEYMASTER = (
    f"auth_endpoint = {KEYSTONE}\n"
    "username = swift\n"
    f"password = {PASSWORD}\n"
    "project_name = service\n"
    "user_domain_name = Default\n"
    "project_domain_name = Default\n"
    f"key_id = {KEY_ID}\n"
    f"key_id_2 = {KEY_ID}\n"
    "active_root_secret_id = 2\n"
    "startup_retries = 0\n"
    "barbican_timeout = 2\n"
)


def _proxy(keymaster: str) -> str:
    return (
        "[DEFAULT]\n"
        f"swift_dir = {contract.workdir()}\n"
        "bind_port = 8080\n\n"
        "[pipeline:main]\n"
        "pipeline = catch_errors cache keymaster encryption proxy-logging proxy-server\n\n"
        "[app:proxy-server]\nuse = egg:swift#proxy\n\n"
        "[filter:catch_errors]\nuse = egg:swift#catch_errors\n\n"
        "[filter:cache]\nuse = egg:swift#memcache\nmemcache_servers = 127.0.0.1:1\n\n"
        "[filter:proxy-logging]\nuse = egg:swift#proxy_logging\n\n"
        "[filter:encryption]\nuse = egg:swift#encryption\n\n"
        f"[filter:keymaster]\nuse = egg:keytools#keymaster\n{keymaster}"
    )


SEEDS: list[bytes] = [
    b"\x00[kms_keymaster]\n" + KEYMASTER.encode(),
    b"\x01" + _proxy(KEYMASTER).encode(),
    b"\x00[kms_keymaster]\n" + KEYMASTER.replace("startup_retries = 0", "startup_retries = nan").encode(),
    b"\x01" + _proxy(KEYMASTER.replace("password", "application_credential_id = ac\n"
                                       "application_credential_secret")).encode(),
]


def _swift_readconf(path: str, section: str | None) -> dict | None:
    """Swift's own answer for the file, or None where Swift refuses it."""
    try:
        return readconf(path, section)
    except Exception:  # noqa: BLE001 - any refusal; keytools must refuse it too
        return None


def _shown_secret(conf: dict | None) -> bool:
    """Whether the file gives the password's text to a non-secret option's first line."""
    if conf is None:
        return False
    sections = [v for v in conf.values() if isinstance(v, dict)] or [conf]  # every section, or the one
    for options in sections:
        for option, value in options.items():
            if option not in SECRETS and PASSWORD in str(value).split("\n")[0]:
                return True
    return False


def _oracle(path: str, section: str | None) -> dict | None:
    """keytools' reader against Swift's: the same dict, or both refuse (ours with a ConfigError)."""
    theirs = _swift_readconf(path, section)
    try:
        ours = swiftconf.read(path, section)
    except ConfigError as exc:
        assert theirs is None, f"keytools refuses what Swift reads: {exc.one_line()}"
        assert "\n" not in exc.one_line()
        assert PASSWORD not in exc.one_line() or _shown_secret(theirs)
        return None
    assert theirs is not None, "keytools reads what Swift refuses"
    assert ours == theirs, "keytools reads other values than Swift"
    return ours


def _keymaster_start(proxy: str, secrets: tuple[str, ...]) -> None:
    """The filter's start as swift-proxy-server runs it: a keymaster, or one clear refusal."""
    try:
        sections = check.read_proxy_conf(proxy)
    except KeytoolsError:
        return  # swift-proxy-server refuses such a proxy-server.conf before any filter starts
    conf = check.filter_conf(proxy, sections, "keymaster")
    try:
        parsed = settings.parse(conf)
    except KeytoolsError:
        pass
    else:  # retries, backoff and lazy loading are start-up policy, tested in tests/swift
        if parsed.startup_retries or parsed.startup != "strict":
            return
    conf = {k: v for k, v in conf.items() if k != "use"}
    conf.setdefault("log_udp_host", "127.0.0.1")
    try:
        with contract.bounded():
            keymaster.filter_factory({}, **conf)(lambda env, start: [b""])
    except keymaster.KeymasterStartupError as exc:
        message = str(exc)
        assert "\n" not in message, "the refusal is not one line"
        for secret in secrets:
            assert secret not in message, "the keymaster's refusal shows the password"


def fuzz_one(data: bytes) -> None:
    if not data:
        return
    mode, body = data[0] % 2, data[1:]
    if mode == 0:
        keymaster_conf = contract.write("keymaster.conf", body)
        proxy = contract.write("proxy-server.conf", _proxy(f"keymaster_config_path = {keymaster_conf}\n").encode())
        theirs = _swift_readconf(keymaster_conf, "kms_keymaster")
        _oracle(keymaster_conf, "kms_keymaster")
    else:
        proxy = contract.write("proxy-server.conf", body)
        theirs = _swift_readconf(proxy, None)
        _oracle(proxy, None)
    secrets = () if _shown_secret(theirs) else (PASSWORD,)
    contract.run(["swift", "check", proxy], secrets=secrets)
    contract.run(["swift", "check", "-f", "json", proxy], secrets=secrets, json_output=True)
    account = ["--account", "AUTH_fuzz"]
    contract.run(["swift", "key-usage", "--proxy-config", proxy, *account], secrets=secrets)
    contract.run(["swift", "reencrypt", "--proxy-config", proxy, *account, "--from-key-id", "key_id"],
                 secrets=secrets)
    contract.run(["swift", "retire-key", "key_id", "--proxy-config", proxy, *account], secrets=secrets)
    _new_key(proxy, secrets)
    _keymaster_start(proxy, secrets)


def _new_key(proxy: str, secrets: tuple[str, ...]) -> None:
    """new-key's config readers (the rest of new-key talks to Barbican only)."""
    for read in (newkey.existing_secret_ids, newkey.inline_secrets):
        try:
            read(proxy)
        except KeytoolsError as exc:
            assert exc.exit_code == 2, f"new-key's config reader: exit {exc.exit_code}: {exc.one_line()}"
            for secret in secrets:
                assert secret not in exc.one_line(), "new-key shows the password"
