"""Signing certificates: create one (with its key) or a CSR, read one, check it can sign now.

A self-signed certificate made here passes Nova's certificate validation (cursive's
``verify_certificate`` with its default enforcement) when its own Barbican id is trusted: cursive
only accepts a trusted certificate that is a CA (basicConstraints CA:TRUE) allowed to sign
certificates (keyUsage keyCertSign), signed with PKCS#1 v1.5 for RSA. A plain
``openssl x509 -req -signkey`` certificate has no extensions and fails there.
"""

from __future__ import annotations

import datetime
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from keytools import image_signature as sig
from keytools.errors import CertificateError, UsageError
from keytools.fileutil import atomic_write
from sign import keys

KEY_FILE = "signing_key.pem"
CERT_FILE = "signing_cert.pem"
CSR_FILE = "signing_cert.csr"


@dataclass
class Created:
    key_path: Path
    cert_path: Path | None
    csr_path: Path | None
    subject: str
    not_after: str | None
    fingerprint: str | None
    key: str

    def as_dict(self) -> dict[str, Any]:
        return {"key": str(self.key_path), "certificate": str(self.cert_path) if self.cert_path else None,
                "csr": str(self.csr_path) if self.csr_path else None, "subject": self.subject,
                "not_after": self.not_after, "sha256_fingerprint": self.fingerprint, "key_type": self.key}


def _name(common_name: str, organization: str | None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attrs)


def _signing_usage(can_sign_certificates: bool) -> x509.KeyUsage:
    """digitalSignature, plus keyCertSign for the self-signed CA that Nova's validation trusts."""
    return x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=can_sign_certificates,
                         crl_sign=False, encipher_only=False, decipher_only=False)


def default_common_name() -> str:
    return f"Glance image signing ({socket.gethostname()})"


def self_signed(key: sig.PrivateKey, common_name: str, organization: str | None, days: int,
                now: datetime.datetime | None = None) -> x509.Certificate:
    """A self-signed signing certificate that Nova's validation accepts when its id is trusted."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    name = _name(common_name, organization)
    public = key.public_key()
    ski = x509.SubjectKeyIdentifier.from_public_key(public)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))  # tolerate small clock skew
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_signing_usage(can_sign_certificates=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
    )
    # PKCS#1 v1.5 certificate signature: the only RSA padding cursive's chain check accepts.
    return builder.sign(key, _cert_hash(key))


def _cert_hash(key: Any) -> hashes.HashAlgorithm:
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP521R1):
        return hashes.SHA512()
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return hashes.SHA384()
    return hashes.SHA256()


def csr(key: sig.PrivateKey, common_name: str, organization: str | None) -> x509.CertificateSigningRequest:
    """A CSR for a real CA: the CA decides CA bits; we ask for digitalSignature and codeSigning."""
    return (
        x509.CertificateSigningRequestBuilder().subject_name(_name(common_name, organization))
        .add_extension(_signing_usage(can_sign_certificates=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .sign(key, _cert_hash(key))
    )


def create(out_dir: str | os.PathLike[str], key_type: str = "rsa", bits: int = 3072,
           curve: str = "secp384r1", days: int = 365, common_name: str | None = None,
           organization: str | None = None, want_csr: bool = False, allow_weak_key: bool = False,
           force: bool = False) -> Created:
    """Write a new private key (0600) and a self-signed certificate (or a CSR) into ``out_dir``.

    An existing key is never overwritten without ``force``: losing a signing key is not undoable.
    The certificate is written after the key, so an interrupted run leaves at most a key; a rerun
    with ``force`` replaces both.
    """
    if days < 1 or days > 3650:
        raise UsageError(f"--days {days} is out of range", "Use 1 to 3650 days")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    key_path = out / KEY_FILE
    second = out / (CSR_FILE if want_csr else CERT_FILE)
    existing = [p for p in (key_path, second) if p.exists()]
    if existing and not force:
        raise UsageError(f"{existing[0]} already exists; not overwriting a signing key or certificate",
                         "Choose another --out directory, or pass --force to replace them")
    key = keys.generate_key(key_type, bits, curve, allow_weak_key)
    cn = common_name or default_common_name()
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    atomic_write(key_path, key_pem, mode=0o600)
    desc = sig.key_description(key.public_key())
    if want_csr:
        request = csr(key, cn, organization)
        atomic_write(second, request.public_bytes(serialization.Encoding.PEM), mode=0o644)
        return Created(key_path, None, second, request.subject.rfc4514_string(), None, None, desc)
    cert = self_signed(key, cn, organization, days)
    atomic_write(second, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    return Created(key_path, second, None, cert.subject.rfc4514_string(),
                   cert.not_valid_after_utc.isoformat(), sig.fingerprint(cert), desc)


# ---- checks shared by store and sign -------------------------------------------------------------

def check_dates(cert: x509.Certificate, where: str, now: datetime.datetime | None = None) -> None:
    """Refuse expired and not-yet-valid certificates (exit 3), as Nova's validation does."""
    problem = sig.validity_problem(cert, now)
    if problem:
        hint = ("Create a new one with 'keytools cert create' and store it" if "expired" in problem
                else "Check the clocks, or wait until it becomes valid")
        raise CertificateError(f"{where} {problem}", hint)


def check_can_sign(cert: x509.Certificate, where: str) -> None:
    """If the certificate restricts key usage, it must allow digital signatures."""
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    if not usage.digital_signature:
        raise CertificateError(f"{where}: key usage does not allow digitalSignature",
                               "Use a certificate issued for signing (keyUsage digitalSignature)")


def read_certificate(path: str | os.PathLike[str]) -> x509.Certificate:
    return sig.read_certificate_file(path)
