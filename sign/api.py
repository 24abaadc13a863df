"""``sign_image``: the whole signing job (checks, hash, sign, optional upload) as one library call.

The CLI parses options, calls this and renders the ``SignResult``; everything that can fail is a
KeytoolsError raised before anything is printed or written (the signature file and the Glance
upload come last).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from keytools import image_signature as sig
from keytools import overlap
from keytools.errors import UsageError
from keytools.progress import ProgressFactory, no_progress
from sign import keys, signer
from sign.signer import Signed
from sign.upload import ImageOptions, UploadedImage

@dataclass
class SignResult:
    """The signed image's four properties, and the Glance image when it was uploaded."""

    signed: Signed
    uploaded: UploadedImage | None = None

    @property
    def properties(self) -> dict[str, str]:
        return self.signed.properties

    def as_dict(self) -> dict[str, Any]:
        return {"properties": self.properties, **({"image": self.uploaded.as_dict()} if self.uploaded else {})}


def sign_image(image: str | os.PathLike[str], key_file: str, cert_uuid: str, *,
               session: Callable[[], Any] | None = None, key_password_file: str | None = None,
               cert_file: str | None = None, hash_method: str = sig.DEFAULT_HASH_METHOD,
               allow_weak_key: bool = False, signature_file: str | os.PathLike[str] | None = None,
               upload: ImageOptions | None = None, progress: ProgressFactory = no_progress) -> SignResult:
    """Sign ``image`` for Glance; ``session`` None means offline (checked against ``cert_file`` only).

    The key, the certificate and the image are checked first; the Barbican round trips run
    beside the hash, which stops at the next chunk if they fail. With ``upload`` the image is
    created in Glance, which verifies the signature itself.
    """
    offline = session is None
    if offline and upload:
        raise UsageError("--offline and --upload exclude each other", "Drop --offline to upload")
    try:
        cert_uuid = sig.check_uuid(cert_uuid)
    except sig.SignatureFormatError as exc:
        raise UsageError(str(exc), "Pass the UUID printed by 'keytools cert store'") from None
    key = keys.read_private_key(key_file, keys.read_password_file(key_password_file))
    signer.check_key(key, key_file, allow_weak_key)
    handle, size = sig.open_image(image)
    handle.close()

    # Keystone + Barbican round trips run beside the hash, in a forked process of their own
    # (keytools.overlap); offline, the certificate file is checked before reading the image.
    fetch_pem = None
    if session is not None:
        factory = session
        fetch_pem = overlap.forked(lambda: sig.fetch_certificate_pem(factory(), cert_uuid))

    def certificate_check() -> str:
        certificate, where = signer.resolve_certificate(cert_uuid, cert_file, fetch_pem)
        return signer.check_pair(key, certificate, key_file, where, allow_weak_key)

    check = overlap.Check(certificate_check, background=not offline, name="keytools-cert-check")
    with progress(size, "signing") as advance:
        signed = signer.sign_file(image, key, cert_uuid, hash_method, advance, check)
    if signature_file:
        signer.write_signature(signature_file, signed)
    if upload is None:
        return SignResult(signed)
    assert session is not None
    from sign import upload as glance_upload  # glanceclient only when uploading

    with progress(size, "uploading") as advance:
        uploaded = glance_upload.upload(session(), image, signed.properties, upload, advance)
    return SignResult(signed, uploaded)
