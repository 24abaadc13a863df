"""Every way the keymaster refuses to start, and ``startup = lazy`` (503 until the keys load).

The refusal matrix runs the paste filter factory in-process against the real Keystone and
Barbican (fast); real swift-proxy-server processes show what an operator sees: one line, exit 1,
no traceback; and the lazy proxy answering 503 until Barbican appears on its port.
"""

from __future__ import annotations

import base64
import os
import time
import uuid

import pytest
import requests
from swift_helpers import ProxyProcess, our_keymaster

from keytools.sandbox import processes
from swift_middleware import keymaster, rootsecrets
from tests.helpers.fault_proxy import FaultProxy


def _app(env, start_response):  # the rest of the pipeline, never reached in these tests
    start_response("200 OK", [])
    return [b""]


def _load(cfg, barbican_url: str, **options):
    conf = {"__file__": "proxy-server.conf", "log_name": "test-keymaster", "log_udp_host": "127.0.0.1",
            **our_keymaster(cfg, barbican_url, **{"startup_retries": 0, **options})}
    conf.pop("use")
    return keymaster.filter_factory({}, **{k: str(v) for k, v in conf.items()})(_app)


def _bad_keys(make_secret):
    raw = os.urandom(32)
    return {
        "aes-128": (make_secret(os.urandom(16), bits=128), "AES with 128 bits", raw),
        "not-aes": (make_secret(raw, algorithm="hmacsha256"), "must be AES", raw),
        "opaque": (make_secret(raw, secret_type="opaque"), "not a symmetric key", raw),
        "base64-text": (make_secret(base64.b64encode(raw).decode(), payload_content_type="text/plain"),
                        "not raw key bytes", raw),
        "missing": (str(uuid.uuid4()), "Barbican has no such secret", raw),
        "no-read-access": (make_secret(raw, acl=False), "refused to return the secret", raw),
    }


def test_every_unusable_key_refuses_to_start_naming_the_key_never_the_bytes(swift_sandbox, make_secret):
    cfg = swift_sandbox.config
    for case, (key_id, expected, raw) in _bad_keys(make_secret).items():
        with pytest.raises(keymaster.KeymasterStartupError) as info:
            _load(cfg, swift_sandbox.url("barbican"), key_id=key_id)
        message = str(info.value)
        assert expected in message, (case, message)
        assert f"key_id = {key_id}" in message, case
        assert message.startswith("keytools keymaster refuses to start:")
        for form in (raw.hex(), base64.b64encode(raw).decode(), swift_sandbox.password("swift")):
            assert form not in message


@pytest.mark.parametrize("options, expected", [
    ({"password": "wrong-password"}, "Keystone refused the keymaster credentials"),
    ({"active_root_secret_id": "9"}, "No secret loaded for active_root_secret_id 9: there is no key_id_9"),
    ({"key_id": "not-a-uuid"}, "key_id = 'not-a-uuid' is not a Barbican secret id"),
    ({"key_id": ""}, "no key_id is set"),
    ({"startup": "sometimes"}, "startup = sometimes is not one of strict, lazy"),
    ({"startup_retries": "-1"}, "startup_retries = -1 is not a number >= 0"),
    ({"api_class": "castellan.key_manager.vault_key_manager.VaultKeyManager"}, "reads Barbican only"),
    ({"keymaster_config_path": "/nonexistent/keymaster.conf", "key_id": ""},
     "there are other config options specified: auth_endpoint"),
])
def test_bad_configuration_refuses_to_start(swift_sandbox, root_secret, options, expected):
    options = {"key_id": root_secret[0], **options}
    with pytest.raises(keymaster.KeymasterStartupError) as info:
        _load(swift_sandbox.config, swift_sandbox.url("barbican"), **options)
    assert expected in str(info.value)
    assert "wrong-password" not in str(info.value)


def test_keymaster_config_path_missing_or_without_section(swift_sandbox, tmp_path):
    conf = {"__file__": "proxy-server.conf", "log_name": "t", "log_udp_host": "127.0.0.1"}
    with pytest.raises(keymaster.KeymasterStartupError, match="keymaster_config_path .*missing.conf"):
        keymaster.filter_factory({}, **conf, keymaster_config_path=str(tmp_path / "missing.conf"))(_app)
    other = tmp_path / "other.conf"
    other.write_text("[keymaster]\nkey_id = x\n")
    with pytest.raises(keymaster.KeymasterStartupError, match="kms_keymaster"):
        keymaster.filter_factory({}, **conf, keymaster_config_path=str(other))(_app)


def test_separate_keymaster_file_loads_and_the_key_serves(swift_sandbox, root_secret, tmp_path):
    section = our_keymaster(swift_sandbox.config, swift_sandbox.url("barbican"), key_id=root_secret[0])
    section.pop("use")
    path = tmp_path / "keymaster.conf"
    path.write_text("[kms_keymaster]\n" + "".join(f"{k} = {v}\n" for k, v in section.items()))
    path.chmod(0o600)
    km = keymaster.filter_factory({"log_udp_host": "127.0.0.1"}, keymaster_config_path=str(path))(_app)
    assert isinstance(km, keymaster.BarbicanKeyMaster)
    assert km.root_secret == root_secret[1]
    assert km.create_key("/a/c/o") == __import__("hmac").new(root_secret[1], b"/a/c/o", "sha256").digest()


def test_real_proxy_barbican_unreachable_retries_then_refuses(swift_sandbox, root_secret, swift_workdir):
    closed = f"http://127.0.0.1:{processes.free_ports(1)[0]}"
    proxy = ProxyProcess(swift_sandbox.state, swift_sandbox.config, swift_workdir, "proxy-unreachable",
                         our_keymaster(swift_sandbox.config, closed, key_id=root_secret[0],
                                       startup_retries=2, startup_backoff=0.05))
    assert proxy.wait_exit() != 0
    out = proxy.output()
    assert "attempt 1 of 3" in out and "attempt 2 of 3" in out
    assert "keytools keymaster refuses to start: cannot load key_id" in out
    assert "Traceback" not in out


def test_real_proxy_with_a_weak_key_exits_with_one_line(swift_sandbox, make_secret, swift_workdir):
    raw = os.urandom(16)
    key_id = make_secret(raw, bits=128)
    proxy = ProxyProcess(swift_sandbox.state, swift_sandbox.config, swift_workdir, "proxy-weak",
                         our_keymaster(swift_sandbox.config, swift_sandbox.url("barbican"), key_id=key_id))
    assert proxy.wait_exit() != 0
    out = proxy.output()
    assert f"key_id = {key_id} is AES with 128 bits" in out
    assert "Traceback" not in out and raw.hex() not in out


def test_lazy_startup_answers_503_until_barbican_appears(swift_sandbox, root_secret, swift_workdir, proxies):
    port = processes.free_ports(1)[0]
    proxy = ProxyProcess(swift_sandbox.state, swift_sandbox.config, swift_workdir, "proxy-lazy",
                         our_keymaster(swift_sandbox.config, f"http://127.0.0.1:{port}",
                                       key_id=root_secret[0], startup="lazy", startup_retries=0,
                                       startup_backoff=0.2, startup_backoff_max=0.5))
    proxies.append(proxy)
    proxy.wait_ready()  # it serves (healthcheck) although Barbican is not reachable
    base = f"{proxy.url}/v1/AUTH_lazy"
    assert requests.put(f"{base}/c").status_code == 503
    put = requests.put(f"{base}/c/o", data=b"must not be stored unencrypted")
    assert put.status_code == 503 and put.headers.get("Retry-After")
    assert requests.get(f"{base}/c/o").status_code == 503
    assert requests.get(f"{proxy.url}/info").status_code == 200

    forwarder = FaultProxy(swift_sandbox.url("barbican"), port=port)
    try:
        # a hang guard, not a speed test: under load each Keystone request may take its whole
        # 10 s barbican_timeout, and the loader retries after each
        deadline = time.monotonic() + 240
        while requests.put(f"{base}/c").status_code == 503:
            assert time.monotonic() < deadline, proxy.output()[-2000:]
            time.sleep(0.2)
        assert requests.get(f"{base}/c/o").status_code == 404  # the refused PUT stored nothing
        body = os.urandom(10_000)
        assert requests.put(f"{base}/c/o", data=body).status_code == 201
        assert requests.get(f"{base}/c/o").content == body
        loaded_after = forwarder.count
        for _ in range(5):
            requests.get(f"{base}/c/o")
        assert forwarder.count == loaded_after
    finally:
        forwarder.close()
    out = proxy.output()
    assert "startup = lazy" in out and "root secrets loaded" in out
    assert rootsecrets.fingerprint(root_secret[1]) in out


def test_application_credentials_load_the_keys(swift_sandbox, root_secret):
    from keystoneclient.v3 import client as ks_client

    swift_session = swift_sandbox.session("swift")
    keystone = ks_client.Client(session=swift_session, interface="public")
    user_id = swift_session.get_user_id()
    cred = keystone.application_credentials.create(name=f"keymaster-{uuid.uuid4().hex[:8]}", user=user_id)
    options = {k: v for k, v in our_keymaster(swift_sandbox.config, swift_sandbox.url("barbican")).items()
               if k not in ("use", "username", "password", "project_name", "user_domain_name",
                            "project_domain_name")}
    conf = {**options, "application_credential_id": cred.id, "application_credential_secret": cred.secret,
            "key_id": root_secret[0], "log_udp_host": "127.0.0.1"}
    km = keymaster.filter_factory({}, **conf)(_app)
    assert km.root_secret == root_secret[1]
    conf["application_credential_secret"] = "wrong-secret"
    with pytest.raises(keymaster.KeymasterStartupError, match="Keystone refused"):
        keymaster.filter_factory({}, **conf)(_app)


def test_forked_workers_inherit_the_keys_and_lazy_workers_each_load(swift_sandbox, root_secret,
                                                                     swift_workdir, proxies):
    """workers = 2: strict loads once before forking (no Barbican request per worker); lazy
    workers start their own loader after the fork and all end up serving."""
    single = FaultProxy(swift_sandbox.url("barbican"))
    forked = FaultProxy(swift_sandbox.url("barbican"))
    try:
        one = ProxyProcess(swift_sandbox.state, swift_sandbox.config, swift_workdir, "proxy-1-worker",
                           our_keymaster(swift_sandbox.config, single.url, key_id=root_secret[0]))
        two = ProxyProcess(swift_sandbox.state, swift_sandbox.config, swift_workdir, "proxy-2-workers",
                           our_keymaster(swift_sandbox.config, forked.url, key_id=root_secret[0]), workers=2)
        proxies.extend([one, two])
        one.wait_ready()
        two.wait_ready()
        base = f"{two.url}/v1/AUTH_workers"
        assert requests.put(f"{base}/c").status_code == 201
        for i in range(6):  # connections spread over both workers
            assert requests.put(f"{base}/c/o{i}", data=b"x" * 100, headers={"Connection": "close"}).status_code == 201
        assert forked.count == single.count > 0
    finally:
        single.close()
        forked.close()

    port = processes.free_ports(1)[0]
    lazy = ProxyProcess(swift_sandbox.state, swift_sandbox.config, swift_workdir, "proxy-lazy-2-workers",
                        our_keymaster(swift_sandbox.config, f"http://127.0.0.1:{port}", key_id=root_secret[0],
                                      startup="lazy", startup_retries=0, startup_backoff=0.2,
                                      startup_backoff_max=0.5), workers=2)
    proxies.append(lazy)
    lazy.wait_ready()
    base = f"{lazy.url}/v1/AUTH_workers"
    assert requests.get(f"{base}/c/o0").status_code == 503
    late = FaultProxy(swift_sandbox.url("barbican"), port=port)
    try:
        deadline, served = time.monotonic() + 60, 0
        while served < 10:  # ten in a row: every worker has its keys
            assert time.monotonic() < deadline, lazy.output()[-2000:]
            status = requests.get(f"{base}/c/o0", headers={"Connection": "close"}).status_code
            served = served + 1 if status == 200 else 0
            if status == 503:
                time.sleep(0.1)
        # each worker loads (the parent too: workers it re-forks later inherit the keys)
        assert lazy.output().count("root secrets loaded; serving") >= 2
    finally:
        late.close()


def test_the_lazy_loader_survives_an_unexpected_error(monkeypatch):
    """A loader thread that died on an error nobody foresaw would leave the proxy answering 503
    forever; it logs the error's type (never its text: it may hold a secret) and retries."""
    from swift_middleware import settings as km_settings

    conf = {"key_id": str(uuid.uuid4()), "auth_endpoint": "http://127.0.0.1:1/v3", "username": "swift",
            "password": "pw", "project_name": "service", "startup": "lazy", "startup_backoff": "0.1",
            "startup_backoff_max": "0.1"}
    loaded = rootsecrets.RootSecrets({None: b"k" * 32}, ())
    calls: list[int] = []

    def fetch(_settings):
        calls.append(1)
        if len(calls) == 1:
            raise AttributeError("'NoneType' object has no attribute 'secret_ref'")
        return loaded

    monkeypatch.setattr(rootsecrets, "fetch", fetch)
    monkeypatch.setattr(rootsecrets, "remember", lambda *_a: None)
    monkeypatch.setattr(rootsecrets, "log_loaded", lambda *_a: None)
    lines: list[str] = []

    class Logger:
        def warning(self, msg, *args):
            lines.append(msg % args)

        error = info = warning

    loader = keymaster.BackgroundLoader(km_settings.parse(conf), Logger())
    loader.ensure_running()
    for _ in range(600):
        if loader.result is not None:
            break
        time.sleep(0.05)
    assert loader.result is loaded and len(calls) == 2
    assert any("unexpected AttributeError" in line for line in lines)
    assert not any("secret_ref" in line for line in lines)
