"""Swift's own keymaster test scenarios, run against keytools' keymaster AND Swift's kms_keymaster.

Ported from swift's test/unit/common/middleware/crypto/test_kms_keymaster.py (multiple keys, the
legacy single key_id, bad keys, bad credentials, config file plus filter options) and
test_keymaster.py (malformed multi-key option names, active_root_secret_id, the root secret used
for new data, meta_version_to_write). Upstream mocks castellan; here every key is a real secret in
the sandbox's Barbican, and each scenario runs through both keymasters in-process: the verdict
(loads the same root secrets / refuses) must be the same, and where Swift words a refusal, ours
carries Swift's words.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import uuid

import pytest
from swift_helpers import ProxyProcess, our_keymaster

from keytools.sandbox import processes
from keytools.sandbox import swift as sandbox_swift
from swift_middleware import keymaster, rootsecrets


def _app(env, start_response):
    start_response("200 OK", [])
    return [b""]


def _conf(swift_sandbox, **options) -> dict[str, str]:
    section = sandbox_swift.keymaster_section(swift_sandbox.config, "")
    del section["key_id"]
    conf = {"__file__": "proxy-server.conf", "log_name": "upstream-scenario", "log_udp_host": "127.0.0.1",
            **section,
            "barbican_endpoint": swift_sandbox.url("barbican"), **options}
    return {k: str(v) for k, v in conf.items() if v is not None}


def _swift_kms(conf: dict[str, str]):
    """Swift's own kms_keymaster (castellan, oslo.config), as a proxy would build it."""
    from swift.common.middleware.crypto import kms_keymaster

    return kms_keymaster.filter_factory({}, **conf)(_app)


def _ours(conf: dict[str, str]):
    rootsecrets.forget_all()  # each scenario loads from Barbican, as a fresh proxy does
    return keymaster.filter_factory({}, **{"startup_retries": "0", **conf})(_app)


def _verdict(build, conf):
    try:
        km = build(conf)
    except Exception as exc:  # noqa: BLE001 - the verdict is the point
        return "refused", str(exc)
    return "loaded", (dict(km._root_secrets), km.active_secret_id)


def _both(conf):
    return _verdict(_swift_kms, conf), _verdict(_ours, conf)


@pytest.fixture(scope="module")
def keys(make_secret):
    """Real AES-256 root secrets (Barbican ids and bytes), as upstream's mock keys."""
    made = {}
    for name in ("v", "foo", "bar", "baz", "non_ascii", "22", "my_secret_id"):
        raw = os.urandom(32)
        made[name] = (make_secret(raw), raw)
    return made


def test_multiple_keys_load_the_same_secrets_and_active_id(swift_sandbox, keys):
    """test_kms_keymaster.test_get_root_secret_multiple_keys."""
    conf = _conf(swift_sandbox, key_id=keys["v"][0], key_id_foo=keys["foo"][0], key_id_bar=keys["bar"][0],
                 key_id_baz=keys["baz"][0], key_id_non_ascii=keys["non_ascii"][0],
                 active_root_secret_id="foo")
    theirs, ours = _both(conf)
    expected = ({None: keys["v"][1], "foo": keys["foo"][1], "bar": keys["bar"][1], "baz": keys["baz"][1],
                 "non_ascii": keys["non_ascii"][1]}, "foo")
    assert theirs == ours == ("loaded", expected)


def test_legacy_single_key_id_has_no_active_secret_id(swift_sandbox, keys):
    """test_kms_keymaster.test_get_root_secret_legacy_key_id."""
    theirs, ours = _both(_conf(swift_sandbox, key_id=keys["v"][0]))
    assert theirs == ours == ("loaded", ({None: keys["v"][1]}, None))


@pytest.mark.parametrize("bad_option", ["key_id1", "key_id123", "key_id_", "key_idx"])
def test_malformed_multi_key_option_name_refuses_with_swifts_message(swift_sandbox, keys, bad_option):
    """test_keymaster.test_multiple_root_secrets_with_invalid_id, for key_id*: a typo used to be
    ignored, starting a proxy that cannot read what was written under that key."""
    conf = _conf(swift_sandbox, key_id=keys["v"][0], **{bad_option: keys["foo"][0]})
    (their_verdict, their_msg), (our_verdict, our_msg) = _both(conf)
    assert their_verdict == our_verdict == "refused"
    assert their_msg == f"Malformed multi-key option name {bad_option}"
    assert their_msg in our_msg and our_msg.startswith("keytools keymaster refuses to start:")
    assert keys["foo"][0] not in our_msg.replace(f"{bad_option} ", "")  # names the option


@pytest.mark.parametrize("active", [None, "missing"])
def test_active_root_secret_id_must_name_a_loaded_secret(swift_sandbox, keys, active):
    """test_keymaster.test_multiple_root_secrets_missing_active_root_secret_id."""
    conf = _conf(swift_sandbox, key_id_22=keys["22"][0], active_root_secret_id=active)
    (their_verdict, their_msg), (our_verdict, our_msg) = _both(conf)
    assert their_verdict == our_verdict == "refused"
    assert their_msg == f"No secret loaded for active_root_secret_id {active}"
    assert their_msg in our_msg


def test_correct_root_secret_used_for_new_and_old_data(swift_sandbox, keys):
    """test_keymaster.test_correct_root_secret_used: new data under the active secret, every
    configured secret id offered for reading, each path key = HMAC-SHA256(that secret, path)."""
    from swift.common.middleware.crypto.crypto_utils import CRYPTO_KEY_CALLBACK
    from swift.common.swob import Request

    secrets = {None: keys["v"], "22": keys["22"], "my_secret_id": keys["my_secret_id"]}
    for active in (None, "22", "my_secret_id"):
        options = {("key_id_" + sid if sid else "key_id"): ref for sid, (ref, _) in secrets.items()}
        conf = _conf(swift_sandbox, **options, active_root_secret_id=active)
        seen = {}

        def app(env, start_response, seen=seen):
            seen["keys"] = env[CRYPTO_KEY_CALLBACK]()
            start_response("200 OK", [])
            return [b""]

        for build in (_swift_kms, _ours):
            km = build(conf)
            km.app = app
            Request.blank("/v1/a/c/o", method="PUT").get_response(km)
            raw = secrets[active][1]
            assert seen["keys"]["object"] == hmac.new(raw, b"/a/c/o", hashlib.sha256).digest()
            assert seen["keys"]["container"] == hmac.new(raw, b"/a/c", hashlib.sha256).digest()
            assert seen["keys"]["id"].get("secret_id") == active
            assert sorted(i.get("secret_id") or "" for i in seen["keys"]["all_ids"]) == \
                ["", "22", "my_secret_id"]


@pytest.mark.parametrize("variant", ["des", "short", "opaque", "nonexistent", "not-a-uuid", "no-acl"])
def test_unusable_keys_refuse_in_both(swift_sandbox, make_secret, variant):
    """test_kms_keymaster: invalid_key_algorithm, invalid_key_length, invalid_key_format,
    nonexistent_key_id, invalid_key_id (plus a secret the keymaster user may not read)."""
    raw = os.urandom(32)
    key_id = {"des": lambda: make_secret(os.urandom(24), algorithm="des", bits=192),
              "short": lambda: make_secret(os.urandom(16), bits=128),
              "opaque": lambda: make_secret(raw, secret_type="opaque"),
              "nonexistent": lambda: str(uuid.uuid4()),
              "not-a-uuid": lambda: "invalid-kms-key-id",
              "no-acl": lambda: make_secret(raw, acl=False)}[variant]()
    (theirs, _), (ours, message) = _both(_conf(swift_sandbox, key_id=key_id))
    assert theirs == ours == "refused"
    assert f"key_id = {key_id}" in message or f"key_id = '{key_id}'" in message
    assert raw.hex() not in message and base64.b64encode(raw).decode() not in message


def test_base64_text_payload_is_the_one_deliberate_difference(swift_sandbox, make_secret):
    """kms_keymaster loads a base64 string stored as the payload as a 44-byte 'key' (objects then
    depend on that text); keytools refuses it (docs/swift.md)."""
    raw = os.urandom(32)
    key_id = make_secret(base64.b64encode(raw).decode(), payload_content_type="text/plain")
    (theirs, detail), (ours, message) = _both(_conf(swift_sandbox, key_id=key_id))
    assert theirs == "loaded" and len(detail[0][None]) == 44
    assert ours == "refused" and "not raw key bytes" in message


@pytest.mark.parametrize("options", [
    {"username": "no-such-user"}, {"password": "wrong-password"},
    {"user_domain_name": "baduserdomainname"},
    {"auth_endpoint": "http://127.0.0.1:{closed}/v3"},
])
def test_bad_credentials_or_keystone_refuse_in_both(swift_sandbox, keys, options):
    """test_kms_keymaster: invalid_username, invalid_password, bad_user_domain_name,
    connect_failure_auth_url."""
    closed = processes.free_ports(1)[0]
    options = {k: v.format(closed=closed) for k, v in options.items()}
    (theirs, _), (ours, message) = _both(_conf(swift_sandbox, key_id=keys["v"][0], **options))
    assert theirs == ours == "refused"
    assert "wrong-password" not in message and swift_sandbox.password("swift") not in message


@pytest.mark.parametrize("option", ["key_id", "key_id_1", "key_id_", "password", "active_root_secret_id"])
def test_config_file_and_filter_options_refuse_with_swifts_message(swift_sandbox, keys, tmp_path, option):
    """test_kms_keymaster.test_mocked_castellan_keymanager_config_file_and_params and
    test_keymaster.test_can_only_configure_secret_in_one_place."""
    path = tmp_path / "keymaster.conf"
    section = _conf(swift_sandbox, key_id=keys["v"][0])
    path.write_text("[kms_keymaster]\n" + "".join(f"{k} = {v}\n" for k, v in section.items()
                                                  if not k.startswith("__")))
    path.chmod(0o600)
    conf = {"__file__": "proxy-server.conf", "log_udp_host": "127.0.0.1",
            "keymaster_config_path": str(path), option: "x"}
    (their_verdict, their_msg), (our_verdict, our_msg) = _both(conf)
    expected = "keymaster_config_path is set, but there are other config options specified:"
    assert their_verdict == our_verdict == "refused"
    assert their_msg.startswith(expected) and f"{expected} {option}" in our_msg
    del conf[option]
    assert _both(conf)[0] == _both(conf)[1] == ("loaded", ({None: keys["v"][1]}, None))


@pytest.mark.parametrize("version, verdict", [("1", "loaded"), ("3", "loaded"), ("4", "refused")])
def test_meta_version_to_write(swift_sandbox, keys, version, verdict):
    """test_keymaster: an unknown meta_version_to_write refuses to start (Swift's words)."""
    (theirs, their_detail), (ours, our_detail) = _both(
        _conf(swift_sandbox, key_id=keys["v"][0], meta_version_to_write=version))
    assert theirs == ours == verdict
    if verdict == "refused":
        assert "Unknown/unsupported metadata version" in their_detail
        assert "Unknown/unsupported metadata version" in our_detail


def test_real_proxy_with_a_malformed_key_option_exits_with_swifts_line(swift_sandbox, root_secret,
                                                                      swift_workdir):
    proxy = ProxyProcess(swift_sandbox.state, swift_sandbox.config, swift_workdir, "proxy-malformed",
                         our_keymaster(swift_sandbox.config, swift_sandbox.url("barbican"),
                                       key_id=root_secret[0], key_id2=root_secret[0]))
    assert proxy.wait_exit() != 0
    out = proxy.output()
    assert "keytools keymaster refuses to start:" in out
    assert "Malformed multi-key option name key_id2" in out and "Traceback" not in out
