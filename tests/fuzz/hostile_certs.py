"""Certificates cryptography loads but refuses later (issue 21): each a small DER edit of a real one."""

from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ObjectIdentifier

_KEY = ec.derive_private_key(12345, ec.SECP384R1())


def _build(extensions: tuple[x509.ExtensionType, ...] = (), name: str = "fuzz") -> bytes:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(_KEY.public_key())
               .serial_number(7).not_valid_before(datetime.datetime(2025, 1, 1))
               .not_valid_after(datetime.datetime(2125, 1, 1)))
    for extension in extensions:
        builder = builder.add_extension(extension, critical=False)
    return builder.sign(_KEY, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def _edit(der: bytes, old: bytes, new: bytes) -> bytes:
    assert der.count(old) >= 1
    return der.replace(old, new, 1)


def cases() -> dict[str, bytes]:
    """name -> DER certificate that cryptography parses lazily and then refuses."""
    ski = x509.SubjectKeyIdentifier(b"\x01" * 20)
    base = _build()
    point = _KEY.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return {
        # the same extension twice (DuplicateExtension): 2.5.29.99 renamed to 2.5.29.14 after signing
        "duplicate_extension": _edit(_build((ski, x509.UnrecognizedExtension(ObjectIdentifier("2.5.29.99"),
                                                                              ski.public_bytes()))),
                                     bytes.fromhex("0603551d63"), bytes.fromhex("0603551d0e")),
        # basicConstraints whose cA BOOLEAN is 0x07 (ValueError)
        "malformed_extension": _build((x509.UnrecognizedExtension(ObjectIdentifier("2.5.29.19"),
                                                                  bytes.fromhex("3003010107")),)),
        # version 8, which X.509 does not have (InvalidVersion)
        "invalid_version": _edit(base, bytes.fromhex("a003020102"), bytes.fromhex("a003020107")),
        # an unknown public key algorithm (UnsupportedAlgorithm)
        "unsupported_key": _edit(base, bytes.fromhex("06072a8648ce3d0201"), bytes.fromhex("06072a8648ce3d0209")),
        # an EC point not on the curve (ValueError)
        "invalid_key": _edit(base, point, b"\x04" + bytes(len(point) - 1)),
        # a subject CN as a BMPString of odd length (ValueError)
        "malformed_subject": _edit(_build(name="fuzzsubject"), b"\x0c\x0bfuzzsubject", b"\x1e\x0bfuzzsubject"),
    }
