"""`keytools verify IMAGE --cert FILE --properties FILE`: certificates, signatures and properties
that others made. The first byte picks what ``data`` becomes; the rest stays valid, so a mutation
reaches the code behind the parts that still parse.

  0: the certificate file (PEM or DER)      1: the --properties file (JSON)
  2: the signature's bytes (base64-encoded)  3: the four property values, split on b"|"
"""

from __future__ import annotations

import base64
import datetime
import json

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.fuzz import contract

IMAGE = b"keytools fuzz image\n" * 64
UUID = "0b0e9e34-6f6c-4b4e-9a8e-4f2b4d1c9a11"


def _material() -> tuple[bytes, bytes]:
    """A fixed EC P-384 key (the same in every run, so saved corpora stay meaningful) and its cert."""
    key = ec.derive_private_key(0x6B657974_6F6F6C73_2066757A_7A, ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "keytools fuzz signer")])
    start = datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(start).not_valid_after(start + datetime.timedelta(days=36500))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, True, False, False, False), critical=True)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM), key.sign(IMAGE, ec.ECDSA(hashes.SHA256()))


CERT_PEM, SIGNATURE = _material()
CERT_DER = x509.load_pem_x509_certificate(CERT_PEM).public_bytes(serialization.Encoding.DER)


def _props(signature: bytes = SIGNATURE) -> dict[str, str]:
    return {"img_signature": base64.b64encode(signature).decode(), "img_signature_hash_method": "SHA-256",
            "img_signature_key_type": "ECC_SECP384R1", "img_signature_certificate_uuid": UUID}


SEEDS: list[bytes] = [
    b"\x00" + CERT_PEM,
    b"\x00" + CERT_DER,
    b"\x01" + json.dumps(_props()).encode(),
    b"\x01" + json.dumps({"id": "x", "properties": _props()}).encode(),
    b"\x02" + SIGNATURE,
    b"\x03" + "|".join(_props().values()).encode(),
]


def fuzz_one(data: bytes) -> None:
    mode, body = (data[0] % 4, data[1:]) if data else (0, b"")
    cert, props = CERT_PEM, json.dumps(_props()).encode()
    if mode == 0:
        cert = body
    elif mode == 1:
        props = body
    elif mode == 2:
        props = json.dumps(_props(body)).encode()
    else:
        values = body.decode("utf-8", "replace").split("|")
        props = json.dumps(dict(zip(_props(), values))).encode()
    image = contract.write("image.img", IMAGE)
    cert_file = contract.write("cert.pem", cert)
    props_file = contract.write("props.json", props)
    args = ["verify", image, "--cert", cert_file, "--properties", props_file]
    contract.run([*args, "-f", "json"], json_output=True)
    contract.run(args)
