"""The sandbox's real Swift proxy (keystone auth, keytools keymaster, keys in Barbican):
objects and metadata round-trip, and what lands on disk is ciphertext."""

from __future__ import annotations

import json
import os
import uuid

import requests
from swift_helpers import object_on_disk

from swift_middleware import rootsecrets


def _endpoint(swift_sandbox):
    session = swift_sandbox.session("demo")
    url = session.get_endpoint(service_type="object-store", interface="public")
    return url, {"X-Auth-Token": session.get_token()}


def test_put_get_metadata_round_trip_and_ciphertext_on_disk(swift_sandbox):
    url, auth = _endpoint(swift_sandbox)
    container, obj = f"c-{uuid.uuid4().hex[:8]}", "dir/hello world.txt"
    marker = b"PLAINTEXT-MARKER-" + uuid.uuid4().hex.encode()
    body = marker * 2000 + os.urandom(4096)
    assert requests.put(f"{url}/{container}", headers=auth).status_code == 201
    resp = requests.put(f"{url}/{container}/{obj}", data=body,
                        headers={**auth, "X-Object-Meta-Colour": "secret-meta-value", "Content-Type": "text/plain"})
    assert resp.status_code == 201

    got = requests.get(f"{url}/{container}/{obj}", headers=auth)
    assert got.status_code == 200
    assert got.content == body
    assert got.headers["X-Object-Meta-Colour"] == "secret-meta-value"
    head = requests.head(f"{url}/{container}/{obj}", headers=auth)
    assert head.headers["X-Object-Meta-Colour"] == "secret-meta-value"
    listing = requests.get(f"{url}/{container}?format=json", headers=auth).json()
    assert [(o["name"], o["bytes"]) for o in listing] == [(obj, len(body))]

    account = url.rstrip("/").rsplit("/", 1)[-1]
    data, metadata = object_on_disk(swift_sandbox.state, account, container, obj)
    assert len(data) == len(body)
    assert marker not in data and data != body
    assert "secret-meta-value" not in json.dumps({str(k): str(v) for k, v in metadata.items()})
    assert any("Crypto-Body-Meta" in str(k) for k in metadata)


def test_sandbox_proxy_logged_key_id_and_fingerprint_never_the_key(swift_sandbox, root_secret):
    key_id, secret = root_secret
    log = swift_sandbox.state.path("logs", "swift.log").read_text(errors="replace")
    assert f"key_id = {key_id}" in log
    assert rootsecrets.fingerprint(secret) in log
    for form in (secret.hex(), secret.hex().upper(), __import__("base64").b64encode(secret).decode(),
                 swift_sandbox.password("swift")):
        assert form not in log
    # Loaded once although Swift loads the pipeline twice at start (validate, then serve).
    assert log.count("loaded root secret") == 1
