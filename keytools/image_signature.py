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

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import queue
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, BinaryIO

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, padding, rsa, utils

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
_CRYPTO_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "SHA-224": hashes.SHA224, "SHA-256": hashes.SHA256, "SHA-384": hashes.SHA384, "SHA-512": hashes.SHA512}

# Key types cursive registers (no plain "RSA", no P-256). DSA is accepted for verification only.
RSA_PSS = "RSA-PSS"
DSA = "DSA"
ECC_SECP384R1 = "ECC_SECP384R1"
ECC_SECP521R1 = "ECC_SECP521R1"
ECC_CURVES: dict[str, type[ec.EllipticCurve]] = {ECC_SECP384R1: ec.SECP384R1, ECC_SECP521R1: ec.SECP521R1}
VERIFY_KEY_TYPES = (RSA_PSS, DSA, ECC_SECP384R1, ECC_SECP521R1)
SIGN_KEY_TYPES = (RSA_PSS, ECC_SECP384R1, ECC_SECP521R1)

MIN_RSA_BITS = 2048
CHUNK_SIZE = 1024 * 1024
_BUFFERS = 4  # at most CHUNK_SIZE * _BUFFERS bytes of image data in memory, at any image size

PublicKey = rsa.RSAPublicKey | dsa.DSAPublicKey | ec.EllipticCurvePublicKey
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


class SignatureFormatError(ValueError):
    """A property value that cursive would refuse before reading any data (bad input)."""


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


@dataclass
class Digest:
    value: bytes
    size: int


def _check_abort(abort: threading.Event | None) -> None:
    if abort is not None and abort.is_set():
        from keytools.overlap import HashAborted

        raise HashAborted()


def hash_chunks(chunks: Iterable[bytes | memoryview], method: str,
                progress: Callable[[int], None] | None = None, abort: threading.Event | None = None) -> Digest:
    """Hash a stream of chunks (a download) without keeping more than one chunk; stop early
    (HashAborted) once ``abort`` is set."""
    hasher = new_hasher(method)
    size = 0
    for chunk in chunks:
        _check_abort(abort)
        hasher.update(chunk)
        size += len(chunk)
        if progress:
            progress(len(chunk))
    return Digest(hasher.digest(), size)


def read_ahead_pays() -> bool:
    """A reader thread only helps when a core is idle: then hashing never waits for data (about
    10% faster). On a busy machine the two threads wait for each other's time slices and lose
    about 30%, so the plain loop is used there."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return cores >= 2 and os.getloadavg()[0] < cores - 1


def hash_file(handle: BinaryIO | int, method: str, progress: Callable[[int], None] | None = None,
              chunk_size: int = CHUNK_SIZE, read_ahead: bool | None = None,
              abort: threading.Event | None = None) -> Digest:
    """Hash an open file from its current position in constant memory (a few fixed buffers).

    ``read_ahead`` (default: ``read_ahead_pays()``) reads in a second thread while this one
    hashes; both release the GIL, so with a free core this runs at the speed of the hash alone.
    ``abort`` (a check running beside the hash failed) stops it at the next chunk: HashAborted.
    """
    fd = handle if isinstance(handle, int) else handle.fileno()
    with contextlib.suppress(OSError, AttributeError):
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)  # larger kernel read-ahead, cold cache
    hasher = new_hasher(method)
    if read_ahead is None:
        read_ahead = read_ahead_pays()
    if not read_ahead:
        return _hash_plain(fd, hasher, progress, chunk_size, abort)
    return _hash_read_ahead(fd, hasher, progress, chunk_size, abort)


def _hash_plain(fd: int, hasher: Any, progress: Callable[[int], None] | None, chunk_size: int,
                abort: threading.Event | None = None) -> Digest:
    buf = bytearray(chunk_size)
    view = memoryview(buf)
    size = 0
    with open(fd, "rb", buffering=0, closefd=False) as raw:
        while n := raw.readinto(buf):  # type: ignore[attr-defined]
            _check_abort(abort)
            hasher.update(view[:n])
            size += n
            if progress:
                progress(n)
    return Digest(hasher.digest(), size)


def _hash_read_ahead(fd: int, hasher: Any, progress: Callable[[int], None] | None, chunk_size: int,
                     abort: threading.Event | None = None) -> Digest:
    free: queue.Queue[bytearray] = queue.Queue()
    full: queue.Queue[tuple[bytearray | None, int, BaseException | None]] = queue.Queue()
    for _ in range(_BUFFERS):
        free.put(bytearray(chunk_size))
    stop = threading.Event()

    def reader() -> None:
        try:
            with open(fd, "rb", buffering=0, closefd=False) as raw:
                while not stop.is_set():
                    buf = free.get()
                    n = raw.readinto(buf)  # type: ignore[attr-defined]
                    full.put((buf, n or 0, None))
                    if not n:
                        return
        except BaseException as exc:  # handed to the hashing thread, raised there
            full.put((None, 0, exc))

    thread = threading.Thread(target=reader, name="keytools-read", daemon=True)
    thread.start()
    size = 0
    try:
        while True:
            buf, n, error = full.get()
            if error is not None:
                raise error
            if not n:
                break
            _check_abort(abort)
            hasher.update(memoryview(buf)[:n])  # type: ignore[index]
            size += n
            free.put(buf)  # type: ignore[arg-type]
            if progress:
                progress(n)
    finally:
        stop.set()
        free.put(bytearray(0))  # unblock a reader waiting for a buffer (a 0-byte read ends it)
        thread.join()
    return Digest(hasher.digest(), size)


def open_image(path: str | os.PathLike[str]) -> tuple[BinaryIO, int]:
    """Open a regular, non-empty image file for reading (UsageError, exit 2, for anything else)."""
    import stat

    from keytools.errors import UsageError

    try:
        handle = open(path, "rb", buffering=0)  # noqa: SIM115 - handed to the caller
    except FileNotFoundError:
        raise UsageError(f"image {path} does not exist", "Check the path") from None
    except IsADirectoryError:
        raise UsageError(f"image {path} is a directory", "Pass the image file") from None
    except OSError as exc:
        raise UsageError(f"cannot read image {path}: {exc.strerror}", "Check its permissions") from None
    info = os.fstat(handle.fileno())
    if not stat.S_ISREG(info.st_mode):
        handle.close()
        raise UsageError(f"image {path} is not a regular file", "Pass the image file itself")
    if info.st_size == 0:
        handle.close()
        raise UsageError(f"image {path} is empty", "Check that the image was written completely")
    return handle, info.st_size


def load_certificate(data: bytes, where: str = "certificate") -> x509.Certificate:
    """A PEM or DER X.509 certificate; ValueError naming ``where`` if it is neither."""
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise ValueError(f"{where} is not a PEM or DER X.509 certificate ({exc})") from None


def validity_problem(cert: x509.Certificate, now: Any = None) -> str | None:
    """Why ``cert`` is outside its validity dates right now (cursive's is_within_valid_dates), or None."""
    import datetime

    now = now or datetime.datetime.now(datetime.timezone.utc)
    if now > cert.not_valid_after_utc:
        return f"expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC"
    if now < cert.not_valid_before_utc:
        return f"is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC"
    return None


def public_keys_equal(a: Any, b: Any) -> bool:
    from cryptography.hazmat.primitives import serialization

    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return bool(a.public_bytes(*fmt) == b.public_bytes(*fmt))


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 fingerprint as ``openssl x509 -fingerprint -sha256`` prints it."""
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def check_uuid(value: str, option: str = "--cert-uuid") -> str:
    import uuid

    try:
        return str(uuid.UUID(value.strip().rstrip("/").rsplit("/", 1)[-1]))
    except ValueError:
        raise SignatureFormatError(f"{option} {value!r} is not a Barbican secret UUID") from None


def fetch_certificate_pem(session: Any, cert_uuid: str) -> bytes:
    """The payload of certificate secret ``cert_uuid`` from Barbican, as stored (PEM).

    Raises keytools errors: CertificateError (exit 3) for an unknown id or a secret that is not a
    certificate, ServiceUnavailable (4) when Barbican cannot be reached, Forbidden (5) when the
    caller may not read it.
    """
    from keytools import keymanager, service_errors
    from keytools.errors import CertificateError, UsageError

    try:
        cert_uuid = check_uuid(cert_uuid, "certificate id")
    except SignatureFormatError as exc:
        raise UsageError(str(exc), "Pass the UUID printed by 'keytools cert store'") from None
    with service_errors.translated("Barbican", f"reading certificate {cert_uuid}"):
        try:
            secret = keymanager.barbican_client(session).secrets.get(cert_uuid)
            secret_type = secret.secret_type
            payload = secret.payload
        except Exception as exc:
            if service_errors.http_status(exc) == 404:
                raise CertificateError(f"certificate not found in Barbican with ID {cert_uuid}",
                                       "Check the UUID ('keytools cert list') and the project "
                                       "you authenticate in") from None
            raise
    if secret_type != "certificate":
        raise CertificateError(f"Barbican secret {cert_uuid} is a {secret_type!r} secret, not a "
                               "certificate", "Pass the UUID printed by 'keytools cert store'")
    return payload if isinstance(payload, bytes) else str(payload).encode()
