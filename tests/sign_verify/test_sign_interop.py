"""Interop in both directions, offline: the openssl CLI (the documented commands) and cursive's own
verifier code against keytools, for RSA 2048/3072/4096, ECC P-384/P-521, DSA (verify) and every hash."""

from __future__ import annotations

import base64
import json
import os

import pytest
from cryptography.hazmat.primitives.asymmetric import padding, utils
from cursive import signature_utils

from keytools import image_signature as sig
from tests.helpers.cli import invoke
from tests.sign_verify import sign_verify_helpers as h

KEYS = {"rsa2048": lambda: h.rsa_key(2048), "rsa3072": lambda: h.rsa_key(3072), "rsa4096": lambda: h.rsa_key(4096),
        "ec384": lambda: h.ec_key("secp384r1"), "ec521": lambda: h.ec_key("secp521r1")}
HASHES = list(sig.HASH_METHODS)
CERT_UUID = "6f2a5d4e-8a51-4b7f-9a38-0d7c1b2e3f40"


@pytest.fixture(scope="module")
def material(tmp_path_factory):
    """Per key: key file, keytools-made certificate, an image with a few odd-sized chunks."""
    tmp = tmp_path_factory.mktemp("interop")
    image = tmp / "image.raw"
    image.write_bytes(os.urandom(3 * 1024 * 1024 + 12345))
    out = {"tmp": tmp, "image": image}
    for name, make in KEYS.items():
        key = make()
        key_path = h.write_key(tmp / f"{name}.key", key)
        cert_path = h.write_cert(tmp / f"{name}.crt", h.cert_for(key))
        out[name] = (key, key_path, cert_path, h.pubkey_file(tmp, cert_path))
    return out


def _openssl_digest_flag(method: str) -> str:
    return "-" + sig.HASH_METHODS[method]


@pytest.mark.parametrize("method", HASHES)
@pytest.mark.parametrize("keyname", list(KEYS))
def test_keytools_signature_verifies_with_openssl_and_cursive(material, keyname, method, tmp_path):
    key, key_path, cert_path, pub_path = material[keyname]
    image = material["image"]
    sig_file = tmp_path / "image.sig"
    res = invoke(["sign", image, "--key", key_path, "--cert-uuid", CERT_UUID, "--cert", cert_path, "--offline",
                  "--hash-method", method, "--signature-file", sig_file, "-f", "json"])
    assert res.exit_code == 0, res.output
    props = json.loads(res.stdout)["properties"]
    assert props[sig.HASH_METHOD] == method and props[sig.CERT_UUID] == CERT_UUID
    signature = base64.b64decode(props[sig.SIGNATURE])
    assert sig_file.read_bytes() == signature
    expected_type = "RSA-PSS" if keyname.startswith("rsa") else f"ECC_SECP{keyname[2:]}R1"
    assert props[sig.KEY_TYPE] == expected_type

    # openssl dgst -verify, with the documented PSS option for RSA.
    pss = ["-sigopt", "rsa_padding_mode:pss"] if keyname.startswith("rsa") else []
    ok = h.openssl("dgst", _openssl_digest_flag(method), "-verify", pub_path, *pss, "-signature", sig_file, image,
                   check=False)
    assert ok.returncode == 0 and b"Verified OK" in ok.stdout, ok.stderr

    # cursive's verifier code, as Glance and Nova build it (get_verifier minus the key manager).
    key_type = signature_utils.SignatureKeyType.lookup(props[sig.KEY_TYPE])
    verifier = key_type.create_verifier(signature_utils.get_signature(props[sig.SIGNATURE]),
                                        signature_utils.get_hash_method(method), key.public_key())
    with open(image, "rb") as handle:
        for chunk in iter(lambda: handle.read(65536), b""):
            verifier.update(chunk)
    verifier.verify()  # raises InvalidSignature on a mismatch

    if keyname.startswith("rsa"):
        # The salt is the maximum length (what openssl writes), not the digest length.
        algo = sig.hash_algorithm(method)
        digest = sig.hash_file(open(image, "rb"), method).value
        max_salt = key.key_size // 8 - algo.digest_size - 2
        key.public_key().verify(signature, digest, padding.PSS(padding.MGF1(algo), max_salt), utils.Prehashed(algo))


@pytest.mark.parametrize("method", HASHES)
@pytest.mark.parametrize("keyname", list(KEYS))
def test_openssl_signature_verifies_with_keytools(material, keyname, method, tmp_path):
    _key, key_path, cert_path, _pub = material[keyname]
    image = material["image"]
    sig_file = tmp_path / "image.signature"
    pss = ["-sigopt", "rsa_padding_mode:pss"] if keyname.startswith("rsa") else []
    h.openssl("dgst", _openssl_digest_flag(method), "-sign", key_path, *pss, "-out", sig_file, image)
    b64 = base64.b64encode(sig_file.read_bytes()).decode()  # base64 -w 0
    key_type = "RSA-PSS" if keyname.startswith("rsa") else f"ECC_SECP{keyname[2:]}R1"
    res = invoke(["verify", image, "--signature", b64, "--key-type", key_type, "--hash-method", method,
                  "--cert", cert_path])
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith("VALID: ")


def test_documented_openssl_flow_verifies(tmp_path):
    """The operator documentation's commands, with a 2048-bit key instead of 1024."""
    key, crt, img, sig_file = (tmp_path / n for n in ("private_key.pem", "new_cert.crt", "img", "img.signature"))
    img.write_bytes(os.urandom(200_000))
    h.openssl("genrsa", "-out", key, "2048")
    h.openssl("req", "-new", "-x509", "-key", key, "-out", crt, "-days", "14", "-subj", "/CN=doc-flow")
    h.openssl("dgst", "-sha256", "-sign", key, "-sigopt", "rsa_padding_mode:pss", "-out", sig_file, img)
    props = {sig.SIGNATURE: base64.b64encode(sig_file.read_bytes()).decode(), sig.HASH_METHOD: "SHA-256",
             sig.KEY_TYPE: "RSA-PSS", sig.CERT_UUID: CERT_UUID}
    res = invoke(["verify", img, "--properties", json.dumps(props), "--cert", crt, "-f", "json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["verdict"] == "valid"


def test_dsa_is_verified_but_never_used_for_signing(tmp_path):
    key = h.dsa_key()
    key_path = h.write_key(tmp_path / "dsa.key", key)
    cert_path = h.write_cert(tmp_path / "dsa.crt", h.plain_cert_for(key, "dsa"))
    img = tmp_path / "img"
    img.write_bytes(os.urandom(100_000))
    sig_file = tmp_path / "img.sig"
    h.openssl("dgst", "-sha256", "-sign", key_path, "-out", sig_file, img)
    b64 = base64.b64encode(sig_file.read_bytes()).decode()
    res = invoke(["verify", img, "--signature", b64, "--key-type", "DSA", "--hash-method", "SHA-256",
                  "--cert", cert_path])
    assert res.exit_code == 0, res.output
    res = invoke(["sign", img, "--key", key_path, "--cert-uuid", CERT_UUID, "--cert", cert_path, "--offline"])
    assert res.exit_code == 2 and "DSA keys are accepted for verification only" in res.stderr


def test_pss_salt_length_handling_matches_cursive(material, tmp_path):
    """cryptography's PSS.MAX_LENGTH verifies any salt length: an openssl signature with a
    digest-length salt is valid for cursive and so for keytools (same padding object)."""
    key, key_path, cert_path, _pub = material["rsa3072"]
    image, sig_file = material["image"], tmp_path / "digest-salt.sig"
    h.openssl("dgst", "-sha256", "-sign", key_path, "-sigopt", "rsa_padding_mode:pss", "-sigopt",
              "rsa_pss_saltlen:digest", "-out", sig_file, image)
    b64 = base64.b64encode(sig_file.read_bytes()).decode()
    verifier = signature_utils.create_verifier_for_pss(signature_utils.get_signature(b64),
                                                       signature_utils.get_hash_method("SHA-256"), key.public_key())
    verifier.update(image.read_bytes())
    verifier.verify()
    res = invoke(["verify", image, "--signature", b64, "--key-type", "RSA-PSS", "--hash-method", "SHA-256",
                  "--cert", cert_path])
    assert res.exit_code == 0, res.output
