"""Signing keys: generate one Glance and Nova accept, read one from a file, refuse weak ones."""

from __future__ import annotations

import os
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa

from keytools import image_signature as sig
from keytools import redaction
from keytools.errors import UsageError
from keytools.fileutil import read_user_file

RSA_SIZES = (2048, 3072, 4096)
CURVES: dict[str, type[ec.EllipticCurve]] = {"secp384r1": ec.SECP384R1, "secp521r1": ec.SECP521R1}


def generate_key(key_type: str = "rsa", bits: int = 3072, curve: str = "secp384r1",
                 allow_weak_key: bool = False) -> sig.PrivateKey:
    if key_type == "rsa":
        if bits < sig.MIN_RSA_BITS and not allow_weak_key:
            raise UsageError(f"--bits {bits} is too weak for signing", "Use 2048, 3072 or 4096 "
                             "(--allow-weak-key only for legacy test setups)")
        if bits not in RSA_SIZES and not (allow_weak_key and bits in (1024, 1536)):
            raise UsageError(f"--bits {bits} is not supported", "Use 2048, 3072 or 4096")
        return rsa.generate_private_key(public_exponent=65537, key_size=bits)
    if key_type == "ec":
        if curve not in CURVES:
            raise UsageError(f"--curve {curve} is not accepted by Glance and Nova",
                             f"Use {' or '.join(CURVES)}")
        return ec.generate_private_key(CURVES[curve]())
    raise UsageError(f"--key-type {key_type} is not supported", "Use rsa or ec")


def read_private_key(path: str | os.PathLike[str], password: bytes | None = None) -> sig.PrivateKey:
    data = read_user_file(path, "key", "Check the path and permissions")
    try:
        # OpenSSL's RSA consistency check costs ~0.25 s for 3072 bits; signer.sign_file verifies
        # every signature it makes instead, which catches an inconsistent key just as surely.
        if b"-----BEGIN" in data:
            key = serialization.load_pem_private_key(data, password=password, unsafe_skip_rsa_key_validation=True)
        else:
            key = serialization.load_der_private_key(data, password=password, unsafe_skip_rsa_key_validation=True)
    except TypeError:
        raise UsageError(f"{path} is an encrypted private key", "Pass --key-password-file") from None
    except ValueError as exc:
        msg = str(exc).split("\n")[0]
        raise UsageError(f"{path} is not a usable private key ({msg})",
                         "Pass the PEM private key written by 'keytools cert create' or openssl") from None
    if isinstance(key, dsa.DSAPrivateKey):
        raise UsageError(f"{path}: DSA keys are accepted for verification only",
                         "Sign with an RSA (RSA-PSS) or ECC P-384/P-521 key")
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise UsageError(f"{path}: {type(key).__name__} cannot sign Glance images",
                         "Use an RSA or ECC P-384/P-521 key")
    return key


def check_key_strength(public_key: Any, where: str, allow_weak_key: bool) -> None:
    if isinstance(public_key, (rsa.RSAPublicKey, dsa.DSAPublicKey)) and \
            public_key.key_size < sig.MIN_RSA_BITS and not allow_weak_key:
        raise UsageError(f"{where}: {sig.key_description(public_key)}-bit key is too weak",
                         f"Use a key of at least {sig.MIN_RSA_BITS} bits ('keytools cert create'); "
                         "--allow-weak-key accepts it for legacy setups")


def read_password_file(path: str | None) -> bytes | None:
    """The password of an encrypted key (``--key-password-file``), registered for redaction."""
    if not path:
        return None
    password = read_user_file(path, "--key-password-file", None).rstrip(b"\r\n")
    redaction.register_secret(password)
    return password
