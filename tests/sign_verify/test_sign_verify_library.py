"""The library entry points the CLIs call: sign.sign_image and verify.verify_image, offline."""

from __future__ import annotations

import os

import pytest

import sign
import verify
from keytools import image_signature as sig
from keytools.errors import EXIT_PROBLEMS, EXIT_USAGE, KeytoolsError, UsageError
from tests.sign_verify import sign_verify_helpers as h

CERT_UUID = "2c1f7a6e-3b4d-4e5f-8a9b-0c1d2e3f4a5b"


@pytest.fixture(scope="module")
def material(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("library")
    key = h.ec_key("secp384r1")
    image = tmp / "img"
    image.write_bytes(os.urandom(300_000))
    return {"key": h.write_key(tmp / "k.pem", key), "cert": h.write_cert(tmp / "c.pem", h.cert_for(key)),
            "image": image, "tmp": tmp}


def test_sign_then_verify_with_typed_results(material):
    seen: list[tuple[int | None, str]] = []

    def progress(size, label):
        import contextlib

        seen.append((size, label))
        return contextlib.nullcontext(None)

    signed = sign.sign_image(material["image"], str(material["key"]), CERT_UUID, cert_file=str(material["cert"]),
                             signature_file=material["tmp"] / "img.sig", progress=progress)
    assert isinstance(signed, sign.SignResult) and signed.uploaded is None
    assert signed.as_dict() == {"properties": signed.properties}
    assert signed.properties[sig.KEY_TYPE] == "ECC_SECP384R1" and signed.properties[sig.CERT_UUID] == CERT_UUID
    assert (material["tmp"] / "img.sig").read_bytes() == sig.decode_signature(signed.properties[sig.SIGNATURE])
    assert seen == [(300_000, "signing")]

    result = verify.verify_image(signed.properties, image=material["image"], cert_file=str(material["cert"]))
    assert isinstance(result, verify.VerifyResult)
    doc = result.as_dict()
    assert list(doc)[:3] == ["verdict", "message", "image"]
    assert doc["verdict"] == "valid" and doc["signature_valid"] is True and doc["size"] == 300_000


def test_verify_failure_carries_its_report_details(material):
    signed = sign.sign_image(material["image"], str(material["key"]), CERT_UUID, cert_file=str(material["cert"]))
    tampered = material["tmp"] / "tampered"
    tampered.write_bytes(material["image"].read_bytes() + b"x")
    with pytest.raises(KeytoolsError) as info:
        verify.verify_image(signed.properties, image=tampered, cert_file=str(material["cert"]))
    assert info.value.exit_code == EXIT_PROBLEMS and info.value.details["signature_valid"] is False
    failed = verify.VerifyResult.failed(str(tampered), info.value)
    assert failed.verdict == "invalid" and failed.certificate_subject and failed.hint


def test_library_refuses_bad_input_with_keytools_errors(material):
    with pytest.raises(UsageError, match="exclude each other"):
        sign.sign_image(material["image"], str(material["key"]), CERT_UUID,
                        upload=sign.api.ImageOptions("x"))
    with pytest.raises(UsageError, match="either IMAGE"):
        verify.verify_image({})
    with pytest.raises(KeytoolsError) as info:
        verify.verify_image({}, image=material["image"], trusted=["not-a-uuid"])
    assert info.value.exit_code == EXIT_USAGE and "--trusted-cert" in info.value.message
