"""Sign a Glance image file: one streaming pass, a Prehashed signature, the four properties.

The key, the certificate and the image are checked before anything is signed or written: the key
must match the certificate (by public key), the certificate must be in date and allow digital
signatures, and the certificate stored in Barbican must be the one given. Local checks run before
the image is read; the Barbican round trips run beside the hash (keytools.overlap), which stops
at the next chunk if they fail.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from keytools import image_signature as sig
from keytools import overlap
from keytools.errors import CertificateError, UsageError
from sign import certs, keys


@dataclass
class Signed:
    image: str
    size: int
    digest: bytes
    signature: bytes
    hash_method: str
    key_type: str
    cert_uuid: str

    @property
    def properties(self) -> dict[str, str]:
        return {sig.SIGNATURE: sig.encode_signature(self.signature), sig.HASH_METHOD: self.hash_method,
                sig.KEY_TYPE: self.key_type, sig.CERT_UUID: self.cert_uuid}


def check_key(key: sig.PrivateKey, key_path: str, allow_weak_key: bool = False) -> str:
    """The key alone (strength, a type Glance accepts); returns its Glance key type."""
    public = key.public_key()
    keys.check_key_strength(public, key_path, allow_weak_key)
    try:
        return sig.check_key_type(sig.key_type_for(public), signing=True)
    except sig.SignatureFormatError as exc:
        raise UsageError(f"{key_path}: {exc}") from None


def check_pair(key: sig.PrivateKey, cert: x509.Certificate, key_path: str, cert_where: str,
               allow_weak_key: bool = False) -> str:
    """Checks before signing; returns the Glance key type of the pair."""
    key_type = check_key(key, key_path, allow_weak_key)
    public = key.public_key()
    if not sig.public_keys_equal(public, cert.public_key()):
        raise CertificateError(f"the key {key_path} does not match {cert_where} (different public key)",
                               "Sign with the private key of that certificate, or pass the "
                               "certificate UUID that belongs to this key")
    certs.check_dates(cert, cert_where)
    certs.check_can_sign(cert, cert_where)
    return key_type


def resolve_certificate(cert_uuid: str, cert_file: str | None, fetch_pem: Callable[[], bytes] | None,
                        ) -> tuple[x509.Certificate, str]:
    """The certificate to check against: Barbican's copy (``fetch_pem`` reads it; compared with
    ``cert_file`` if given), or only ``cert_file`` when offline (``fetch_pem`` None)."""
    local = certs.read_certificate(cert_file) if cert_file else None
    if fetch_pem is None:
        if local is None:
            raise UsageError("--offline needs --cert FILE to check the key against",
                             "Pass the certificate file stored under --cert-uuid")
        return local, f"certificate {cert_file}"
    pem = fetch_pem()
    try:
        stored = sig.load_certificate(pem, f"Barbican secret {cert_uuid}", pem_only=True)
    except ValueError as exc:
        raise CertificateError(f"{exc}; Glance and Nova (castellan) cannot read it",
                               "Store the certificate with 'keytools cert store'") from None
    if local is not None and sig.fingerprint(local) != sig.fingerprint(stored):
        raise CertificateError(f"the certificate in Barbican ({cert_uuid}) is not {cert_file}",
                               "Pass the UUID under which this certificate is stored ('keytools cert list')")
    return stored, f"certificate {cert_uuid}"


def sign_file(image: str | os.PathLike[str], key: sig.PrivateKey, cert_uuid: str,
              hash_method: str = sig.DEFAULT_HASH_METHOD,
              progress: Callable[[int], None] | None = None,
              check: overlap.Check[Any] | None = None) -> Signed:
    """Hash ``image`` once in constant memory and sign the digest. ``check`` (the certificate
    check running beside the hash) stops the hash when it fails, and must pass before signing."""
    try:
        sig.hash_algorithm(hash_method)
        key_type = sig.key_type_for(key.public_key())
    except sig.SignatureFormatError as exc:
        raise UsageError(str(exc), "Use --hash-method SHA-256 (or SHA-224, SHA-384, SHA-512)") from None
    handle, _size = sig.open_image(image)
    with handle:
        try:
            digest = sig.hash_file(handle, hash_method, progress, abort=check.failed if check else None)
        except overlap.HashAborted:
            assert check is not None
            check.result()  # raises the check's error
            raise
        except OSError as exc:
            raise UsageError(f"cannot read image {image}: {exc.strerror or exc}") from None
    if check is not None:
        check.result()
    signature = sig.sign_digest(key, digest.value, hash_method)
    try:  # never hand out a signature that does not verify (corrupt key, hardware fault)
        sig.verify_digest(key.public_key(), signature, digest.value, hash_method, key_type)
    except InvalidSignature:
        raise UsageError("the private key made a signature that does not verify: the key file is corrupt",
                         "Restore the key from a backup") from None
    return Signed(str(image), digest.size, digest.value, signature, hash_method, key_type, cert_uuid)


def write_signature(path: str | os.PathLike[str], signed: Signed) -> None:
    """A detached raw signature, as ``openssl dgst -sign -out`` writes it."""
    from keytools.fileutil import atomic_write

    atomic_write(Path(path), signed.signature, mode=0o644)
