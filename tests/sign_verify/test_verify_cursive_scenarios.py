"""cursive's own test scenarios (cursive/tests/unit/test_signature_utils.py), run through cursive and
through ``keytools verify``: the verdicts must agree. Plus the RSA signature shorter than its
modulus (leading zero bytes dropped by the signer), which OpenSSL, cursive, Glance and Nova accept.

cursive's tests mock ``get_public_key``; here only the key manager is replaced (``get_certificate``
returns the real certificate), so cursive's own key-type check runs too.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from unittest import mock

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import dsa, ec, padding, rsa, utils
from cursive import exception as cursive_exception
from cursive import signature_utils

from keytools import image_signature as sig
from tests.helpers.cli import invoke
from tests.sign_verify import sign_verify_helpers as h

CERT_UUID = "fea14bc2-d75f-4ba5-bccc-b5c924ad0693"  # cursive's test id
DATA = b"224626ae19824466f2a7f39ab7b80f7f"  # cursive's test data


def _cursive(cert, props: dict, data: bytes) -> str:
    """cursive's verdict, exactly as Glance computes it: 'valid', 'invalid' or 'refused'."""
    with mock.patch("cursive.signature_utils.get_certificate", return_value=cert):
        try:
            verifier = signature_utils.get_verifier(
                None, props.get(sig.CERT_UUID), props.get(sig.HASH_METHOD), props.get(sig.SIGNATURE),
                props.get(sig.KEY_TYPE))
        except cursive_exception.SignatureVerificationError:
            return "refused"
    verifier.update(data)
    try:
        verifier.verify()
    except InvalidSignature:
        return "invalid"
    return "valid"


def _keytools(tmp_path, cert, props: dict, data: bytes) -> tuple[str, int]:
    image = tmp_path / "image"
    image.write_bytes(data)
    cert_path = h.write_cert(tmp_path / "cert.pem", cert)
    res = invoke(["verify", image, "--properties", json.dumps(props), "--cert", cert_path, "-f", "json"])
    assert "Traceback" not in res.output
    return {0: "valid", 1: "invalid"}.get(res.exit_code, "refused"), res.exit_code


def _props(signature: bytes | str, method: str, key_type: str, cert_uuid: str | None = CERT_UUID) -> dict:
    encoded = signature if isinstance(signature, str) else base64.b64encode(signature).decode()
    props = {sig.SIGNATURE: encoded, sig.HASH_METHOD: method, sig.KEY_TYPE: key_type, sig.CERT_UUID: cert_uuid}
    return {k: v for k, v in props.items() if v is not None}


@pytest.fixture(scope="module")
def keys():
    """cursive's test keys: RSA 1024 with e=3, every registered ECC curve, DSA 3072."""
    return {"rsa": rsa.generate_private_key(public_exponent=3, key_size=1024),
            "dsa": dsa.generate_private_key(key_size=3072),
            **{name: ec.generate_private_key(curve) for name, curve in
               (("ECC_" + c.name.upper(), c) for c in signature_utils.ECC_CURVES)
               if name in signature_utils.SignatureKeyType.REGISTERED_TYPES}}


def _sign(key, data: bytes, method: str) -> bytes:
    algorithm = signature_utils.HASH_METHODS[method]
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PSS(mgf=padding.MGF1(algorithm), salt_length=padding.PSS.MAX_LENGTH),
                        algorithm)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(algorithm))
    return key.sign(data, algorithm)


@pytest.mark.parametrize("method", list(signature_utils.HASH_METHODS))
def test_cursive_signature_scenarios_every_key_type_and_hash(keys, tmp_path, method):
    """test_verify_signature_PSS, _ECC (every registered curve), _DSA."""
    for name, key in keys.items():
        key_type = {"rsa": sig.RSA_PSS, "dsa": sig.DSA}.get(name, name)
        props = _props(_sign(key, DATA, method), method, key_type)
        cert = h.cert_for(key)
        assert _cursive(cert, props, DATA) == "valid", name
        assert _keytools(tmp_path, cert, props, DATA) == ("valid", 0), name
        tampered = DATA[:-1] + b"X"
        assert _cursive(cert, props, tampered) == "invalid", name
        assert _keytools(tmp_path, cert, props, tampered) == ("invalid", 1), name


@pytest.mark.parametrize("scenario, change, code", [
    ("bad_signature", {sig.SIGNATURE: "BLAH"}, 1),  # test_verify_signature_bad_signature
    ("missing_hash_method", {sig.HASH_METHOD: None}, 2),  # test_get_verifier_invalid_image_props
    ("missing_signature", {sig.SIGNATURE: None}, 2),  # (any of the four missing)
    ("bad_sig_key_type", {sig.KEY_TYPE: "BLAH"}, 2),  # test_verify_signature_bad_sig_key_type
    ("rsb_pss", {sig.KEY_TYPE: "RSB-PSS"}, 2),  # test_signature_key_type_lookup_fail
    ("bad_base64", {sig.SIGNATURE: "///"}, 2),  # test_get_signature_fail
    ("bad_hash", {sig.HASH_METHOD: "SHA-2"}, 2),  # test_get_hash_method_fail
    ("dsa_for_rsa_cert", {sig.KEY_TYPE: sig.DSA}, 1),  # test_get_public_key_invalid_key
])
def test_cursive_refusal_scenarios(keys, tmp_path, scenario, change, code):
    props = _props(_sign(keys["rsa"], DATA, "SHA-256"), "SHA-256", sig.RSA_PSS)
    props.update(change)
    props = {k: v for k, v in props.items() if v is not None}
    cert = h.cert_for(keys["rsa"])
    expected = _cursive(cert, props, DATA)
    assert expected in ("invalid", "refused")
    verdict, exit_code = _keytools(tmp_path, cert, props, DATA)
    assert verdict != "valid" and exit_code == code, scenario


def test_missing_certificate_uuid_with_a_local_cert_says_glance_would_not_verify(keys, tmp_path):
    """cursive refuses without img_signature_certificate_uuid (and Glance then verifies nothing);
    keytools checks against --cert FILE but says so."""
    props = _props(_sign(keys["rsa"], DATA, "SHA-256"), "SHA-256", sig.RSA_PSS, cert_uuid=None)
    cert = h.cert_for(keys["rsa"])
    assert _cursive(cert, props, DATA) == "refused"
    (tmp_path / "image").write_bytes(DATA)
    res = invoke(["verify", tmp_path / "image", "--properties", json.dumps(props), "--cert",
                  h.write_cert(tmp_path / "c.pem", cert)])
    assert res.exit_code == 0 and "Glance and Nova verify nothing unless all four" in res.stdout


def _short_signature(key, method: str = "SHA-256") -> tuple[bytes, bytes]:
    """(data, signature) where the signature starts with a zero byte (about 1 in 256 tries)."""
    for _ in range(5000):
        data = os.urandom(64)
        signature = key.sign(hashlib.new(sig.HASH_METHODS[method], data).digest(), sig.pss_padding(method),
                             utils.Prehashed(sig.hash_algorithm(method)))
        if signature[0] == 0:
            return data, signature
    raise AssertionError("no signature with a leading zero byte in 5000 tries")


def test_rsa_signature_without_its_leading_zero_byte_verifies_as_in_cursive_and_openssl(tmp_path):
    key = h.rsa_key(2048)
    cert = h.cert_for(key)
    data, full = _short_signature(key)
    short = full[1:]  # what a signer that drops leading zero bytes stores
    props = _props(short, "SHA-256", sig.RSA_PSS)
    assert _cursive(cert, props, data) == "valid"
    assert _keytools(tmp_path, cert, props, data) == ("valid", 0)
    # openssl dgst -verify accepts it too
    (tmp_path / "short.sig").write_bytes(short)
    cert_path = h.write_cert(tmp_path / "c.pem", cert)
    ok = h.openssl("dgst", "-sha256", "-verify", h.pubkey_file(tmp_path, cert_path), "-sigopt",
                   "rsa_padding_mode:pss", "-signature", tmp_path / "short.sig", tmp_path / "image", check=False)
    assert ok.returncode == 0, ok.stderr
    # longer than the modulus (a zero byte put in front): OpenSSL and cursive refuse, so does keytools
    longer = _props(b"\x00" + full, "SHA-256", sig.RSA_PSS)
    assert _cursive(cert, longer, data) == "invalid"
    assert _keytools(tmp_path, cert, longer, data) == ("invalid", 1)
    # a signature with one more byte dropped is a truncated one: invalid, and said so
    truncated = _props(full[2:], "SHA-256", sig.RSA_PSS)
    assert _cursive(cert, truncated, data) == "invalid"
    image = tmp_path / "image"
    res = invoke(["verify", image, "--properties", json.dumps(truncated), "--cert", cert_path])
    assert res.exit_code == 1 and "truncated" in res.stderr and "254 bytes" in res.stderr
