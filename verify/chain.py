"""Certificate validation as Nova does it with trusted certificate ids (cursive's
``certificate_utils.verify_certificate`` with its default enforcement), with a reason per failure.

Rules, as cursive applies them: trusted certificates outside their dates, or not a CA allowed to
sign certificates (basicConstraints CA:TRUE and keyUsage keyCertSign), are skipped; the signing
certificate must be within its dates; the chain is built by issuer name plus a verified
certificate signature (PKCS#1 v1.5 for RSA issuers, ECDSA, DSA) until a self-signed trusted
certificate is reached; path length constraints of the issuers must allow the chain.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import dsa, ec, padding, rsa

from keytools import image_signature as sig
from keytools.errors import CertificateError

MAX_CHAIN = 16


@dataclass
class TrustResult:
    chain: list[str] = field(default_factory=list)  # ids from the trusted root to the signing cert
    skipped: list[str] = field(default_factory=list)  # trusted certs cursive would not use, with why


def can_sign_certificates(cert: x509.Certificate) -> str | None:
    """None if ``cert`` may act as an issuer for cursive, else the missing extension."""
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return "has no basicConstraints extension (not a CA)"
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return "has no keyUsage extension (keyCertSign missing)"
    missing = [w for w, ok in (("CA:TRUE", constraints.ca), ("keyCertSign", usage.key_cert_sign)) if not ok]
    return f"is not marked {' and '.join(missing)}" if missing else None


def signed_by(issuer: x509.Certificate, cert: x509.Certificate) -> bool:
    """cursive's is_issuer: names match and ``issuer``'s key verifies ``cert``'s signature."""
    if issuer.subject != cert.issuer:
        return False
    key: Any = issuer.public_key()
    algorithm = cert.signature_hash_algorithm
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(algorithm))
        elif isinstance(key, dsa.DSAPublicKey):
            key.verify(cert.signature, cert.tbs_certificate_bytes, algorithm)
        else:
            return False
    except (InvalidSignature, TypeError, ValueError):
        return False
    return True


def _is_self_signed(cert: x509.Certificate) -> bool:
    return cert.subject == cert.issuer and signed_by(cert, cert)


def validate(cert: x509.Certificate, cert_id: str, trusted: list[tuple[str, x509.Certificate]],
             unreadable: list[str] | None = None) -> TrustResult:
    """Raise CertificateError (exit 3) unless ``cert`` chains to one of ``trusted`` as cursive requires."""
    result = TrustResult(skipped=[f"{u}: not readable from the key manager" for u in unreadable or []])
    usable: list[tuple[str, x509.Certificate]] = []
    for uuid, candidate in trusted:
        why = sig.validity_problem(candidate)
        if why is None:
            why = can_sign_certificates(candidate)
        if why:
            result.skipped.append(f"{uuid}: {why}")
        else:
            usable.append((uuid, candidate))
    problem = sig.validity_problem(cert)
    if problem:
        raise CertificateError(f"certificate {cert_id} {problem}", "Sign with a certificate in its validity period")
    chain, chain_certs = [cert_id], [cert]
    current = cert
    for _ in range(MAX_CHAIN):
        issuer = next(((u, c) for u, c in usable if signed_by(c, current)), None)
        if issuer is None:
            raise CertificateError(_untrusted_message(cert_id, current, trusted, result.skipped),
                                   _untrusted_hint(current))
        if issuer[1] == current:
            break
        chain.insert(0, issuer[0])
        chain_certs.insert(0, issuer[1])
        current = issuer[1]
    else:
        raise CertificateError(f"certificate {cert_id}: chain longer than {MAX_CHAIN}")
    _check_path_lengths(chain, chain_certs)
    result.chain = chain
    return result


def _check_path_lengths(ids: list[str], certs: list[x509.Certificate]) -> None:
    for i, cert in enumerate(certs[:-1]):
        try:
            constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            raise CertificateError(f"signing certificate {ids[i]} has no basicConstraints extension") from None
        if constraints.path_length is None:
            continue
        below = len(certs[i:])
        below = below - 2 if below > 2 else 0
        if constraints.path_length < below:
            raise CertificateError(f"signing certificate {ids[i]} allows chains of {constraints.path_length} "
                                   f"intermediate(s), this chain needs {below}")


def _untrusted_message(cert_id: str, current: x509.Certificate, trusted: list[tuple[str, x509.Certificate]],
                       skipped: list[str]) -> str:
    who = current.issuer.rfc4514_string()
    text = f"certificate {cert_id} is not trusted: no usable trusted certificate issued {who!r}"
    if skipped:
        text += f" (skipped: {'; '.join(skipped)})"
    elif not trusted:
        text += " (no trusted certificate could be read)"
    return text


def _untrusted_hint(current: x509.Certificate) -> str:
    if _is_self_signed(current) and can_sign_certificates(current):
        return ("It is self-signed without CA:TRUE/keyCertSign (as 'openssl x509 -req -signkey' makes it), "
                "so Nova's certificate validation can never trust it: create the certificate with "
                "'keytools cert create'")
    return "Pass the Barbican id of the issuing CA certificate with --trusted-cert"
