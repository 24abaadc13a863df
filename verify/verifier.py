"""Verify a Glance image signature exactly as Glance (upload) and Nova (download) do with cursive.

Steps, in cursive's order so the same inputs fail the same way: all four properties present;
signature base64; hash method; key type; certificate from the key manager (PEM, as castellan
reads it) whose public key fits the key type. Then, like Nova, the certificate must be within its
dates and, when trusted certificate ids are given, chain to one of them. Only then is the data
read, once, in constant memory, and the digest verified (Prehashed; RSA-PSS with MGF1 and the
maximum salt length).

Two things follow cryptography/OpenSSL rather than a stricter reading: an RSA signature shorter
than the modulus (leading zero bytes dropped by the signer) is handed to OpenSSL, which accepts it
as Glance and Nova do. And a certificate outside its dates is still refused (exit 3), but only
after the signature is checked, because the answer differs upstream: Glance never looks at the
dates, Nova only when it validates the certificate; the verdict says what each would do.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import rsa

from keytools import image_signature as sig
from keytools import overlap, untrusted_json
from keytools.fileutil import MAX_SMALL, read_user_file
from keytools.errors import CertificateError, KeytoolsError, ProblemsFound, UsageError
from verify import chain

CertSource = Callable[[str], x509.Certificate]


class SignatureMismatch(ProblemsFound):
    """The data does not match the signature (tampered image, another key): exit 1."""


@dataclass(frozen=True)
class Policy:
    """What a valid signature must also satisfy, beyond matching the data."""

    trusted_cert_uuids: tuple[str, ...] = ()  # Nova's trusted certificate ids: chain to one of them
    check_dates: bool = True  # Nova's validation refuses certificates outside their dates


@dataclass
class Prepared:
    """A verifier ready for data: everything checked that can be checked before reading it."""

    signature: bytes
    hash_method: str
    key_type: str
    cert_uuid: str | None
    cert: x509.Certificate
    notes: list[str] = field(default_factory=list)
    chain: list[str] = field(default_factory=list)
    label: str = "the certificate"
    date_problem: str | None = None  # outside its dates: refused, after the signature is checked

    def details(self) -> dict[str, Any]:
        return {"hash_method": self.hash_method, "key_type": self.key_type, "certificate_uuid": self.cert_uuid,
                "certificate_subject": self.cert.subject.rfc4514_string(),
                "certificate_sha256_fingerprint": sig.fingerprint(self.cert),
                "certificate_not_after": self.cert.not_valid_after_utc.isoformat(),
                "trusted_chain": self.chain or None, "notes": self.notes}


def properties_from_json(value: str) -> dict[str, Any]:
    """``--properties``: a JSON object, or a file holding one (``-`` is stdin). Accepts the output of
    ``keytools sign -f json`` and ``openstack image show -f json`` (properties nested or not)."""
    import sys

    text: str | bytes = value
    source = "--properties"
    if value == "-":
        text, source = sys.stdin.read(MAX_SMALL + 1), "--properties - (stdin)"
    elif not value.lstrip().startswith("{"):
        text = read_user_file(value, "--properties file", "Pass a JSON object or a file holding one")
        source = f"--properties file {value}"
    data = untrusted_json.loads(text, source, hint="Pass a JSON object of image properties")
    if not isinstance(data, dict):
        raise UsageError(f"{source} is not a JSON object", "Pass a JSON object of image properties")
    nested = data.get("properties")
    if isinstance(nested, dict) and not any(k in data for k in sig.PROPERTIES):
        data = nested
    return data


@dataclass(frozen=True)
class Properties:
    """The four properties, checked as cursive does before it asks the key manager."""

    signature: bytes
    hash_method: str
    key_type: str
    cert_uuid: str | None


def prepare(properties: dict[str, Any], cert_source: CertSource, policy: Policy = Policy(),
            trusted_source: CertSource | None = None, cert_label: str | None = None) -> Prepared:
    """Build the verifier (cursive's get_verifier) and apply the certificate policy."""
    return prepare_certificate(parse(properties, cert_label), cert_source, policy, trusted_source, cert_label)


def parse(properties: dict[str, Any], cert_label: str | None = None) -> Properties:
    """Everything that needs no key manager: runs before the data is read."""
    wrong = [p for p in sig.PROPERTIES if properties.get(p) is not None and not isinstance(properties[p], str)]
    if wrong:  # Glance stores property values as strings; a list or number is not a signature property
        raise UsageError(f"property {', '.join(wrong)} is not a string",
                         "Pass the img_signature* properties as strings (keytools sign prints them)")
    missing = [p for p in sig.PROPERTIES if not properties.get(p)]
    if cert_label and sig.CERT_UUID in missing:
        missing.remove(sig.CERT_UUID)  # a local --cert stands in for the certificate id
    if missing:
        raise UsageError(f"missing property {', '.join(missing)}: Glance and Nova verify nothing unless "
                         "all four img_signature* properties are set",
                         "Pass all four (keytools sign prints them)")
    try:
        signature = sig.decode_signature(str(properties[sig.SIGNATURE]))
        hash_method = str(properties[sig.HASH_METHOD])
        sig.hash_algorithm(hash_method)
        key_type = sig.check_key_type(str(properties[sig.KEY_TYPE]))
    except sig.SignatureFormatError as exc:
        raise UsageError(f"{exc}", "Fix the img_signature* properties") from None
    cert_uuid = properties.get(sig.CERT_UUID) or None
    if cert_uuid and not cert_label:
        try:
            cert_uuid = sig.check_uuid(str(cert_uuid), sig.CERT_UUID)
        except sig.SignatureFormatError as exc:
            raise CertificateError(str(exc), "Glance and Nova cannot find such a certificate") from None
    return Properties(signature, hash_method, key_type, cert_uuid)


def prepare_certificate(props: Properties, cert_source: CertSource, policy: Policy = Policy(),
                        trusted_source: CertSource | None = None, cert_label: str | None = None) -> Prepared:
    """The certificate part (key manager round trips): may run while the data is hashed."""
    signature, hash_method, key_type, cert_uuid = (props.signature, props.hash_method, props.key_type,
                                                   props.cert_uuid)
    cert = cert_source(str(cert_uuid))
    label = cert_label or f"certificate {cert_uuid}"
    public = cert.public_key()
    if not sig.key_matches_type(public, key_type):
        raise SignatureMismatch(f"{label} holds a {sig.key_description(public)} key, which cannot "
                                f"verify img_signature_key_type {key_type}",
                                "Check img_signature_certificate_uuid: it names another certificate")
    prepared = Prepared(signature, hash_method, key_type, cert_uuid, cert, label=label)
    if not cert_uuid:
        prepared.notes.append(f"no {sig.CERT_UUID}: checked against {label} only; Glance and Nova "
                              "verify nothing unless all four img_signature* properties are set")
    expected = _signature_size(public)
    if expected and len(signature) > expected:  # OpenSSL refuses these whatever the data
        raise SignatureMismatch(f"the signature is {len(signature)} bytes, a signature by "
                                f"{label} ({sig.key_description(public)}) has at most {expected}: made "
                                "with another key", "Copy img_signature from the image it belongs to")
    if policy.check_dates:
        prepared.date_problem = sig.validity_problem(cert)
    if prepared.date_problem:
        return prepared  # refused after the data is checked; Nova's validation stops at the dates
    if policy.trusted_cert_uuids:
        trusted, unreadable = _load_trusted(policy.trusted_cert_uuids, trusted_source or cert_source)
        result = chain.validate(cert, str(cert_uuid or label), trusted, unreadable)
        prepared.chain = result.chain
        prepared.notes.extend(f"trusted certificate skipped: {s}" for s in result.skipped)
    elif cert.subject == cert.issuer and chain.can_sign_certificates(cert):
        prepared.notes.append(
            f"{label} is self-signed without CA:TRUE/keyCertSign: Nova's certificate validation "
            "(trusted certificate ids) will reject it; 'keytools cert create' makes one that passes")
    return prepared


def _signature_size(public: Any) -> int | None:
    if isinstance(public, rsa.RSAPublicKey):
        return (public.key_size + 7) // 8
    return None


def _load_trusted(uuids: Iterable[str], source: CertSource) -> tuple[list[tuple[str, x509.Certificate]], list[str]]:
    """Like cursive: trusted certificates that cannot be read are skipped (and reported)."""
    trusted, unreadable = [], []
    for uuid in uuids:
        try:
            trusted.append((uuid, source(uuid)))
        except (CertificateError, UsageError):
            unreadable.append(uuid)
    return trusted, unreadable


def upstream_verdicts(signature_valid: bool, date_problem: str | None) -> dict[str, str]:
    """What Glance (upload), Nova without and Nova with certificate validation would do.

    Glance's check (cursive get_verifier) and Nova's without validation look at the signature only;
    Nova's validation (cursive verify_certificate) refuses a certificate outside its dates first.
    """
    by_signature = "accept" if signature_valid else "reject: signature does not verify"
    validated = by_signature
    if date_problem:
        validated = f"reject: certificate {date_problem}"
    return {"glance": by_signature, "nova": by_signature, "nova_certificate_validation": validated}


def check(prepared: Prepared, digest: sig.Digest, what: str) -> dict[str, Any]:
    """Verify the digest; return the verdict's details or raise SignatureMismatch (or, for a
    certificate outside its dates, CertificateError carrying the signature's own verdict)."""
    details: dict[str, Any] = {"size": digest.size, "digest": digest.value.hex()}
    try:
        sig.verify_digest(prepared.cert.public_key(), prepared.signature, digest.value,
                          prepared.hash_method, prepared.key_type)
        valid = True
    except InvalidSignature:
        valid = False
    details["signature_valid"] = valid
    if prepared.date_problem:
        details["upstream"] = upstream_verdicts(valid, prepared.date_problem)
        glance = ("Glance (which ignores certificate dates) and Nova without certificate validation "
                  "would accept it" if valid else "Glance and Nova would reject it for the signature too")
        err: KeytoolsError = CertificateError(
            f"{prepared.label} {prepared.date_problem}; the signature itself "
            f"{'verifies' if valid else 'does NOT verify'} for {what}",
            f"{glance}; Nova with certificate validation refuses it. Sign again with a certificate "
            "in its validity period", details=details)
        raise err
    if not valid:
        expected = _signature_size(prepared.cert.public_key())
        why = "tampered data, or signed with another certificate's key"
        if expected and len(prepared.signature) < expected:
            why = (f"the signature is {len(prepared.signature)} bytes, {expected} with the leading zero "
                   "bytes a signer may drop: truncated, or made with another key")
        err = SignatureMismatch(f"signature verification failed for {what}: the data does not match "
                                f"img_signature ({why})", "Do not use this image; get it again from its publisher",
                                details=details)
        raise err
    return details


@dataclass
class Pending:
    """The certificate part of ``prepare`` running in a thread (``start``) while the data is hashed."""

    props: Properties
    check: overlap.Check[Prepared]

    @property
    def hash_method(self) -> str:
        return self.props.hash_method


def start(props: Properties, cert_source: CertSource, policy: Policy = Policy(),
          trusted_source: CertSource | None = None, cert_label: str | None = None) -> Pending:
    """``prepare_certificate`` in the background: the key manager round trips overlap the hash."""
    return Pending(props, overlap.Check(lambda: prepare_certificate(props, cert_source, policy, trusted_source,
                                                                    cert_label), name="keytools-cert-check"))


def _settle(prepared: Prepared | Pending,
            hashing: Callable[[threading.Event | None], sig.Digest]) -> tuple[Prepared, sig.Digest]:
    """Hash while the certificate check (if still running) finishes; its failure stops the hash
    and is the error raised."""
    if isinstance(prepared, Prepared):
        return prepared, hashing(None)
    try:
        digest = hashing(prepared.check.failed)
    except overlap.HashAborted:
        prepared.check.result()  # raises the check's error
        raise
    return prepared.check.result(), digest


def verify_file(path: str | os.PathLike[str], prepared: Prepared | Pending,
                progress: Callable[[int], None] | None = None,
                on_prepared: Callable[[Prepared], None] | None = None) -> dict[str, Any]:
    """Verify a file; ``prepared`` may still be running beside the hash (``start``)."""
    handle, _size = sig.open_image(path)
    with handle:
        try:
            done, digest = _settle(prepared, lambda abort: sig.hash_file(handle, prepared.hash_method, progress,
                                                                         abort=abort))
        except OSError as exc:
            raise UsageError(f"cannot read image {path}: {exc.strerror or exc}") from None
    if on_prepared:
        on_prepared(done)
    return check(done, digest, str(path))


def verify_chunks(chunks: Iterable[bytes], prepared: Prepared | Pending, what: str,
                  progress: Callable[[int], None] | None = None,
                  on_prepared: Callable[[Prepared], None] | None = None) -> dict[str, Any]:
    done, digest = _settle(prepared, lambda abort: sig.hash_chunks(chunks, prepared.hash_method, progress, abort))
    if on_prepared:
        on_prepared(done)
    if digest.size == 0:
        raise UsageError(f"{what} has no data", "Upload the image data first")
    return check(done, digest, what)



# ---- certificate sources -----------------------------------------------------------------------

def barbican_source(session: Any) -> CertSource:
    """Certificates as Glance and Nova get them: castellan reads the secret payload as PEM."""
    return pem_source(lambda uuid: sig.fetch_certificate_pem(session, uuid))


def forked_barbican_source(session_factory: Callable[[], Any], uuids: Iterable[str]) -> CertSource:
    """``barbican_source`` with ``uuids`` fetched now, in a forked process (keytools.overlap), so
    the session's imports and round trips run on another core while this one hashes. Each
    certificate's error is raised when that certificate is asked for, as ``barbican_source`` would."""
    wanted = tuple(dict.fromkeys(uuids))

    def fetch_all() -> dict[str, tuple[bytes | None, BaseException | None]]:
        session = session_factory()
        fetched: dict[str, tuple[bytes | None, BaseException | None]] = {}
        for uuid in wanted:
            try:
                fetched[uuid] = (sig.fetch_certificate_pem(session, uuid), None)
            except KeytoolsError as exc:
                fetched[uuid] = (None, overlap.portable(exc))
        return fetched

    result = overlap.forked(fetch_all)

    def fetch(uuid: str) -> bytes:
        pem, error = result()[uuid]  # only the prefetched ids are ever asked for
        if error is not None:
            raise error
        assert pem is not None
        return pem

    return pem_source(fetch)


def pem_source(fetch_pem: Callable[[str], bytes]) -> CertSource:
    """Certificates from PEM payloads (Barbican's), refused as castellan would refuse them."""

    def get(uuid: str) -> x509.Certificate:
        pem = fetch_pem(uuid)
        try:
            return sig.load_certificate(pem, f"Barbican secret {uuid}", pem_only=True)
        except ValueError as exc:
            raise CertificateError(f"{exc}: Glance and Nova (castellan) cannot read it",
                                   "Store it with 'keytools cert store'") from None

    return get


def file_source(path: str) -> CertSource:
    def get(_uuid: str) -> x509.Certificate:
        return sig.read_certificate_file(path, "--cert", f"--cert {path}", "Pass a PEM or DER certificate")

    return get


def glance_image(session: Any, image_id: str) -> tuple[Any, dict[str, Any]]:
    """The glance client and the image record (with its properties)."""
    from glanceclient import client as glance

    from keytools.service_errors import http_status, translate

    client = glance.Client("2", session=session)
    try:
        image = client.images.get(image_id)
    except Exception as exc:
        if http_status(exc) == 404:
            raise UsageError(f"image {image_id} not found in Glance", "Check the id with 'openstack image list'") from None
        raise translate(exc, "Glance", f"reading image {image_id}") from exc
    return client, dict(image)


def download_chunks(client: Any, image_id: str) -> Iterable[bytes]:
    from keytools.service_errors import translate

    try:
        body = client.images.data(image_id, do_checksum=False)
    except Exception as exc:
        raise translate(exc, "Glance", f"downloading image {image_id}") from exc
    if body is None:
        return []

    def chunks() -> Iterable[bytes]:
        try:
            yield from body
        except KeytoolsError:
            raise
        except Exception as exc:
            raise translate(exc, "Glance", f"downloading image {image_id}") from exc

    return chunks()

