"""What Swift says about one container right now, as a digest: the proof a journal entry needs.

``reencrypt`` skips a container it journaled as done only while this digest is unchanged (the
journal is a shortcut, Swift is the truth). The digest covers the container's HEAD (put timestamp,
object count, bytes used) and, per object of its raw listing, name, etag (an encrypted etag carries
its crypto meta, whose IV is new on every write), size, content type and last-modified (Swift's
listing gives the newest of the data and metadata timestamps, so a POST changes it too). Any PUT,
overwrite, POST or DELETE since the container was journaled changes the digest: it is rescanned.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

HEAD_FIELDS = ("x-put-timestamp", "x-container-object-count", "x-container-bytes-used")
ENTRY_FIELDS = ("name", "hash", "bytes", "content_type", "last_modified")


def entry_key(entry: dict[str, Any]) -> tuple[Any, ...]:
    """The listing fields of one object that any change to it changes."""
    return tuple(entry.get(f) for f in ENTRY_FIELDS)


@dataclass
class ContainerState:
    """One container as Swift lists it: the digest and the listing entries (in listing order)."""

    exists: bool
    head: tuple[str, ...]
    entries: list[dict[str, Any]]

    @property
    def digest(self) -> str:
        h = hashlib.sha256(json.dumps([self.exists, self.head]).encode())
        for entry in self.entries:
            h.update(json.dumps(entry_key(entry)).encode())
        return "sha256:" + h.hexdigest()


def read(client: Any, account: str, container: str) -> ContainerState:
    """HEAD and full raw listing of ``account/container`` (a 404 is an empty, absent container).

    Raises swift's UnexpectedResponse on other failures (the caller names the proxy)."""
    resp = client.make_request("HEAD", client.make_path(account, container), {}, (2, 404))
    if resp.status_int == 404:
        return ContainerState(False, (), [])
    lower = {k.lower(): v for k, v in resp.headers.items()}
    head = tuple(str(lower.get(f, "")) for f in HEAD_FIELDS)
    return ContainerState(True, head, list(client.iter_objects(account, container)))


def unexplained(before: Iterable[dict[str, Any]], rewritten: set[str], after: ContainerState) -> list[str]:
    """Names in ``after`` that the pass over ``before`` did not account for: objects written,
    overwritten or POSTed by someone else meanwhile. An object is accounted for when its listing
    entry is unchanged, or when the pass rewrote it and its last-modified is unchanged (the rewrite
    keeps it; a user's later write would not)."""
    seen = {e["name"]: e for e in before}
    odd = []
    for entry in after.entries:
        old = seen.get(entry["name"])
        if old is not None and entry_key(old) == entry_key(entry):
            continue
        if old is not None and entry["name"] in rewritten \
                and old.get("last_modified") == entry.get("last_modified"):
            continue
        odd.append(entry["name"])
    return odd
