"""Which root secret an object's stored crypto metadata names (Swift's encrypter's own records).

Swift's encrypter stores ``key_id`` = ``{"v": ..., "path": ..., ["secret_id": ...]}`` in three
places (swift/common/middleware/crypto/encrypter.py): the body crypto meta
(``X-Object-Sysmeta-Crypto-Body-Meta``), the user-metadata crypto meta
(``X-Object-Transient-Sysmeta-Crypto-Meta``) and the ``swift_meta`` of the container-listing etag
(the listing's ``hash``). No ``secret_id`` means the unsuffixed root secret. An object with none
of the three holds nothing encrypted: one written before encryption was enabled, or a 0-byte one
without user metadata whose listing etag is the MD5 of nothing (the encrypter leaves that plain; a
symlink's listing etag carries its target and is encrypted, so a bare symlink needs the key).
"""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

BODY_META = "x-object-sysmeta-crypto-body-meta"
USER_META = "x-object-transient-sysmeta-crypto-meta"
DEFAULT_ID = ""  # how the plain key_id's secret id (None upstream) is keyed in our results


def _secret_id_of(meta: Any) -> str | None:
    """DEFAULT_ID or the secret id from a crypto meta dict; None when it names no key."""
    if not isinstance(meta, dict) or not isinstance(meta.get("key_id"), dict):
        return None
    value = meta["key_id"].get("secret_id")
    return DEFAULT_ID if value in (None, "") else str(value)


def _load(text: str) -> Any:
    try:
        return json.loads(urllib.parse.unquote_plus(text))
    except (ValueError, TypeError):
        return None


def listing_secret_id(hash_value: str | None) -> str | None:
    """The root secret of a raw container-listing entry's encrypted etag (``...; swift_meta=...``)."""
    if not hash_value or "swift_meta=" not in hash_value:
        return None
    for param in hash_value.split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key == "swift_meta":
            return _secret_id_of(_load(value))
    return None


@dataclass
class ObjectKeys:
    """The root secrets one object's data, user metadata and listing etag are encrypted under."""

    body: str | None = None
    user_meta: str | None = None
    listing: str | None = None
    extra: set[str] = field(default_factory=set)

    @property
    def secret_ids(self) -> set[str]:
        return {s for s in (self.body, self.user_meta, self.listing) if s is not None} | self.extra

    @property
    def encrypted(self) -> bool:
        return bool(self.secret_ids)


def object_keys(headers: dict[str, str], listing_hash: str | None) -> ObjectKeys:
    """Read the secret ids from a raw HEAD's headers (sysmeta visible) and the listing entry."""
    lower = {k.lower(): v for k, v in headers.items()}
    found = ObjectKeys(listing=listing_secret_id(listing_hash))
    if BODY_META in lower:
        found.body = _secret_id_of(_load(lower[BODY_META]))
    if USER_META in lower:
        found.user_meta = _secret_id_of(_load(lower[USER_META]))
    override = lower.get("x-object-sysmeta-container-update-override-etag")
    if override:
        sid = listing_secret_id(override)
        if sid is not None:
            found.extra.add(sid)
    return found
