"""The Barbican certificate check runs beside the hash: a failing check stops the hash at the next
chunk and is the error reported; nothing is printed or written. Library tests synchronise the
check with the hash through events (no timing); CLI tests use the sandbox's real Barbican."""

from __future__ import annotations

import json
import os
import threading

import pytest

from keytools import image_signature as sig
from keytools.image_signature import hashing
from keytools import overlap
from keytools.errors import CertificateError
from sign import certs, signer
from tests.sign_verify import sign_verify_helpers as h
from verify import verifier

CHUNKS = 12


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    path = tmp_path_factory.mktemp("overlap") / "image.raw"
    path.write_bytes(os.urandom(CHUNKS * sig.CHUNK_SIZE))
    return path


def _failing_after_first_chunk():
    """(progress callback, check fn): the check fails once the hash has seen a chunk, and the
    progress callback waits until the failure is visible, so the hash must stop right there."""
    first_chunk, seen = threading.Event(), []
    holder: dict[str, overlap.Check] = {}

    def progress(n: int) -> None:
        seen.append(n)
        first_chunk.set()
        assert holder["check"].failed.wait(30)

    def check_fn():
        assert first_chunk.wait(30)
        raise CertificateError("certificate 1234 expired on 2020-01-01 00:00:00 UTC")

    return progress, check_fn, seen, holder


@pytest.mark.parametrize("read_ahead", [False, True])
def test_sign_hash_stops_when_the_certificate_check_fails(image, read_ahead, monkeypatch):
    monkeypatch.setattr(hashing, "read_ahead_pays", lambda: read_ahead)
    progress, check_fn, seen, holder = _failing_after_first_chunk()
    holder["check"] = check = overlap.Check(check_fn)
    with pytest.raises(CertificateError, match="expired on"):
        signer.sign_file(image, h.rsa_key(2048), "1234", progress=progress, check=check)
    assert sum(seen) == sig.CHUNK_SIZE < image.stat().st_size  # one chunk hashed, not twelve


def test_verify_hash_stops_when_the_certificate_check_fails(image):
    key = h.rsa_key(2048)
    signed = signer.sign_file(image, key, "6a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d")
    progress, check_fn, seen, holder = _failing_after_first_chunk()
    pending = verifier.Pending(verifier.parse(signed.properties), overlap.Check(check_fn))
    holder["check"] = pending.check
    with pytest.raises(CertificateError, match="expired on"):
        verifier.verify_file(image, pending, progress)
    assert sum(seen) == sig.CHUNK_SIZE
    # and a check that passes gives the same verdict as the one done before hashing
    cert = h.cert_for(key)
    ready = verifier.start(verifier.parse(signed.properties), lambda _u: cert)
    assert verifier.verify_file(image, ready)["signature_valid"] is True


def test_check_result_and_errors_cross_threads():
    assert overlap.Check(lambda: 42).result() == 42
    assert overlap.Check(lambda: 7, background=False).result() == 7
    with pytest.raises(ValueError, match="boom"):
        overlap.Check(lambda: (_ for _ in ()).throw(ValueError("boom")), background=False)
    failing = overlap.Check(lambda: (_ for _ in ()).throw(KeyError("x")))
    with pytest.raises(KeyError):
        failing.result()
    assert failing.failed.is_set()


# ---- whole commands against the sandbox's Barbican ----

@pytest.fixture(scope="module")
def stored(sandbox, tmp_path_factory):
    from tests.helpers.cli import invoke

    tmp = tmp_path_factory.mktemp("overlap-cli")
    env = {"OS_CLIENT_CONFIG_FILE": str(sandbox.clouds_yaml)}
    assert invoke(["cert", "create", "--out", tmp, "--bits", "2048"], env=env).exit_code == 0
    res = invoke(["--os-cloud", "sandbox-demo", "cert", "store", tmp / certs.CERT_FILE], env=env)
    assert res.exit_code == 0, res.output
    image = tmp / "image.raw"
    image.write_bytes(os.urandom(3 * sig.CHUNK_SIZE + 5))
    return {"tmp": tmp, "key": tmp / certs.KEY_FILE, "uuid": res.stdout.strip(), "image": image}


def test_sign_and_verify_with_the_barbican_certificate(kt, stored, tmp_path):
    out = tmp_path / "image.sig"
    res = kt("--os-cloud", "sandbox-demo", "sign", stored["image"], "--key", stored["key"], "--cert-uuid",
             stored["uuid"], "--signature-file", out, "-f", "json")
    assert res.exit_code == 0, res.output
    props = json.loads(res.stdout)["properties"]
    assert sig.encode_signature(out.read_bytes()) == props[sig.SIGNATURE]
    res = kt("--os-cloud", "sandbox-demo", "verify", stored["image"], "--properties", json.dumps(props),
             "-f", "json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["verdict"] == "valid" and doc["certificate_uuid"] == stored["uuid"]
    assert doc["certificate_subject"].startswith("CN=")  # recorded once the check finished


@pytest.mark.parametrize("case, code, words", [
    ("other_key", 3, "does not match"),
    ("unknown_cert", 3, "certificate not found in Barbican"),
    ("keystone_down", 4, "cannot reach"),
])
def test_failing_barbican_check_writes_nothing(kt, sandbox, stored, tmp_path, case, code, words):
    key, uuid, env = stored["key"], stored["uuid"], None
    if case == "other_key":
        key = h.write_key(tmp_path / "other.key", h.rsa_key(2048, which=3))
    elif case == "unknown_cert":
        uuid = "0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e"
    else:
        from keytools.sandbox import processes

        dead = f"http://127.0.0.1:{processes.free_ports(1)[0]}/v3"
        clouds = tmp_path / "clouds.yaml"
        clouds.write_text(sandbox.clouds_yaml.read_text().replace(sandbox.keystone_url, dead))
        env = {"OS_CLIENT_CONFIG_FILE": str(clouds)}
    out = tmp_path / "image.sig"
    res = kt("--os-cloud", "sandbox-demo", "sign", stored["image"], "--key", key, "--cert-uuid", uuid,
             "--signature-file", out, env=env)
    assert res.exit_code == code, res.output
    last = res.stderr.strip().splitlines()[-1]  # (barbicanclient logs its own ERROR line for a 404)
    assert last.startswith("keytools: error: ") and words in last and "Traceback" not in res.output
    assert res.stdout == "" and not out.exists() and list(tmp_path.glob("*.sig*")) == []


def test_the_barbican_round_trips_run_in_a_forked_process(sandbox, stored, monkeypatch, tmp_path):
    """The session (imports, Keystone) and the Barbican reads run in a child of their own, so
    their Python work does not take the GIL from the hash (keytools.overlap.forked)."""
    from keytools import auth
    from sign.api import sign_image
    from verify.api import verify_image

    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(sandbox.clouds_yaml))
    made_in = tmp_path / "pids"

    def session():
        with open(made_in, "a") as handle:
            handle.write(f"{os.getpid()}\n")
        return auth.session_from_cloud("sandbox-demo")

    signed = sign_image(stored["image"], str(stored["key"]), stored["uuid"], session=session)
    result = verify_image(signed.properties, image=stored["image"], session=session)
    assert result.verdict == "valid" and result.certificate_uuid == stored["uuid"]
    pids = [int(p) for p in made_in.read_text().split()]
    assert len(pids) == 2 and os.getpid() not in pids


def test_debug_shows_where_the_forked_check_failed(kt, stored, tmp_path):
    args = ["--os-cloud", "sandbox-demo", "sign", stored["image"], "--key", stored["key"], "--cert-uuid",
            "0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e", "--signature-file", tmp_path / "image.sig"]
    plain = kt(*args)
    assert plain.exit_code == 3 and "Traceback" not in plain.output
    debug = kt("--debug", *args)
    assert debug.exit_code == 3 and "in the forked check process" in debug.stderr
    assert "fetch_certificate_pem" in debug.stderr  # the child's own frames, not only ours
    assert not (tmp_path / "image.sig").exists()
