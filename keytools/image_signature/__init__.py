"""Glance image signatures: the names and primitives that sign/ and verify/ share.

The values are cursive's, bit for bit (cursive/signature_utils.py), because Glance verifies at
upload and Nova at download with cursive: property names, key types (``RSA-PSS``, ``DSA``,
``ECC_SECP384R1``, ``ECC_SECP521R1``), hash methods with a dash, RSA-PSS with MGF1 over the same
hash and the maximum salt length (what ``openssl dgst -sigopt rsa_padding_mode:pss`` writes and
what cursive verifies), base64 decoded the way oslo.serialization does, certificates read from the
key manager as PEM (castellan converts them to DER).

Data is hashed in constant memory (fixed 1 MiB buffers; with a free core a reader thread fills
them while the caller's thread hashes), and the digest is signed or verified as ``Prehashed``.
"""

# One module per job; re-exported here so sign/ and verify/ write ``sig.NAME``.
from keytools.errors import SignatureFormatError
from keytools.image_signature.barbican import fetch_certificate_pem
from keytools.image_signature.certificates import (fingerprint, load_certificate, public_keys_equal,
                                                   read_certificate_file, validity_problem)
from keytools.image_signature.constants import (CERT_UUID, DEFAULT_HASH_METHOD, DSA, ECC_CURVES, ECC_SECP384R1,
                                                ECC_SECP521R1, HASH_METHOD, HASH_METHODS, KEY_TYPE,
                                                MIN_RSA_BITS, PROPERTIES, RSA_PSS, SIGN_KEY_TYPES, SIGNATURE,
                                                VERIFY_KEY_TYPES, PrivateKey, PublicKey)
from keytools.image_signature.crypto import (check_key_type, check_uuid, decode_signature, encode_signature,
                                             hash_algorithm, key_description, key_matches_type, key_type_for,
                                             new_hasher, pss_padding, sign_digest, verify_digest)
from keytools.image_signature.hashing import (BUFFERS, CHUNK_SIZE, Digest, hash_chunks, hash_file, open_image,
                                              read_ahead_pays)

__all__ = ["BUFFERS", "CERT_UUID", "CHUNK_SIZE", "DEFAULT_HASH_METHOD", "DSA", "ECC_CURVES", "ECC_SECP384R1",
           "ECC_SECP521R1", "HASH_METHOD", "HASH_METHODS", "KEY_TYPE", "MIN_RSA_BITS", "PROPERTIES", "RSA_PSS",
           "SIGN_KEY_TYPES", "SIGNATURE", "VERIFY_KEY_TYPES", "Digest", "PrivateKey", "PublicKey",
           "SignatureFormatError", "check_key_type", "check_uuid", "decode_signature", "encode_signature",
           "fetch_certificate_pem", "fingerprint", "hash_algorithm", "hash_chunks", "hash_file",
           "key_description", "key_matches_type", "key_type_for", "load_certificate", "new_hasher",
           "open_image", "pss_padding", "public_keys_equal", "read_ahead_pays", "read_certificate_file",
           "sign_digest", "validity_problem", "verify_digest"]
