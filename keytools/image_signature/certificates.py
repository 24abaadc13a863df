"""X.509 certificates for image signing: the one reader of certificate files, dates, fingerprints."""

from __future__ import annotations

import datetime
import os
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization

from keytools.errors import UsageError
from keytools.fileutil import read_user_file

# What cryptography raises when a certificate parses but a part keytools reads does not: it parses
# extensions, names, the key and the version only when asked, so a bad one surfaces late.
REFUSALS: tuple[type[Exception], ...] = (ValueError, TypeError, UnsupportedAlgorithm, x509.DuplicateExtension,
                                         x509.InvalidVersion, x509.UnsupportedGeneralNameType)


def _touch(cert: x509.Certificate) -> None:
    """Read every part keytools (and cursive) use, so that a part cryptography refuses is refused now."""
    cert.version  # noqa: B018 - InvalidVersion
    cert.serial_number  # noqa: B018
    cert.subject.rfc4514_string()
    cert.issuer.rfc4514_string()
    cert.not_valid_before_utc  # noqa: B018
    cert.not_valid_after_utc  # noqa: B018
    for extension in cert.extensions:  # DuplicateExtension, a malformed extension (ValueError)
        extension.value  # noqa: B018
    cert.public_key()  # an unsupported or invalid key (UnsupportedAlgorithm, ValueError)
    cert.signature_hash_algorithm  # noqa: B018 - an unknown signature algorithm
    cert.fingerprint(hashes.SHA256())


def _reason(exc: Exception) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def load_certificate(data: bytes, where: str = "certificate", pem_only: bool = False) -> x509.Certificate:
    """A PEM (or, unless ``pem_only``, DER) X.509 certificate whose every part keytools reads parses;
    ValueError naming ``where`` otherwise (one line, whatever cryptography refused)."""
    try:
        if b"-----BEGIN" in data or pem_only:
            cert = x509.load_pem_x509_certificate(data)
        else:
            cert = x509.load_der_x509_certificate(data)
    except REFUSALS as exc:
        kind = "PEM" if pem_only else "PEM or DER"
        raise ValueError(f"{where} is not a {kind} X.509 certificate ({_reason(exc)})") from None
    try:
        _touch(cert)
    except REFUSALS as exc:
        raise ValueError(f"{where} is a certificate keytools cannot use ({_reason(exc)})") from None
    return cert


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
