"""The reference seam: every key id a service points at, who owns the object and who reads the key.

One interface for every service that stores Barbican key ids (``fixed-key inventory``,
``fixed-key exposure`` and ``keys reconcile`` all read services through it)::

    class KeySource(Protocol):
        service: str                  # "cinder", "nova", "glance", "swift", "barbican"
        def describe(self) -> str     # where it looked, never a password
        def scan(self, only: frozenset[str] | None = None) -> Iterator[KeyRef]
            # every NON-DELETED object's key id, as the service means "deleted", streamed in pages
            # (a few thousand rows in memory at a time); ``only``: just these key ids (a hint the
            # source may push into its query; refs with an unknown key id are always yielded).
            # Raise a KeytoolsError when the service cannot be read completely: the caller then
            # records it as NOT SEEN, never as "no references".
        def dispose(self) -> None

A service is *seen* only when its whole scan finished; a scan that fails midway leaves its refs
already yielded (they are real) and marks the service NOT SEEN, so nothing may be called
unreferenced. Adding a service is one module with one such class plus one entry in
``keytools.key_refs.options.BUILDERS``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from keytools.errors import KeytoolsError

FIXED_KEY_ID = "00000000-0000-0000-0000-000000000000"
PAGE = 5000  # rows per database round trip: constant memory for 100,000s of rows

# Who reads the key when the object is used (attach, boot, create-from-image, proxy start).
READ_USER = "user"  # the object's user, with its own token (Cinder volumes, Nova instances)
READ_PROJECT = "project"  # any member of the project (Glance images: the owner project's members)
READ_SERVICE = "service"  # a service account from a config file (Swift's keymaster)


@dataclass(frozen=True, slots=True)
class ReadPath:
    """The identity that must be able to read the secret for the object to keep working.

    ``user``/``project`` are Keystone ids, except for ``READ_SERVICE`` paths read from a config
    file, where they are what the file names (``by_name``)."""

    who: str
    user: str | None = None
    project: str | None = None
    by_name: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"who": self.who, "user": self.user, "project": self.project, "by_name": self.by_name}

    def describe(self) -> str:
        if self.who == READ_USER:
            return f"user {self.user} (project {self.project})"
        if self.who == READ_PROJECT:
            return f"members of project {self.project}"
        return f"service user {self.user} (project {self.project})"


@dataclass(frozen=True, slots=True)
class KeyRef:
    """One object pointing at one key id.

    ``kind`` is what the inventories group by ("volumes", "snapshots", "backups", "instances",
    "vtpm", "images", "image_certificates", "image_encryption", "swift_root", "consumers");
    ``field`` the column/property/option holding the id; ``location`` host, ``cell/host`` or file.
    ``key_id`` None with ``certain`` False: the object may depend on a key the service does not
    record (Cinder backups made before backups had ``encryption_key_id``)."""

    service: str
    kind: str
    object_id: str
    key_id: str | None
    field: str
    location: str | None
    project: str | None
    user: str | None
    read: ReadPath
    certain: bool = True

    def matches(self, only: frozenset[str] | None) -> bool:
        return only is None or self.key_id is None or self.key_id in only

    def as_dict(self) -> dict[str, Any]:
        return {"service": self.service, "kind": self.kind, "object_id": self.object_id, "key_id": self.key_id,
                "field": self.field, "location": self.location, "project": self.project, "user": self.user,
                "read": self.read.as_dict(), "certain": self.certain}


@dataclass(frozen=True)
class NotSeen:
    """A service that was not read completely (not configured, unreachable, wrong database)."""

    service: str
    reason: str
    error: type[KeytoolsError] | None = None  # the error type that made it unseen (None: not configured)

    def as_dict(self) -> dict[str, Any]:
        return {"service": self.service, "reason": self.reason}


class KeySource(Protocol):
    service: str

    def describe(self) -> str: ...

    def scan(self, only: frozenset[str] | None = None) -> Iterator[KeyRef]: ...

    def dispose(self) -> None: ...


@dataclass
class Survey:
    """Which services were seen (and where), which were not (and why), which were ignored."""

    seen: dict[str, str] = field(default_factory=dict)
    not_seen: list[NotSeen] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    @property
    def blocking(self) -> list[NotSeen]:
        """Not seen and not ignored: while any remain, no key may be called unreferenced."""
        return [n for n in self.not_seen if n.service not in self.ignored]

    @property
    def complete(self) -> bool:
        return not self.blocking

    def as_dict(self) -> dict[str, Any]:
        return {"seen": self.seen, "not_seen": [n.as_dict() for n in self.not_seen],
                "ignored_services": self.ignored, "complete": self.complete}


def survey(sources: Mapping[str, KeySource | NotSeen], sink: Callable[[KeyRef], None],
           only: Iterable[str] | None = None, ignore: Iterable[str] = ()) -> Survey:
    """Stream every source's refs into ``sink`` (filtered by ``only``); a source that fails is NOT SEEN
    with its one-line reason, the refs it yielded before failing stay delivered."""
    wanted = frozenset(only) if only is not None else None
    result = Survey(ignored=sorted(set(ignore)))
    for service, source in sources.items():
        if service in result.ignored:
            if not isinstance(source, NotSeen):
                source.dispose()
            continue
        if isinstance(source, NotSeen):
            result.not_seen.append(source)
            continue
        try:
            for ref in source.scan(wanted):
                if ref.matches(wanted):
                    sink(ref)
        except KeytoolsError as exc:
            result.not_seen.append(NotSeen(service, exc.message, type(exc)))
            continue
        finally:
            source.dispose()
        result.seen[service] = source.describe()
    return result


def paged(fetch: Callable[[Any, int], list[Any]], key: Callable[[Any], Any], start: Any,
          page: int = PAGE) -> Iterator[Any]:
    """Keyset paging: ``fetch(after, limit)`` returns rows ordered by ``key`` strictly after ``after``."""
    last = start
    while True:
        rows = fetch(last, page)
        yield from rows
        if len(rows) < page:
            return
        last = key(rows[-1])
