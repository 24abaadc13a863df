"""Glance's key ids, every project, through the v2 API as admin.

Three image properties hold Barbican ids: ``cinder_encryption_key_id`` (cinder's upload-to-image
of an encrypted volume; Cinder reads it with the token of whoever creates a volume from the
image), ``img_signature_certificate_uuid`` (Glance at upload, Nova at boot, with the user's token)
and ``os_encrypt_key_id`` (current Glance's image encryption). Whoever uses the image needs to read
them: at least the members of the owner project, the read path given here. Deleted images are gone
from the API, as Glance means it. Not admin, unreachable: raises, so Glance is NOT SEEN.
"""

from __future__ import annotations

from collections.abc import Iterator

from keytools.glance_images import KEY_PROPERTY, GlanceImages
from keytools.key_refs.model import READ_PROJECT, KeyRef, ReadPath

# property -> kind
PROPERTIES = {KEY_PROPERTY: "images", "img_signature_certificate_uuid": "image_certificates",
              "os_encrypt_key_id": "image_encryption"}
PUSH_DOWN = 4  # up to this many ids: one filtered listing per id and property instead of all images


class GlanceKeySource:
    service = "glance"

    def __init__(self, images: GlanceImages) -> None:
        self.images = images

    def describe(self) -> str:
        return self.images.describe()

    def dispose(self) -> None:
        return None

    def scan(self, only: frozenset[str] | None = None) -> Iterator[KeyRef]:
        self.images.check_admin()
        if only is not None and len(only) <= PUSH_DOWN:
            for prop in PROPERTIES:
                for key_id in sorted(only):
                    for doc in self.images.all_images({prop: key_id}):
                        if doc.get(prop) == key_id:  # exact, as cinder and nova compare
                            yield _ref(doc, prop, key_id)
            return
        for doc in self.images.all_images():
            for prop in PROPERTIES:
                if doc.get(prop):
                    yield _ref(doc, prop, str(doc[prop]))


def _ref(doc: dict, prop: str, key_id: str) -> KeyRef:
    owner = doc.get("owner")
    return KeyRef("glance", PROPERTIES[prop], doc["id"], key_id, prop, None, owner, None,
                  ReadPath(READ_PROJECT, None, owner))
