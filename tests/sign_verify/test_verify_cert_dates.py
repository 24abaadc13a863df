"""A certificate outside its dates: keytools still refuses it (exit 3), but checks the signature first
and says what Glance, Nova without and Nova with certificate validation would each do. The
predictions are checked against cursive itself: Glance's get_verifier and Nova's verify_certificate."""

from __future__ import annotations

import json
import os
from unittest import mock

import pytest
from cryptography.exceptions import InvalidSignature
from cursive import certificate_utils, signature_utils
from cursive import exception as cursive_exception

from keytools import image_signature as sig
from tests.helpers.cli import invoke
from tests.sign_verify import sign_verify_helpers as h
from verify import verifier

CERT_UUID = "5d0c3e1a-7b2f-4c9d-8e6a-1f2b3c4d5e6f"


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dates")
    key = h.rsa_key(3072)
    good = h.write_cert(tmp / "good.pem", h.cert_for(key))
    image = tmp / "img"
    image.write_bytes(os.urandom(300_000))
    res = invoke(["sign", image, "--key", h.write_key(tmp / "k.pem", key), "--cert-uuid", CERT_UUID, "--cert", good,
                  "--offline", "-f", "json"])
    assert res.exit_code == 0, res.output
    other = tmp / "other"
    other.write_bytes(os.urandom(300_000))
    certs = {"expired": h.cert_for(key, days=1, start_offset_days=-5),
             "not_yet_valid": h.cert_for(key, days=9, start_offset_days=3)}
    return {"tmp": tmp, "image": image, "other": other, "props": json.loads(res.stdout)["properties"],
            "certs": certs, "paths": {k: h.write_cert(tmp / f"{k}.pem", c) for k, c in certs.items()}}


def _glance(cert, props, data: bytes) -> bool:
    """Glance's upload check (cursive get_verifier, no date check): does it accept?"""
    with mock.patch("cursive.signature_utils.get_certificate", return_value=cert):
        v = signature_utils.get_verifier(None, props[sig.CERT_UUID], props[sig.HASH_METHOD],
                                         props[sig.SIGNATURE], props[sig.KEY_TYPE])
    v.update(data)
    try:
        v.verify()
    except InvalidSignature:
        return False
    return True


def _nova_validation_accepts(cert) -> bool:
    """Nova's certificate validation (cursive verify_certificate), the certificate trusting itself."""
    with mock.patch("cursive.signature_utils.get_certificate", return_value=cert):
        try:
            certificate_utils.verify_certificate(None, CERT_UUID, [CERT_UUID])
        except cursive_exception.SignatureVerificationError:
            return False
    return True


@pytest.mark.parametrize("signature_good", [True, False], ids=["good-signature", "bad-signature"])
@pytest.mark.parametrize("when", ["expired", "not_yet_valid"])
def test_dates_refused_after_the_signature_is_checked(signed, when, signature_good):
    image = signed["image"] if signature_good else signed["other"]
    cert_path, cert = signed["paths"][when], signed["certs"][when]
    args = ["verify", image, "--properties", json.dumps(signed["props"]), "--cert", cert_path]
    data = image.read_bytes()

    # What upstream does, from cursive itself: Glance looks at the signature only; Nova's
    # validation refuses the certificate for its dates (and accepts the good one).
    assert _glance(cert, signed["props"], data) is signature_good
    assert _nova_validation_accepts(cert) is False
    assert _nova_validation_accepts(h.cert_for(h.rsa_key(3072))) is True

    res = invoke([*args, "-f", "json"])
    assert res.exit_code == 3, res.output
    doc = json.loads(res.stdout)
    assert doc["verdict"] == "error" and doc["signature_valid"] is signature_good
    by_signature = "accept" if signature_good else "reject: signature does not verify"
    assert doc["upstream"]["glance"] == doc["upstream"]["nova"] == by_signature
    assert doc["upstream"]["nova_certificate_validation"].startswith("reject: certificate ")
    assert doc["digest"] and doc["size"] == len(data)

    res = invoke(args)
    assert res.exit_code == 3 and "Traceback" not in res.output
    words = "expired on" if when == "expired" else "is not valid before"
    assert words in res.stderr and res.stderr.count("\n") == 1
    assert f"the signature itself {'verifies' if signature_good else 'does NOT verify'}" in res.stderr
    assert res.stdout.startswith("CERTIFICATE REFUSED: ")
    assert f"signature_valid: {'yes' if signature_good else 'no'}" in res.stdout
    assert f"glance (upload, ignores certificate dates): {by_signature}" in res.stdout
    assert f"nova (verify_glance_signatures, no certificate validation): {by_signature}" in res.stdout
    assert "nova (with certificate validation): reject: certificate" in res.stdout


def test_dates_checked_before_trust_and_data_still_read(signed):
    """With trusted certificate ids the date refusal wins (Nova's validation checks dates first),
    and the signature is still reported."""
    cert = signed["certs"]["expired"]
    prepared = verifier.prepare(signed["props"], lambda _u: cert, verifier.Policy((CERT_UUID,)),
                                lambda _u: cert)
    assert prepared.date_problem and prepared.date_problem.startswith("expired on")
    with pytest.raises(verifier.CertificateError) as info:
        verifier.verify_file(signed["image"], prepared)
    assert info.value.details["signature_valid"] is True
