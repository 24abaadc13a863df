"""Signature primitives as cursive uses them: hash names, key types, base64, Prehashed sign/verify."""

from __future__ import annotations

import base64
import binascii
import hashlib
import uuid
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, padding, rsa, utils

from keytools.errors import SignatureFormatError
from keytools.image_signature.constants import (DSA, ECC_CURVES, HASH_METHODS, RSA_PSS, SIGN_KEY_TYPES,
                                                VERIFY_KEY_TYPES, PrivateKey)

_CRYPTO_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "SHA-224": hashes.SHA224, "SHA-256": hashes.SHA256, "SHA-384": hashes.SHA384, "SHA-512": hashes.SHA512}


def hash_algorithm(method: str) -> hashes.HashAlgorithm:
    """cryptography's hash object for a Glance hash method name (``SHA-256``)."""
    try:
        return _CRYPTO_HASHES[method]()
    except KeyError:
        raise SignatureFormatError(
            f"invalid signature hash method {method!r}; Glance and Nova accept "
            f"{', '.join(HASH_METHODS)}") from None


def new_hasher(method: str) -> Any:
    """A hashlib object (OpenSSL's implementation) for ``method``."""
    hash_algorithm(method)
    return hashlib.new(HASH_METHODS[method])


def check_key_type(key_type: str, signing: bool = False) -> str:
    allowed = SIGN_KEY_TYPES if signing else VERIFY_KEY_TYPES
    if key_type not in allowed:
        raise SignatureFormatError(f"invalid signature key type {key_type!r}; "
                                   f"{'keytools signs with' if signing else 'cursive accepts'} "
                                   f"{', '.join(allowed)}")
    return key_type


def pss_padding(method: str) -> padding.PSS:
    """RSA-PSS exactly as cursive verifies it: MGF1 over the same hash, maximum salt length."""
    return padding.PSS(mgf=padding.MGF1(hash_algorithm(method)), salt_length=padding.PSS.MAX_LENGTH)


def key_type_for(public_key: Any) -> str:
    """The Glance key type naming this public key (raises SignatureFormatError if none does)."""
    if isinstance(public_key, rsa.RSAPublicKey):
        return RSA_PSS
    if isinstance(public_key, dsa.DSAPublicKey):
        return DSA
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        name = "ECC_" + public_key.curve.name.upper()
        if name in ECC_CURVES:
            return name
        raise SignatureFormatError(f"elliptic curve {public_key.curve.name} is not accepted by Glance "
                                   f"and Nova (cursive); use {', '.join(ECC_CURVES)}")
    raise SignatureFormatError(f"{type(public_key).__name__} keys cannot sign Glance images")


def key_matches_type(public_key: Any, key_type: str) -> bool:
    """cursive's check: RSA-PSS needs an RSA key, DSA a DSA key, ECC_* any elliptic-curve key."""
    if key_type == RSA_PSS:
        return isinstance(public_key, rsa.RSAPublicKey)
    if key_type == DSA:
        return isinstance(public_key, dsa.DSAPublicKey)
    return isinstance(public_key, ec.EllipticCurvePublicKey)


def key_description(public_key: Any) -> str:
    if isinstance(public_key, (rsa.RSAPublicKey, dsa.DSAPublicKey)):
        return f"{'RSA' if isinstance(public_key, rsa.RSAPublicKey) else 'DSA'} {public_key.key_size}"
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return f"EC {public_key.curve.name}"
    return type(public_key).__name__


def encode_signature(signature: bytes) -> str:
    return base64.b64encode(signature).decode("ascii")


def decode_signature(text: str | bytes) -> bytes:
    """Decode ``img_signature`` as oslo.serialization (cursive) does: characters outside the
    alphabet are skipped, bad padding is an error."""
    try:
        if isinstance(text, bytes):
            text = text.decode("ascii")
        signature = base64.b64decode(text)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise SignatureFormatError(f"the signature is not valid base64 ({exc})") from None
    if not signature:
        raise SignatureFormatError("the signature is empty")
    return signature


def sign_digest(private_key: PrivateKey, digest: bytes, method: str) -> bytes:
    """Sign an already computed digest (Prehashed): RSA-PSS or ECDSA."""
    algorithm = hash_algorithm(method)
    prehashed = utils.Prehashed(algorithm)
    if isinstance(private_key, rsa.RSAPrivateKey):
        return private_key.sign(digest, pss_padding(method), prehashed)
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        return private_key.sign(digest, ec.ECDSA(prehashed))
    raise SignatureFormatError(f"{type(private_key).__name__} keys cannot sign Glance images")


def verify_digest(public_key: Any, signature: bytes, digest: bytes, method: str, key_type: str) -> None:
    """Verify like cursive's verifiers; raises cryptography's InvalidSignature on a mismatch."""
    prehashed = utils.Prehashed(hash_algorithm(method))
    if key_type == RSA_PSS:
        public_key.verify(signature, digest, pss_padding(method), prehashed)
    elif key_type == DSA:
        public_key.verify(signature, digest, prehashed)
    else:
        public_key.verify(signature, digest, ec.ECDSA(prehashed))


def check_uuid(value: str, option: str = "--cert-uuid") -> str:
    try:
        return str(uuid.UUID(value.strip().rstrip("/").rsplit("/", 1)[-1]))
    except ValueError:
        raise SignatureFormatError(f"{option} {value!r} is not a Barbican secret UUID") from None
