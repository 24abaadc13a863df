"""Who still uses ConfKeyManager's all-zeros key id, per service: the inventory interface.

Retiring ``fixed_key`` is safe only when no service holds a reference to
``00000000-0000-0000-0000-000000000000`` any more, and only if every service was actually looked
at: a service that could not be seen is not "zero", it is *blind* and blocks retirement until
the operator ignores it explicitly (``--ignore-service``).

Each service implements one small interface (``ReferenceSource``)::

    class ReferenceSource(Protocol):
        service: str                          # "cinder", "nova", "glance"
        def describe(self) -> str: ...        # where it looked, no password ("sqlite:///...", URL)
        def references(self) -> list[Reference]: ...
            # every NON-DELETED reference to FIXED_KEY_ID, as the service means "deleted",
            # grouped by kind (table / "images"), location (host, cell, ...) and project;
            # raise a KeytoolsError (ServiceUnavailable, UsageError, Forbidden) when the service
            # cannot be seen completely: it is then reported as blind, never as zero.
        def dispose(self) -> None: ...

Cinder is ``keytools.cinder_db.CinderReferences``, Nova ``keytools.nova_db.NovaReferences``;
Glance plugs in the same way (``keytools.glance_refs``) and is added to ``SERVICES``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from keytools.errors import KeytoolsError

FIXED_KEY_ID = "00000000-0000-0000-0000-000000000000"
SERVICES = ("cinder", "nova", "glance")  # the services that ever handed out FIXED_KEY_ID


@dataclass(frozen=True)
class Reference:
    """``count`` non-deleted objects of one kind at one location and project on the all-zeros id.

    ``certain`` is False for objects that *may* depend on fixed_key without the database saying so
    (cinder backups of encrypted volume types made before backups had ``encryption_key_id``)."""

    service: str
    kind: str
    location: str | None
    project: str | None
    count: int
    certain: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {"service": self.service, "kind": self.kind, "location": self.location, "project": self.project,
                "count": self.count, "certain": self.certain}


@dataclass(frozen=True)
class Blind:
    """A service the inventory could not see (not configured, unreachable, wrong database)."""

    service: str
    reason: str
    error: type[KeytoolsError] | None = None  # the type of the error that made it blind (None: not configured)

    def as_dict(self) -> dict[str, Any]:
        return {"service": self.service, "reason": self.reason}


class ReferenceSource(Protocol):
    service: str

    def describe(self) -> str: ...

    def references(self) -> list[Reference]: ...

    def dispose(self) -> None: ...


@dataclass
class Inventory:
    references: list[Reference] = field(default_factory=list)
    seen: dict[str, str] = field(default_factory=dict)  # service -> where it looked
    blind: list[Blind] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(r.count for r in self.references)

    def totals(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.references:
            out[r.service] = out.get(r.service, 0) + r.count
        return out

    @property
    def blocking_blind(self) -> list[Blind]:
        return [b for b in self.blind if b.service not in self.ignored]

    @property
    def clean(self) -> bool:
        """Nothing on the all-zeros id anywhere it looked, and nothing it could not see (unless ignored)."""
        return self.total == 0 and not self.blocking_blind

    def as_dict(self) -> dict[str, Any]:
        return {"clean": self.clean, "total": self.total, "per_service": self.totals(), "seen": self.seen,
                "blind": [b.as_dict() for b in self.blind], "ignored_services": self.ignored,
                "references": [r.as_dict() for r in self.references]}


def take(sources: Mapping[str, ReferenceSource | Blind], ignore: Iterable[str] = ()) -> Inventory:
    """Ask every source; one that fails becomes blind with its one-line reason."""
    inv = Inventory(ignored=sorted(set(ignore)))
    for service, source in sources.items():
        if isinstance(source, Blind):
            inv.blind.append(source)
            continue
        try:
            refs = source.references()
        except KeytoolsError as exc:
            inv.blind.append(Blind(service, exc.message, type(exc)))
            continue
        finally:
            source.dispose()
        inv.seen[service] = source.describe()
        inv.references.extend(r for r in refs if r.count)
    return inv


def sort_key(r: Reference) -> tuple[int, str, str, str]:
    order = SERVICES.index(r.service) if r.service in SERVICES else len(SERVICES)
    return order, r.kind, r.location or "", r.project or ""
