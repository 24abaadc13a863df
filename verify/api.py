"""``verify_image``: verify a file or a Glance image as Glance and Nova do, as one library call.

It returns a ``VerifyResult`` for a valid signature. Every failure is a KeytoolsError whose
``details`` hold what was established before it (certificate, digest, the signature's own
verdict for a certificate outside its dates); ``VerifyResult.failed`` turns it into the report.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from keytools import image_signature as sig
from keytools.errors import EXIT_PROBLEMS, KeytoolsError, UsageError
from keytools.progress import ProgressFactory, no_progress
from verify import verifier

@dataclass
class VerifyResult:
    """The verdict (valid, invalid, error) and what was checked; every field is always serialised."""

    image: str
    verdict: str = "valid"
    message: str = ""
    size: int | None = None
    hash_method: str | None = None
    key_type: str | None = None
    certificate_uuid: str | None = None
    certificate_subject: str | None = None
    certificate_sha256_fingerprint: str | None = None
    certificate_not_after: str | None = None
    trusted_chain: list[str] | None = None
    digest: str | None = None
    signature_valid: bool | None = None
    upstream: dict[str, str] | None = None  # a certificate outside its dates: Glance's and Nova's verdicts
    notes: list[str] = field(default_factory=list)
    hint: str | None = None

    @classmethod
    def from_details(cls, image: str, details: Mapping[str, Any], **values: Any) -> VerifyResult:
        known = {f.name for f in fields(cls)}
        return cls(image, **{k: v for k, v in details.items() if k in known and k != "image"}, **values)

    @classmethod
    def failed(cls, image: str, error: KeytoolsError) -> VerifyResult:
        """The report of a failed verification: invalid (exit 1) or error (anything else)."""
        verdict = "invalid" if error.exit_code == EXIT_PROBLEMS else "error"
        return cls.from_details(image, error.details, verdict=verdict, message=error.message,
                                hint=error.hint)

    def as_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        return {"verdict": data.pop("verdict"), "message": data.pop("message"), **data}


def verify_image(properties: Mapping[str, Any], *, image: str | os.PathLike[str] | None = None,
                 image_id: str | None = None, cert_file: str | None = None, trusted: Sequence[str] = (),
                 session: Callable[[], Any] | None = None, progress: ProgressFactory = no_progress,
                 ) -> VerifyResult:
    """Verify ``image`` (a file) or Glance image ``image_id`` against the img_signature* ``properties``.

    ``session`` makes the Keystone session on first use (for a file, in the certificate check's
    thread, beside the hash); without ``cert_file`` the certificate comes from Barbican.
    ``trusted`` are Nova's trusted certificate ids. Failures raise KeytoolsError with ``details``.
    """
    if bool(image) == bool(image_id):
        raise UsageError("give either IMAGE (a file) or --image-id", "See 'keytools verify --help'")
    for uuid in trusted:
        try:
            sig.check_uuid(uuid, "--trusted-cert")
        except sig.SignatureFormatError as exc:
            raise UsageError(str(exc), "Pass Barbican secret UUIDs ('keytools cert list')") from None
    target = str(image_id or image)
    details: dict[str, Any] = {}
    try:
        _verify(dict(properties), image, image_id, cert_file, tuple(trusted), session, progress, details)
    except KeytoolsError as exc:
        exc.details = {**details, **exc.details}
        raise
    return VerifyResult.from_details(target, details, message=f"signature verified for {target}")


def _verify(props: dict[str, Any], image: str | os.PathLike[str] | None, image_id: str | None,
            cert_file: str | None, trusted: tuple[str, ...], session: Callable[[], Any] | None,
            progress: ProgressFactory, details: dict[str, Any]) -> None:
    """The steps, in cursive's order; ``details`` collects what each established."""
    client = None
    size: int | None = None
    if image_id:
        client, record = verifier.glance_image(_session(session), image_id)
        props = {**{p: record.get(p) for p in sig.PROPERTIES}, **{k: v for k, v in props.items() if v}}
        if record.get("status") != "active":
            raise UsageError(f"image {image_id} is {record.get('status')}, it has no data to verify",
                             "Upload its data first")
        size = details["size"] = record.get("size")
    label = f"certificate {cert_file}" if cert_file else None
    parsed = verifier.parse(props, label)
    if image is not None:
        handle, size = sig.open_image(image)
        handle.close()
    policy = verifier.Policy(trusted)
    prepared: verifier.Prepared | verifier.Pending
    if cert_file:  # local: checked before any data is read
        prepared = verifier.prepare_certificate(parsed, verifier.file_source(cert_file), policy, None, label)
        details.update(prepared.details())
    else:  # Keystone + Barbican round trips run beside the hash, which stops if they fail
        if client is not None:  # Glance's session exists: the round trips run in the check's thread
            barbican = verifier.barbican_source(_session(session))
        else:  # a file: the session is made in a forked process, beside the hash (keytools.overlap)
            barbican = verifier.forked_barbican_source(lambda: _session(session), (str(parsed.cert_uuid), *trusted))
        prepared = verifier.start(parsed, barbican, policy, barbican if trusted else None)

    def record(done: verifier.Prepared) -> None:
        details.update(done.details())

    with progress(size, "verifying") as advance:
        if client is not None:
            assert image_id is not None
            result = verifier.verify_chunks(verifier.download_chunks(client, image_id), prepared,
                                            f"image {image_id}", advance, on_prepared=record)
        else:
            assert image is not None
            result = verifier.verify_file(image, prepared, advance, on_prepared=record)
    details.update(result)


def _session(factory: Callable[[], Any] | None) -> Any:
    if factory is None:
        raise UsageError("verifying against Barbican or Glance needs credentials",
                         "Pass --os-cloud (or OS_* variables), or --cert FILE for a local file")
    return factory()
