"""verify, offline (--cert FILE): every bad input gives its one-line cause and documented exit code."""

from __future__ import annotations

import base64
import json
import os

import pytest

from keytools import image_signature as sig
from tests.helpers.cli import invoke
from tests.sign_verify import sign_verify_helpers as h

CERT_UUID = "2c1f7a6e-3b4d-4e5f-8a9b-0c1d2e3f4a5b"


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("verify")
    key = h.rsa_key(3072)
    key_path = h.write_key(tmp / "k.pem", key)
    cert = h.write_cert(tmp / "c.pem", h.cert_for(key))
    image = tmp / "img"
    image.write_bytes(os.urandom(500_000))
    res = invoke(["sign", image, "--key", key_path, "--cert-uuid", CERT_UUID, "--cert", cert, "--offline", "-f", "json"])
    assert res.exit_code == 0, res.output
    return {"tmp": tmp, "key": key, "cert": cert, "image": image, "props": json.loads(res.stdout)["properties"]}


def _verify(s, props=None, image=None, cert=None, *extra):
    return invoke(["verify", image or s["image"], "--properties", json.dumps(props or s["props"]),
                   "--cert", cert or s["cert"], *extra])


def test_valid(signed):
    res = _verify(signed)
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith(f"VALID: signature verified for {signed['image']}")
    assert "key_type: RSA-PSS" in res.stdout


def test_flags_instead_of_json(signed):
    p = signed["props"]
    res = invoke(["verify", signed["image"], "--signature", p[sig.SIGNATURE], "--key-type", p[sig.KEY_TYPE],
                  "--hash-method", p[sig.HASH_METHOD], "--cert", signed["cert"], "-f", "json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["verdict"] == "valid"


def _with(s, **changes):
    props = dict(s["props"])
    for key, value in changes.items():
        if value is None:
            props.pop(key)
        else:
            props[key] = value
    return props


@pytest.mark.parametrize("case, code, text", [
    ("truncated_b64", 1, "truncated"),
    ("bad_padding_b64", 2, "not valid base64"),
    ("garbage_b64", 2, "not valid base64"),
    ("other_file", 1, "signature verification failed"),
    ("wrong_cert", 1, "signature verification failed"),
    ("ec_cert_for_rsa", 1, "cannot verify img_signature_key_type RSA-PSS"),
    ("expired", 3, "expired on"),
    ("not_yet_valid", 3, "is not valid before"),
    ("unknown_key_type", 2, "invalid signature key type 'RSA'"),
    ("unknown_hash", 2, "invalid signature hash method 'SHA256'"),
    ("missing_property", 2, "missing property img_signature_hash_method"),
    ("missing_image", 2, "No such file or directory"),
    ("empty_image", 2, "is empty"),
    ("bad_json", 2, "is not valid JSON"),
])
def test_bad_inputs(signed, tmp_path, case, code, text):
    s = signed
    props, image, cert = None, None, None
    b64 = s["props"][sig.SIGNATURE]
    if case == "truncated_b64":
        props = _with(s, img_signature=b64[: len(b64) // 2 // 4 * 4])
    elif case == "bad_padding_b64":
        props = _with(s, img_signature=b64[:-3])
    elif case == "garbage_b64":
        props = _with(s, img_signature="%%% not base64 at all %%%")
    elif case == "other_file":
        image = tmp_path / "other"
        image.write_bytes(os.urandom(500_000))
    elif case == "wrong_cert":
        cert = h.write_cert(tmp_path / "o.pem", h.cert_for(h.rsa_key(3072, which=1)))
    elif case == "ec_cert_for_rsa":
        cert = h.write_cert(tmp_path / "ec.pem", h.cert_for(h.ec_key("secp384r1")))
    elif case == "expired":
        cert = h.write_cert(tmp_path / "x.pem", h.cert_for(s["key"], days=1, start_offset_days=-5))
    elif case == "not_yet_valid":
        cert = h.write_cert(tmp_path / "y.pem", h.cert_for(s["key"], days=9, start_offset_days=3))
    elif case == "unknown_key_type":
        props = _with(s, img_signature_key_type="RSA")
    elif case == "unknown_hash":
        props = _with(s, img_signature_hash_method="SHA256")
    elif case == "missing_property":
        props = _with(s, img_signature_hash_method=None)
    elif case == "missing_image":
        image = tmp_path / "gone.img"
    elif case == "empty_image":
        image = tmp_path / "empty.img"
        image.write_bytes(b"")
    elif case == "bad_json":
        res = invoke(["verify", s["image"], "--properties", "{not json", "--cert", s["cert"]])
        assert res.exit_code == code and text in res.stderr
        return
    res = _verify(s, props, image, cert)
    assert res.exit_code == code, res.output
    assert text in res.stderr, res.stderr
    assert res.stderr.startswith("keytools: error: ") and res.stderr.count("\n") == 1
    assert "Traceback" not in res.output
    if code == 1:
        assert res.stdout.startswith("INVALID: ")
    res = _verify(s, props, image, cert, "-f", "json")
    assert res.exit_code == code
    if case not in ("missing_image",):
        verdict = json.loads(res.stdout)["verdict"]
        assert verdict == ("invalid" if code == 1 else "error")


def test_documented_self_signed_cert_gets_a_note(signed, tmp_path):
    plain = h.write_cert(tmp_path / "plain.pem", h.plain_cert_for(signed["key"]))
    res = _verify(signed, cert=plain)
    assert res.exit_code == 0, res.output
    assert "self-signed without CA:TRUE/keyCertSign" in res.stdout


def test_image_and_image_id_exclusive(signed):
    res = invoke(["verify", signed["image"], "--image-id", "x", "--cert", signed["cert"]])
    assert res.exit_code == 2 and "either IMAGE" in res.stderr
    res = invoke(["verify", signed["image"], "--cert", signed["cert"]])
    assert res.exit_code == 2 and "no signature properties" in res.stderr


def test_trusted_cert_must_be_a_uuid(signed):
    res = _verify(signed, None, None, None, "--trusted-cert", "not-a-uuid")
    assert res.exit_code == 2 and "--trusted-cert 'not-a-uuid' is not a Barbican secret UUID" in res.stderr


def test_openstack_image_show_json_is_accepted(signed):
    shown = {"id": "x", "name": "img", "properties": dict(signed["props"])}
    res = invoke(["verify", signed["image"], "--properties", json.dumps(shown), "--cert", signed["cert"]])
    assert res.exit_code == 0, res.output


def test_base64_decoding_matches_cursive(signed):
    """cursive (oslo.serialization) skips characters outside the alphabet: so do we."""
    from cursive import signature_utils

    b64 = signed["props"][sig.SIGNATURE]
    noisy = "\n".join(b64[i:i + 64] for i in range(0, len(b64), 64))
    assert sig.decode_signature(noisy) == signature_utils.get_signature(noisy)
    assert base64.b64decode(signed["props"][sig.SIGNATURE]) == sig.decode_signature(noisy)
    assert _verify(signed, _with(signed, img_signature=noisy)).exit_code == 0
