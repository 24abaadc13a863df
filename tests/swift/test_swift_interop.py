"""Drop-in compatibility with Swift's own keymaster, compared by content (a wrong key answers 200
with garbage), two-stage rotation, and no Barbican request per object request.

Three extra proxies share the sandbox's storage servers: S (Swift's plain keymaster with an inline
secret), O (keytools' keymaster with that secret moved to Barbican by ``new-key
--migrate-from-inline``) and R (O after rotation: key_id + key_id_2, active 2).
"""

from __future__ import annotations

import json
import os

import pytest
import requests
from swift_helpers import ProxyProcess, object_on_disk, our_keymaster, swift_keymaster

from keytools.sandbox import swift as sandbox_swift
from swift_middleware import newkey, rootsecrets

ACCOUNT = "AUTH_interop"


@pytest.fixture(scope="module")
def interop(swift_sandbox, admin_session, barbican_counter, swift_workdir, proxies):
    state, cfg = swift_sandbox.state, swift_sandbox.config
    inline = os.urandom(32)
    swift_proxy = ProxyProcess(state, cfg, swift_workdir, "proxy-swift-km", swift_keymaster(inline))
    proxies.append(swift_proxy)
    found, _active, _name = newkey.inline_secrets(str(swift_proxy.conf))
    (migrated,) = newkey.store_inline(admin_session, found, "swift-inline-test", ["swift"])
    ours = ProxyProcess(state, cfg, swift_workdir, "proxy-ours", our_keymaster(
        cfg, barbican_counter.url, key_id=migrated.key_id, startup_retries=1, startup_backoff=0.1))
    proxies.append(ours)
    # Swift's kms_keymaster with the very same options (the one-line switch, the other way round).
    kms = ProxyProcess(state, cfg, swift_workdir, "proxy-kms", {
        "use": "egg:swift#kms_keymaster", **sandbox_swift.keymaster_section(cfg, migrated.key_id),
        "barbican_endpoint": swift_sandbox.url("barbican")})
    proxies.append(kms)
    for proxy in (swift_proxy, ours, kms):
        proxy.wait_ready()
    requests.put(f"{swift_proxy.url}/v1/{ACCOUNT}/shared").raise_for_status()
    return {"swift": swift_proxy, "ours": ours, "kms": kms, "inline": inline, "key": migrated}


def _put(proxy, name: str, body: bytes, colour: str) -> None:
    resp = requests.put(f"{proxy.url}/v1/{ACCOUNT}/shared/{name}", data=body,
                        headers={"X-Object-Meta-Colour": colour})
    assert resp.status_code == 201, resp.text


def _get(proxy, name: str) -> requests.Response:
    return requests.get(f"{proxy.url}/v1/{ACCOUNT}/shared/{name}")


def test_migrate_from_inline_keeps_the_bytes_and_reruns_converge(kt, interop):
    result = kt("--os-cloud", "sandbox-admin", "swift", "new-key", "--migrate-from-inline",
                "--proxy-conf", str(interop["swift"].conf), "--name", "swift-inline-test", "-f", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    (key,) = doc["keys"]
    assert key["reused"] is True and key["key_id"] == interop["key"].key_id
    assert key["fingerprint"] == rootsecrets.fingerprint(interop["inline"])
    assert "use = egg:keytools#keymaster" in doc["config_lines"]
    assert f"key_id = {key['key_id']}" in doc["config_lines"]
    assert __import__("base64").b64encode(interop["inline"]).decode() not in result.output


def test_objects_cross_read_between_swift_keymasters_and_ours_byte_for_byte(interop):
    swift_proxy, ours, kms = interop["swift"], interop["ours"], interop["kms"]
    body_a, body_b = os.urandom(300_000), os.urandom(70_001)
    _put(swift_proxy, "from-swift", body_a, "red")
    _put(ours, "from-ours", body_b, "green")
    for proxy in (swift_proxy, ours, kms):
        a, b = _get(proxy, "from-swift"), _get(proxy, "from-ours")
        assert a.status_code == b.status_code == 200
        assert a.content == body_a and a.headers["X-Object-Meta-Colour"] == "red"
        assert b.content == body_b and b.headers["X-Object-Meta-Colour"] == "green"
    listing = requests.get(f"{ours.url}/v1/{ACCOUNT}/shared?format=json").json()
    assert {o["name"] for o in listing} >= {"from-swift", "from-ours"}


def test_no_barbican_request_per_object_request(interop, barbican_counter):
    ours = interop["ours"]
    at_start = barbican_counter.count
    assert at_start > 0, "the keymaster must have fetched its key through the counter"
    for i in range(15):
        body = os.urandom(2048)
        _put(ours, f"count-{i}", body, "x")
        assert _get(ours, f"count-{i}").content == body
        requests.head(f"{ours.url}/v1/{ACCOUNT}/shared/count-{i}")
    assert barbican_counter.count == at_start


def _crypto_key_id(state, name: str) -> dict:
    from swift.common.middleware.crypto.crypto_utils import load_crypto_meta

    _data, metadata = object_on_disk(state, ACCOUNT, "shared", name)
    meta = next(v for k, v in metadata.items() if str(k).endswith("Crypto-Body-Meta"))
    return load_crypto_meta(meta if isinstance(meta, str) else meta.decode())["key_id"]


def test_two_stage_rotation_keeps_old_objects_readable(kt, swift_sandbox, interop, barbican_counter,
                                                       swift_workdir, proxies):
    state, cfg = swift_sandbox.state, swift_sandbox.config
    ours = interop["ours"]
    old_body = os.urandom(50_000)
    _put(ours, "before-rotation", old_body, "old")

    result = kt("--os-cloud", "sandbox-admin", "swift", "new-key", "--proxy-conf", str(ours.conf),
                "--acl-user", "swift", "-f", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    (new,) = doc["keys"]
    assert new["option"] == "key_id_2" and new["bit_length"] == 256
    assert "active_root_secret_id = 2" in doc["config_lines"]

    rotated = ProxyProcess(state, cfg, swift_workdir, "proxy-rotated", our_keymaster(
        cfg, barbican_counter.url, key_id=interop["key"].key_id, key_id_2=new["key_id"],
        active_root_secret_id="2", startup_retries=1, startup_backoff=0.1))
    proxies.append(rotated)
    rotated.wait_ready()
    got = _get(rotated, "before-rotation")
    assert got.status_code == 200 and got.content == old_body

    new_body = os.urandom(40_000)
    _put(rotated, "after-rotation", new_body, "new")
    assert _get(rotated, "after-rotation").content == new_body
    assert _crypto_key_id(state, "after-rotation").get("secret_id") == "2"
    assert "secret_id" not in _crypto_key_id(state, "before-rotation")
    # A proxy still on stage 0 cannot decrypt the new object: it fails, it does not serve garbage.
    stale = _get(ours, "after-rotation")
    assert stale.status_code != 200 or stale.content != new_body
    assert stale.status_code >= 500
