"""X.509 certificates for image signing: the one reader of certificate files, dates, fingerprints."""

from __future__ import annotations

import datetime
import os
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from keytools.errors import UsageError
from keytools.fileutil import read_user_file

def load_certificate(data: bytes, where: str = "certificate") -> x509.Certificate:
    """A PEM or DER X.509 certificate; ValueError naming ``where`` if it is neither."""
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise ValueError(f"{where} is not a PEM or DER X.509 certificate ({exc})") from None


def validity_problem(cert: x509.Certificate, now: Any = None) -> str | None:
    """Why ``cert`` is outside its validity dates right now (cursive's is_within_valid_dates), or None."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    if now > cert.not_valid_after_utc:
        return f"expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC"
    if now < cert.not_valid_before_utc:
        return f"is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC"
    return None


def public_keys_equal(a: Any, b: Any) -> bool:
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return bool(a.public_bytes(*fmt) == b.public_bytes(*fmt))


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 fingerprint as ``openssl x509 -fingerprint -sha256`` prints it."""
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def read_certificate_file(path: str | os.PathLike[str], what: str = "certificate", where: str | None = None,
                          hint: str = "Pass a PEM or DER certificate (not a key or a CSR)") -> x509.Certificate:
    """The one reader of certificate files: UsageError (exit 2) naming the file when it cannot be
    read or is not a PEM or DER certificate. ``where`` names it in the parse error [the path]."""
    data = read_user_file(path, what)
    try:
        return load_certificate(data, where or str(path))
    except ValueError as exc:
        raise UsageError(str(exc), hint) from None
