"""Fetch a signing certificate from Barbican the way Glance and Nova do (castellan, PEM payload)."""

from __future__ import annotations

from typing import Any

from keytools.errors import CertificateError, SignatureFormatError, UsageError
from keytools.image_signature.crypto import check_uuid

def fetch_certificate_pem(session: Any, cert_uuid: str) -> bytes:
    """The payload of certificate secret ``cert_uuid`` from Barbican, as stored (PEM).

    Raises keytools errors: CertificateError (exit 3) for an unknown id or a secret that is not a
    certificate, ServiceUnavailable (4) when Barbican cannot be reached, Forbidden (5) when the
    caller may not read it.
    """
    from keytools import keymanager, service_errors  # the client libraries only when fetching
    from keytools.secret_store import payload_bytes

    try:
        cert_uuid = check_uuid(cert_uuid, "certificate id")
    except SignatureFormatError as exc:
        raise UsageError(str(exc), "Pass the UUID printed by 'keytools cert store'") from None
    with service_errors.translated("Barbican", f"reading certificate {cert_uuid}"):
        try:
            secret = keymanager.barbican_client(session).secrets.get(cert_uuid)
            secret_type = secret.secret_type
            payload = payload_bytes(secret)  # the payload's GET
        except Exception as exc:
            if service_errors.http_status(exc) == 404:
                raise CertificateError(f"certificate not found in Barbican with ID {cert_uuid}",
                                       "Check the UUID ('keytools cert list') and the project "
                                       "you authenticate in") from None
            raise
    if secret_type != "certificate":
        raise CertificateError(f"Barbican secret {cert_uuid} is a {secret_type!r} secret, not a "
                               "certificate", "Pass the UUID printed by 'keytools cert store'")
    return payload
