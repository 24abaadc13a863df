"""Who still uses ConfKeyManager's all-zeros key id, per service: a filter on the reference seam.

Retiring ``fixed_key`` is safe only when no service holds a reference to
``00000000-0000-0000-0000-000000000000`` any more, and only if every service was actually looked
at: a service that could not be seen is not "zero", it is *blind* (``keytools.key_refs.NotSeen``)
and blocks retirement until the operator ignores it explicitly (``--ignore-service``).

The services are read through ``keytools.key_refs`` (one ``KeySource`` per service, every key id
it points at); :func:`take` keeps the refs on the all-zeros id (and those whose key id the
service does not record) and counts them per service, kind, location and project.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from keytools.key_refs.model import FIXED_KEY_ID, KeyRef, KeySource, NotSeen, survey

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


Blind = NotSeen  # a service the inventory could not see (not configured, unreachable, wrong database)


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


def take(sources: Mapping[str, KeySource | Blind], ignore: Iterable[str] = ()) -> Inventory:
    """Ask every source for its refs on the all-zeros id; one that fails becomes blind with its
    one-line reason. Refs are counted per (service, kind, location, project, certain)."""
    counts: dict[tuple[str, str, str | None, str | None, bool], int] = {}

    def count(ref: KeyRef) -> None:
        group = (ref.service, ref.kind, ref.location, ref.project, ref.certain)
        counts[group] = counts.get(group, 0) + 1

    seen = survey(sources, count, only=(FIXED_KEY_ID,))
    inv = Inventory(ignored=sorted(set(ignore)), seen=seen.seen, blind=seen.not_seen)
    inv.references.extend(Reference(service, kind, location, project, n, certain)
                          for (service, kind, location, project, certain), n in counts.items())
    return inv


def sort_key(r: Reference) -> tuple[int, str, str, str]:
    order = SERVICES.index(r.service) if r.service in SERVICES else len(SERVICES)
    return order, r.kind, r.location or "", r.project or ""
