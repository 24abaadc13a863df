"""Keys, certificates and openssl runs shared by the sign/verify tests (real openssl, real crypto)."""

from __future__ import annotations

import datetime
import functools
import subprocess
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa
from cryptography.x509.oid import NameOID

from sign import certs, keys

UTC = datetime.timezone.utc


@functools.lru_cache(maxsize=None)
def rsa_key(bits: int, which: int = 0) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


@functools.lru_cache(maxsize=None)
def ec_key(curve: str, which: int = 0) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(keys.CURVES[curve]())


@functools.lru_cache(maxsize=None)
def dsa_key() -> dsa.DSAPrivateKey:
    return dsa.generate_private_key(key_size=2048)


def write_key(path: Path, key) -> Path:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)
    return path


def write_cert(path: Path, cert: x509.Certificate) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def cert_for(key, days: int = 30, start_offset_days: int = 0, cn: str = "test signer") -> x509.Certificate:
    """A keytools-style self-signed CA cert, shifted in time (negative offset + few days = expired)."""
    now = datetime.datetime.now(UTC) + datetime.timedelta(days=start_offset_days)
    return certs.self_signed(key, cn, None, days, now=now)


def plain_cert_for(key, cn: str = "plain") -> x509.Certificate:
    """What 'openssl x509 -req -signkey' makes: self-signed, no extensions."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(UTC)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=14)).sign(key, hashes.SHA256()))


def leaf_signed_by(ca_key, ca_cert: x509.Certificate, leaf_key, cn: str = "leaf") -> x509.Certificate:
    now = datetime.datetime.now(UTC)
    return (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(ca_cert.subject).public_key(leaf_key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256()))


def openssl(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["openssl", *map(str, args)], capture_output=True, check=check)


def pubkey_file(tmp: Path, cert_path: Path) -> Path:
    out = tmp / (cert_path.stem + ".pub.pem")
    out.write_bytes(openssl("x509", "-in", cert_path, "-pubkey", "-noout").stdout)
    return out
