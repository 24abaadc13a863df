"""Glance's img_signature* property names and the values cursive accepts, as named constants.

Shared by sign/ and verify/ so both spell every name and value exactly as cursive does.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa

# Glance image properties (cursive SIGNATURE, HASH_METHOD, KEY_TYPE, CERT_UUID).
SIGNATURE = "img_signature"
HASH_METHOD = "img_signature_hash_method"
KEY_TYPE = "img_signature_key_type"
CERT_UUID = "img_signature_certificate_uuid"
PROPERTIES = (SIGNATURE, HASH_METHOD, KEY_TYPE, CERT_UUID)

# Hash methods cursive accepts -> hashlib / cryptography names. The dash is required.
HASH_METHODS: dict[str, str] = {"SHA-224": "sha224", "SHA-256": "sha256", "SHA-384": "sha384",
                                "SHA-512": "sha512"}
DEFAULT_HASH_METHOD = "SHA-256"

# Key types cursive registers (no plain "RSA", no P-256). DSA is accepted for verification only.
RSA_PSS = "RSA-PSS"
DSA = "DSA"
ECC_SECP384R1 = "ECC_SECP384R1"
ECC_SECP521R1 = "ECC_SECP521R1"
ECC_CURVES: dict[str, type[ec.EllipticCurve]] = {ECC_SECP384R1: ec.SECP384R1, ECC_SECP521R1: ec.SECP521R1}
VERIFY_KEY_TYPES = (RSA_PSS, DSA, ECC_SECP384R1, ECC_SECP521R1)
SIGN_KEY_TYPES = (RSA_PSS, ECC_SECP384R1, ECC_SECP521R1)

MIN_RSA_BITS = 2048

PublicKey = rsa.RSAPublicKey | dsa.DSAPublicKey | ec.EllipticCurvePublicKey
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
