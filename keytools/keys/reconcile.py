"""``keys reconcile``: Barbican's secrets against every service that references them.

Four classes (docs/keys.md):

1. **dangling references**: an object pointing at a secret that is missing, deleted, expired, or
   not readable by the identity that reads it at attach/boot time (its read path, judged with
   Barbican's ``secret:get`` rule: the secret's project with the creator or project access, or the
   read ACL's users); each with what to do. Exit 1 when any exist.
2. **orphan secrets**: live secrets nothing references, older than ``min_age``, grouped by
   project, creator and kind. Withheld entirely while a service is NOT SEEN (any unseen service
   might hold the reference) or while an object's key id is unknown to its service.
3. **leftover orders**: live orders whose secret is deleted, missing or orphaned.
4. what ``barbican-manage db clean`` would purge, as counts.

Memory: one small row per secret and one set entry per referenced id (100,000s fit easily); the
references themselves are streamed and dropped unless dangling.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from keytools.errors import ProblemsFound
from keytools.key_refs.model import READ_PROJECT, READ_SERVICE, READ_USER, KeyRef, KeySource, NotSeen, Survey, survey
from keytools.keys.barbican_db import BarbicanDB, OrderRow, SecretRow, _iso

MIGRATED_PREFIX = "keytools-migrate:"
QUARANTINE_KEY = "keytools-quarantine"


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)  # Barbican stores naive UTC


def kind_of(s: SecretRow) -> str:
    """The orphan grouping: who made this secret, as far as Barbican's rows tell."""
    if s.secret_type == "certificate":
        return "certificate"
    if s.name and s.name.startswith(MIGRATED_PREFIX):
        return "keytools-migrated-key"
    if s.name and "swift" in s.name.lower():
        return "swift-root-secret"
    if s.ordered and s.secret_type == "symmetric":
        return "castellan-key"  # castellan's create_key: Cinder volumes, Nova ephemeral/vTPM
    return s.secret_type or "other"


def can_read(s: SecretRow, ref: KeyRef) -> bool | None:
    """Barbican's ``secret:get`` for the ref's reader (None: cannot be judged from the database)."""
    r = ref.read
    if r.who == READ_USER:
        if r.user and r.user in s.acl_users:
            return True
        return r.project == s.project and (s.project_access or (r.user is not None and r.user == s.creator))
    if r.who == READ_PROJECT:
        if r.project == s.project and s.project_access:
            return True
        return None if s.acl_users else False  # ACL users may or may not be the project's members
    if r.who == READ_SERVICE and not r.by_name:
        return True if r.user in s.acl_users or r.user == s.creator else None
    return None


@dataclass
class Dangling:
    ref: KeyRef
    problem: str  # missing | deleted | expired | no-read-access
    secret: SecretRow | None
    action: str

    def as_dict(self) -> dict[str, Any]:
        return {**self.ref.as_dict(), "problem": self.problem, "action": self.action,
                "secret_project": self.secret.project if self.secret else None}


def action_for(problem: str, ref: KeyRef, s: SecretRow | None) -> str:
    key = ref.key_id
    if problem == "missing":
        return (f"restore secret {key} from a Barbican backup (keytools barbican restore) before the {ref.kind} is "
                "next used; without it the data is unreadable")
    if problem == "deleted":
        return f"keytools keys undelete {key} (before barbican-manage db clean purges the row)"
    if problem == "expired":
        return (f"Barbican refuses an expired secret: keytools keys undelete {key} --clear-expiration (clears the "
                "expiration in Barbican's database), then give the object a key that does not expire")
    reader = ref.read.describe()
    if ref.read.who == READ_PROJECT:
        return f"give project {ref.read.project} read access: openstack acl user add --user USER {key} (per member)"
    return f"let {reader} read it: openstack acl user add --user {ref.read.user} <secret ref of {key}>"


@dataclass
class Orphan:
    secret: SecretRow
    kind: str

    def as_dict(self) -> dict[str, Any]:
        return {**self.secret.as_dict(), "kind": self.kind}


@dataclass
class Report:
    barbican: str
    checked_at: dt.datetime
    min_age_days: float
    clean_min_days: int
    survey: Survey
    secrets: int = 0
    live_secrets: int = 0
    references: int = 0
    per_service: dict[str, int] = field(default_factory=dict)
    uncertain: int = 0
    dangling: list[Dangling] = field(default_factory=list)
    orphans: list[Orphan] = field(default_factory=list)
    orphans_withheld: str | None = None  # why no secret is called an orphan
    young_unreferenced: int = 0
    leftover_orders: list[dict[str, Any]] = field(default_factory=list)
    clean: dict[str, int] = field(default_factory=dict)
    projects: list[str] = field(default_factory=list)  # --project: orphans and orders of these only

    def counts(self) -> dict[str, int]:
        return {"dangling": len(self.dangling), "orphans": len(self.orphans),
                "leftover_orders": len(self.leftover_orders),
                "db_clean_purge": sum(v for k, v in self.clean.items() if not k.endswith("_blocked_by_orders"))}

    def dangling_by_problem(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for d in self.dangling:
            out[d.problem] = out.get(d.problem, 0) + 1
        return dict(sorted(out.items()))

    def orphan_groups(self) -> list[dict[str, Any]]:
        groups: dict[tuple[str, str, str], list[Orphan]] = {}
        for o in self.orphans:
            groups.setdefault((o.secret.project or "", o.secret.creator or "", o.kind), []).append(o)
        return [{"project": p or None, "creator": c or None, "kind": k, "count": len(v),
                 "oldest": _iso(min((o.secret.created for o in v if o.secret.created), default=None))}
                for (p, c, k), v in sorted(groups.items())]

    def failure(self) -> ProblemsFound | None:
        if not self.dangling:
            return None
        by = ", ".join(f"{n} {p}" for p, n in self.dangling_by_problem().items())
        return ProblemsFound(f"{len(self.dangling)} dangling reference(s) ({by}): data at risk at the next "
                             "attach/boot", "Follow each reference's action, then rerun keytools keys reconcile")

    def as_dict(self) -> dict[str, Any]:
        return {"barbican": self.barbican, "checked_at": _iso(self.checked_at), "min_age_days": self.min_age_days,
                "clean_min_days": self.clean_min_days, "projects": self.projects, **self.survey.as_dict(),
                "secrets": self.secrets, "live_secrets": self.live_secrets, "references": self.references,
                "references_per_service": self.per_service, "uncertain_references": self.uncertain,
                "counts": self.counts(), "dangling_by_problem": self.dangling_by_problem(),
                "dangling": [d.as_dict() for d in self.dangling],
                "orphans_withheld": self.orphans_withheld, "orphan_groups": self.orphan_groups(),
                "orphans": [o.as_dict() for o in self.orphans], "young_unreferenced": self.young_unreferenced,
                "leftover_orders": self.leftover_orders, "db_clean": self.clean}


def reconcile(db: BarbicanDB, sources: Mapping[str, KeySource | NotSeen], ignore: Iterable[str] = (),
              min_age: dt.timedelta = dt.timedelta(days=30), clean_min_days: int = 90,
              now: dt.datetime | None = None, projects: Iterable[str] = ()) -> Report:
    """One pass over Barbican's secrets and every service's references (see the module doc).
    ``projects``: report orphans and leftover orders of these Keystone projects only (every secret
    is still looked up, every reference still checked)."""
    only_projects = set(projects)
    now = now or now_utc()
    db.check()
    secrets: dict[str, SecretRow] = {s.id: s for s in db.secrets()}
    report = Report(db.display, now, min_age.total_seconds() / 86400, clean_min_days, Survey(),
                    projects=sorted(only_projects))
    report.secrets = len(secrets)
    report.live_secrets = sum(1 for s in secrets.values() if not s.deleted)
    referenced: set[str] = set()

    def sink(ref: KeyRef) -> None:
        report.references += 1
        report.per_service[ref.service] = report.per_service.get(ref.service, 0) + 1
        if ref.key_id is None:
            report.uncertain += 1
            return
        referenced.add(ref.key_id)
        s = secrets.get(ref.key_id)
        if s is None:
            problem = "missing"
        elif s.deleted:
            problem = "deleted"
        elif s.expiration is not None and s.expiration <= now:
            problem = "expired"
        elif can_read(s, ref) is False:
            problem = "no-read-access"
        else:
            return
        report.dangling.append(Dangling(ref, problem, s, action_for(problem, ref, s)))

    report.survey = survey(sources, sink, ignore=ignore)
    if report.survey.blocking:
        report.orphans_withheld = ("not seen: " + "; ".join(f"{n.service}: {n.reason}" for n in report.survey.blocking)
                                   + " (any of them might reference a secret)")
    elif report.uncertain:
        report.orphans_withheld = (f"{report.uncertain} object(s) may depend on a key id their service does not record "
                                   "(Cinder backups made before backups had encryption_key_id)")
    orphan_ids: set[str] = set()
    for s in secrets.values():
        if s.deleted or s.id in referenced or (only_projects and s.project not in only_projects):
            continue
        if s.created is not None and now - s.created < min_age:
            report.young_unreferenced += 1
            continue
        if report.orphans_withheld is None:
            report.orphans.append(Orphan(s, kind_of(s)))
            orphan_ids.add(s.id)
    for o in db.live_orders():
        s = secrets.get(o.secret_id or "")
        why = ("secret missing" if o.secret_id and s is None else "secret deleted" if s is not None and s.deleted
               else "secret orphaned" if o.secret_id in orphan_ids else None)
        if why and (not only_projects or o.project in only_projects):
            report.leftover_orders.append(_order(o, why))
    report.clean = db.clean_counts(now - dt.timedelta(days=clean_min_days))
    report.dangling.sort(key=lambda d: (d.ref.service, d.ref.kind, d.ref.object_id))
    report.orphans.sort(key=lambda o: (o.secret.project or "", o.secret.creator or "", o.kind, o.secret.id))
    return report


def _order(o: OrderRow, why: str) -> dict[str, Any]:
    return {"order_id": o.id, "secret_id": o.secret_id, "project": o.project, "creator": o.creator,
            "status": o.status, "created": _iso(o.created), "why": why}
