"""Signing certificates in Barbican: store one as Glance and Nova read it, list those visible.

Stored as documented (secret type certificate, payload application/octet-stream, base64 of the
PEM), which is what castellan hands to cursive.
"""

from __future__ import annotations

import base64
import datetime
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, rsa

from keytools import image_signature as sig
from keytools import secret_store
from keytools.errors import CertificateError
from sign.certs import check_dates
from sign.keys import check_key_strength

SECRET_NAME_PREFIX = "image-signing-cert-"


@dataclass
class StoredCert:
    uuid: str
    name: str | None
    subject: str
    fingerprint: str
    not_after: str
    key: str
    status: str
    created: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"uuid": self.uuid, "name": self.name, "subject": self.subject,
                "sha256_fingerprint": self.fingerprint, "not_after": self.not_after, "key": self.key,
                "status": self.status}


def _status(cert: x509.Certificate) -> str:
    now = datetime.datetime.now(datetime.timezone.utc)
    if now > cert.not_valid_after_utc:
        return "expired"
    if now < cert.not_valid_before_utc:
        return "not yet valid"
    return "valid"


def describe(uuid: str, name: str | None, cert: x509.Certificate) -> StoredCert:
    return StoredCert(uuid, name, cert.subject.rfc4514_string(), sig.fingerprint(cert),
                      cert.not_valid_after_utc.isoformat(), sig.key_description(cert.public_key()),
                      _status(cert))


def store(session: Any, cert: x509.Certificate, name: str | None = None,
          allow_weak_key: bool = False, where: str = "certificate") -> StoredCert:
    """Store ``cert`` as the documented certificate secret; idempotent per certificate.

    A rerun (say after a crash between the POST and the printed UUID) finds the secret stored
    before by its name and fingerprint instead of adding a second copy (keytools.secret_store).
    """
    from keytools import keymanager
    from keytools.service_errors import translated

    public = cert.public_key()
    try:
        sig.key_type_for(public)
    except sig.SignatureFormatError as exc:
        raise CertificateError(f"{where}: {exc}") from None
    check_key_strength(public, where, allow_weak_key)
    check_dates(cert, where)
    pem = cert.public_bytes(serialization.Encoding.PEM)
    fp = sig.fingerprint(cert)
    name = name or SECRET_NAME_PREFIX + fp.replace(":", "")[:16].lower()
    algorithm = "RSA" if isinstance(public, rsa.RSAPublicKey) else \
        "DSA" if isinstance(public, dsa.DSAPublicKey) else "EC"
    with translated("Barbican", f"storing {where}"):
        found = secret_store.store_once(
            keymanager.barbican_client(session), name, "certificate",
            lambda payload: sig.fingerprint(sig.load_certificate(payload)) == fp,
            payload=base64.b64encode(pem).decode("ascii"), payload_content_type="application/octet-stream",
            payload_content_encoding="base64", algorithm=algorithm)
    stored = describe(found.id, name, cert)
    stored.created = not found.reused
    return stored


def list_stored(session: Any, limit: int = 200) -> list[StoredCert]:
    """Certificate secrets visible to the caller, with subject, fingerprint and expiry."""
    from keytools import keymanager
    from keytools.service_errors import translated

    rows = []
    with translated("Barbican", "listing certificates"):
        client = keymanager.barbican_client(session)
        for secret in client.secrets.list(secret_type="certificate", limit=limit):
            uuid = secret_store.secret_id(secret.secret_ref)
            try:
                cert = sig.load_certificate(secret_store.payload_bytes(secret))
            except ValueError:
                rows.append(StoredCert(uuid, secret.name, "(not an X.509 certificate)", "-", "-", "-",
                                       "unreadable"))
                continue
            rows.append(describe(uuid, secret.name, cert))
    return rows
