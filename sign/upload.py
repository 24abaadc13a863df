"""Create a Glance image with the signature properties and upload its data.

Glance builds its verifier before it reads the data (bad key type, hash, base64 or unknown
certificate fail at once), verifies while its store writes, and answers HTTP 400 ``Signature
verification failed`` on a mismatch, leaving the image ``queued``. keytools then deletes that
empty image, so a failed upload leaves nothing behind.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from keytools.errors import KeytoolsError, ProblemsFound, UsageError

LOG = logging.getLogger("keytools.sign")

DISK_FORMATS = ("raw", "qcow2", "vmdk", "vdi", "vhd", "vhdx", "iso", "ami", "ari", "aki", "ploop")
CONTAINER_FORMATS = ("bare", "ovf", "ova", "aki", "ari", "ami", "docker", "compressed")
VISIBILITIES = ("private", "shared", "community", "public")


@dataclass
class ImageOptions:
    name: str
    disk_format: str = "raw"
    container_format: str = "bare"
    visibility: str = "private"
    min_disk: int | None = None
    min_ram: int | None = None


@dataclass
class UploadedImage:
    """The Glance image as it stands after the upload, with the signature properties Glance kept."""

    id: str
    name: str | None
    status: str | None
    size: int | None
    properties: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "status": self.status, "size": self.size, **self.properties}


def glance_client(session: Any) -> Any:
    from glanceclient import client as glance

    return glance.Client("2", session=session)


class _ProgressReader:
    """A file object for glanceclient that reports the bytes it hands over."""

    def __init__(self, handle: Any, progress: Callable[[int], None] | None) -> None:
        self._handle = handle
        self._progress = progress

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        if self._progress and data:
            self._progress(len(data))
        return data


def upload(session: Any, image_path: str | os.PathLike[str], properties: dict[str, str],
           options: ImageOptions, progress: Callable[[int], None] | None = None) -> UploadedImage:
    """Create the image with ``properties`` and upload ``image_path``; return id and status."""
    client = glance_client(session)
    try:
        image = client.images.create(name=options.name, disk_format=options.disk_format,
                                     container_format=options.container_format,
                                     visibility=options.visibility,
                                     **{k: v for k, v in (("min_disk", options.min_disk),
                                                          ("min_ram", options.min_ram)) if v is not None},
                                     **properties)
    except Exception as exc:
        raise _glance_error(exc, "creating the image") from exc
    image_id = image["id"]
    size = os.path.getsize(image_path)
    try:
        with open(image_path, "rb") as handle:
            client.images.upload(image_id, _ProgressReader(handle, progress), image_size=size)
    except BaseException as exc:
        _delete_quietly(client, image_id)
        if not isinstance(exc, Exception):
            raise
        if _refused_signature(exc):
            raise ProblemsFound(f"Glance rejected the upload of {image_path}: Signature verification "
                                f"failed (image {image_id} deleted)",
                                "The data does not match img_signature: sign this exact file again") from None
        raise _glance_error(exc, f"uploading {image_path}", image_id) from exc
    final = client.images.get(image_id)
    return UploadedImage(image_id, final.get("name"), final.get("status"), final.get("size"),
                         {k: final.get(k) for k in properties})


def _refused_signature(exc: Exception) -> bool:
    """Glance refused the data because it does not match img_signature.

    Glance turns cursive's SignatureVerificationError into a plain 400 (glance/api/v2/
    image_data.py), like a bad store or size: its fixed explanation is the only thing that tells
    them apart, so this is the one place that reads an error's text.
    """
    from keytools.service_errors import http_status  # keystoneauth only when uploading

    return http_status(exc) == 400 and "Signature verification failed" in str(exc)


def _glance_error(exc: Exception, what: str, image_id: str | None = None) -> KeytoolsError:
    from keytools.service_errors import http_status, translate

    text = " ".join(str(exc).split())
    suffix = f" (image {image_id} deleted)" if image_id else ""
    if http_status(exc) == 400:
        return UsageError(f"Glance refused {what}: {text}{suffix}",
                          "Check the image options and the img_signature* properties")
    err = translate(exc, "Glance", what)
    err.message += suffix
    return err


def _delete_quietly(client: Any, image_id: str) -> None:
    try:
        client.images.delete(image_id)
    except Exception as exc:  # best effort: the upload error is what the user needs to see
        LOG.warning("could not delete the queued image %s: %s", image_id, exc)
