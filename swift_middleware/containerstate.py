"""What Swift says about one container right now, as a digest: the proof a journal entry needs.

``reencrypt`` skips a container it journaled as done only while this digest is unchanged (the
journal is a shortcut, Swift is the truth), and key-usage reuses a killed run's count of a
container on the same terms. The digest covers the container's HEAD (put timestamp, object count,
bytes used) and, per object of its raw listing, name, etag (an encrypted etag carries its crypto
meta, whose IV is new on every write), size, content type and last-modified (Swift's listing gives
the newest of the data and metadata timestamps, so a POST changes it too). Any PUT, overwrite,
POST or DELETE since the digest was taken changes it.

The listing streams (page by page, as InternalClient reads it) and is digested as it goes by:
nothing holds a whole container's listing in memory.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

HEAD_FIELDS = ("x-put-timestamp", "x-container-object-count", "x-container-bytes-used")
ENTRY_FIELDS = ("name", "hash", "bytes", "content_type", "last_modified")
Failed = Callable[[BaseException], BaseException]


def entry_key(entry: Mapping[str, Any]) -> tuple[Any, ...]:
    """The listing fields of one object that any change to it changes."""
    return tuple(entry.get(f) for f in ENTRY_FIELDS)


def fingerprint(entry: Mapping[str, Any]) -> tuple[str | None, bytes]:
    """A compact record of one listing entry: (last-modified, 8-byte hash of all its fields)."""
    raw = json.dumps(entry_key(entry)).encode()
    return entry.get("last_modified"), hashlib.blake2b(raw, digest_size=8).digest()


class Listing:
    """A container's HEAD (taken at once) and its raw listing (read lazily); ``digest`` is valid
    once the listing has been iterated to its end."""

    def __init__(self, exists: bool, head: tuple[str, ...], entries: Iterable[dict[str, Any]],
                 failed: Failed) -> None:
        self.exists = exists
        self._entries = entries
        self._failed = failed
        self._hash = hashlib.sha256(json.dumps([exists, list(head)]).encode())

    def __iter__(self) -> Iterator[dict[str, Any]]:
        from swift.common.internal_client import UnexpectedResponse

        try:
            for entry in self._entries:
                self._hash.update(json.dumps(entry_key(entry)).encode())
                yield entry
        except UnexpectedResponse as exc:
            raise self._failed(exc) from None

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()

    def read_digest(self) -> str:
        """Iterate the whole listing (nothing kept) and return its digest."""
        for _entry in self:
            pass
        return self.digest


def open_listing(client: Any, account: str, container: str, failed: Failed) -> Listing:
    """HEAD ``account/container`` now and list it lazily (a 404 is an empty, absent container).
    ``failed(exc)`` turns Swift's UnexpectedResponse into the error to raise."""
    from swift.common.internal_client import UnexpectedResponse

    try:
        resp = client.make_request("HEAD", client.make_path(account, container), {}, (2, 404))
    except UnexpectedResponse as exc:
        raise failed(exc) from None
    if resp.status_int == 404:
        return Listing(False, (), [], failed)
    lower = {k.lower(): v for k, v in resp.headers.items()}
    head = tuple(str(lower.get(f, "")) for f in HEAD_FIELDS)
    return Listing(True, head, client.iter_objects(account, container), failed)


def unexplained(before: Mapping[str, tuple[str | None, bytes]], rewritten: set[str],
                after: Iterable[dict[str, Any]]) -> list[str]:
    """Names in ``after`` that the pass over ``before`` (name -> ``fingerprint``) did not account
    for: objects written, overwritten or POSTed by someone else meanwhile. An object is accounted
    for when its listing entry is unchanged, or when the pass rewrote it and its last-modified is
    unchanged (the rewrite keeps it; a user's later write would not). Iterates all of ``after``."""
    odd = []
    for entry in after:
        old = before.get(entry["name"])
        if old is not None and (old == fingerprint(entry) or (
                entry["name"] in rewritten and old[0] == entry.get("last_modified"))):
            continue
        odd.append(entry["name"])
    return odd
