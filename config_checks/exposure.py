"""``fixed-key exposure``: what fixed_key still opens, after the configs forgot it.

Migration gives every object its own Barbican secret, but each holds fixed_key's bytes (the LUKS
headers were made with it), so retiring fixed_key from the configs protects nothing from whoever
copied it. This walks every key id the services point at (the reference seam,
``keytools.key_refs``) and counts an object as exposed when its key id is the all-zeros id or a
secret whose payload equals fixed_key (compared by SHA-256 fingerprint with
``hmac.compare_digest``; neither value is ever printed). Objects are grouped per service, kind,
host/cell and project, and classed by what ends the exposure. A service that could not be read,
and a secret that could not be read, are NOT SEEN: never counted as zero.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from keytools.errors import Forbidden, KeytoolsError, NotFound, ProblemsFound, ServiceUnavailable
from keytools.key_refs import FIXED_KEY_ID, KeyRef, NotSeen, Survey, survey
from keytools.key_refs.model import KeySource

SERVICES = ("cinder", "nova", "glance")
# kind -> (class, what ends the exposure); kinds not listed hold no data keys (certificates, vTPM, ...)
CLASSES: dict[tuple[str, str], tuple[str, str]] = {
    ("cinder", "volumes"): ("re-keyable", "keytools migrate rekey (LUKS2: --reencrypt-data for the volume key)"),
    ("cinder", "snapshots"): ("until deleted", "the snapshot keeps a copy of the old header: delete it"),
    ("cinder", "backups"): ("until deleted or re-made",
                            "the backup's data carries the header: delete it or back up the re-keyed volume again"),
    ("cinder", "backups_may_depend"): ("until deleted or re-made",
                                       "made before backups recorded a key id: its data may carry a fixed_key header"),
    ("glance", "images"): ("until replaced", "the image data carries the header: upload a re-keyed volume again"),
    ("nova", "instances"): ("until rebuilt",
                            "LVM ephemeral encryption is dm-crypt plain (no header to re-key): rebuild the instance"),
}
VIA_ZEROS, VIA_SECRET, VIA_UNKNOWN = "all-zeros id", "secret holds fixed_key", "may depend"


@dataclass(frozen=True)
class Exposed:
    """``count`` objects of one kind at one location and project that fixed_key opens."""

    service: str
    kind: str
    location: str | None
    project: str | None
    via: str
    count: int

    @property
    def klass(self) -> str:
        return CLASSES.get((self.service, self.kind), ("exposed", ""))[0]

    @property
    def remedy(self) -> str:
        return CLASSES.get((self.service, self.kind), ("", "replace the key"))[1]

    def as_dict(self) -> dict[str, Any]:
        return {"service": self.service, "kind": self.kind, "location": self.location, "project": self.project,
                "via": self.via, "count": self.count, "class": self.klass, "remedy": self.remedy}


@dataclass
class Exposure:
    exposed: list[Exposed] = field(default_factory=list)
    survey: Survey = field(default_factory=Survey)
    secrets_checked: int = 0
    secrets_fixed: int = 0
    unreadable: dict[str, int] = field(default_factory=dict)  # reason -> distinct secrets not read
    read_with: str = ""

    @property
    def total(self) -> int:
        return sum(e.count for e in self.exposed)

    def by_class(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for e in self.exposed:
            out[e.klass] += e.count
        return dict(out)

    @property
    def complete(self) -> bool:
        return self.survey.complete and not self.unreadable

    def as_dict(self) -> dict[str, Any]:
        return {**self.survey.as_dict(), "exposed": self.total, "complete": self.complete,
                "by_class": self.by_class(), "secrets_checked": self.secrets_checked,
                "secrets_holding_fixed_key": self.secrets_fixed, "secrets_not_read": self.unreadable,
                "read_with": self.read_with, "objects": [e.as_dict() for e in self.exposed]}


def fingerprint(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


class _Collector:
    """The survey's sink: all-zeros refs are counted at once, the others wait (by key id) for
    their secret to be read. Only groups and key ids are kept, never one entry per object."""

    def __init__(self, kinds: set[tuple[str, str]]) -> None:
        self.kinds = kinds
        self.counts: Counter[tuple[str, str, str | None, str | None, str]] = Counter()
        self.by_key: dict[str, Counter[tuple[str, str, str | None, str | None]]] = {}
        self.lock = threading.Lock()

    def __call__(self, ref: KeyRef) -> None:
        if (ref.service, ref.kind) not in self.kinds:
            return
        group = (ref.service, ref.kind, ref.location, ref.project)
        with self.lock:
            if ref.key_id == FIXED_KEY_ID:
                self.counts[(*group, VIA_ZEROS)] += 1
            elif ref.key_id is None:
                self.counts[(*group, VIA_UNKNOWN)] += 1
            else:
                self.by_key.setdefault(ref.key_id, Counter())[group] += 1


def assess(sources: Mapping[str, KeySource | NotSeen], fixed_key: bytes, payload: Callable[[str], bytes],
           ignore: Iterable[str] = (), concurrency: int = 8, read_with: str = "") -> Exposure:
    """Survey ``sources``; read each distinct non-zero key id's secret with ``payload(key_id)``
    (raising a KeytoolsError when it cannot) and keep those holding ``fixed_key``."""
    collect = _Collector(set(CLASSES))
    result = Exposure(read_with=read_with)
    result.survey = survey(sources, collect, ignore=ignore)
    wanted = fingerprint(fixed_key)
    unreadable: Counter[str] = Counter()
    fixed_ids: set[str] = set()

    def check(key_id: str) -> None:
        try:
            same = hmac.compare_digest(fingerprint(payload(key_id)), wanted)
        except KeytoolsError as exc:
            why = ("missing (404)" if isinstance(exc, NotFound) else
                   "forbidden for these credentials" if isinstance(exc, Forbidden) else
                   "Barbican unreachable" if isinstance(exc, ServiceUnavailable) else type(exc).__name__)
            with collect.lock:
                unreadable[why] += 1
            return
        if same:
            with collect.lock:
                fixed_ids.add(key_id)

    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="exposure") as pool:
        list(pool.map(check, list(collect.by_key)))
    result.secrets_checked = len(collect.by_key)
    result.secrets_fixed = len(fixed_ids)
    result.unreadable = dict(unreadable)
    for key_id in fixed_ids:
        for group, n in collect.by_key[key_id].items():
            collect.counts[(*group, VIA_SECRET)] += n
    result.exposed = sorted((Exposed(*k, n) for k, n in collect.counts.items()), key=_order)
    return result


def _order(e: Exposed) -> tuple[int, str, str, str, str]:
    svc = SERVICES.index(e.service) if e.service in SERVICES else len(SERVICES)
    return svc, e.kind, e.location or "", e.project or "", e.via


def failure(result: Exposure) -> KeytoolsError | None:
    """Exit 1 while anything is exposed, or while a service or a secret was not seen."""
    problems = []
    if result.total:
        classes = ", ".join(f"{n} {k}" for k, n in result.by_class().items())
        problems.append(f"{result.total} object(s) still opened by fixed_key ({classes})")
    blocking = result.survey.blocking
    if blocking:
        problems.append("not seen: " + "; ".join(f"{n.service}: {n.reason}" for n in blocking))
    if result.unreadable:
        problems.append(f"{sum(result.unreadable.values())} secret(s) not read ("
                        + ", ".join(f"{n} {why}" for why, n in result.unreadable.items()) + ")")
    if not problems:
        return None
    return ProblemsFound("; ".join(problems),
                         "Re-key volumes with 'keytools migrate rekey', delete or replace the rest (see the remedy "
                         "column); give the missing options or credentials that may read every secret")


def barbican_payload(session: Any, endpoint: str | None = None) -> Callable[[str], bytes]:
    """``payload(key_id)`` through Barbican's API with ``session`` (errors as keytools errors)."""
    from keytools import keymanager
    from keytools.service_errors import translated

    with translated("Barbican", "finding the key-manager endpoint"):
        base = (endpoint or keymanager.barbican_endpoint(session)).rstrip("/")
    base = base[:-3] if base.endswith("/v1") else base

    def payload(key_id: str) -> bytes:
        with translated("Barbican", f"reading secret {key_id}"):
            resp = session.get(f"{base}/v1/secrets/{key_id}/payload", headers={"Accept": "application/octet-stream"})
        return resp.content

    return payload
