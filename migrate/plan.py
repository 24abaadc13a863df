"""``migrate plan``: what a run would do and why, from the database and the journal only.

Nothing is changed and Barbican is not contacted, so a plan is safe on a production database at
any time (it reads, it never writes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from migrate import journal as jr
from migrate import nova
from migrate import repair
from migrate.config import SKIP_NOTHING_TO_MIGRATE, Settings
from migrate.consumer import CinderConsumer, Consumer
from migrate.db import CinderDB
from migrate.engine import MSG_NO_ITEMS, MSG_STARTING, Scope, find_orphans

OWNER_ACL = "each with a read ACL for the row's user"
PROJECT_ACL = ("each with a read ACL for the row's user (volumes: every member of the volume's project, "
               "listed from Keystone when the run starts)")


@dataclass
class ServicePlan:
    """One service's plan; the cinder-only parts (scope, stranded snapshots) are None elsewhere."""

    service: str
    decision: str
    message: str
    backend: str
    key_bits: int | None
    database: str
    to_migrate: dict[str, int]
    all_hosts: dict[str, int]
    by_host_project: list[dict[str, Any]]
    journal: dict[str, Any]
    orphans: list[dict[str, str]]
    actions: list[str]
    scope: dict[str, Any] | None = None
    stranded_snapshots: dict[str, Any] | None = None
    snapshots: list[dict[str, Any]] | None = None

    def as_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"service": self.service, "decision": self.decision, "message": self.message,
                               "backend": self.backend, "key_bits": self.key_bits, "database": self.database}
        if self.scope is not None:
            doc["scope"] = self.scope
        doc.update(to_migrate=self.to_migrate, all_hosts=self.all_hosts, by_host_project=self.by_host_project)
        if self.stranded_snapshots is not None:
            doc["stranded_snapshots"] = self.stranded_snapshots
        if self.snapshots is not None:
            doc["snapshots"] = self.snapshots
        doc.update(journal=self.journal, orphans=self.orphans, actions=self.actions)
        return doc


@dataclass
class PlanResult:
    plans: list[ServicePlan]

    def as_dict(self) -> dict[str, Any]:
        """One service: its plan; several: ``{"services": [...]}``."""
        if len(self.plans) == 1:
            return self.plans[0].as_dict()
        return {"services": [p.as_dict() for p in self.plans]}


def plan_services(settings: Settings, built: Sequence[tuple[Consumer, Path]], scope: Scope,
                  acl_mode: str | None = None) -> PlanResult:
    """Every service's plan (``built``: consumer, journal path); ``acl_mode`` as ``run --acl`` (None:
    each service's default)."""
    plans = []
    for consumer, path in built:
        if isinstance(consumer, CinderConsumer):
            plan = make_plan(settings, consumer.db, scope, path)
            if acl_mode == "project":
                plan.actions = [a.replace(OWNER_ACL, PROJECT_ACL) for a in plan.actions]
        elif consumer.service == "nova":
            plan = make_service_plan(settings, consumer, scope, path, nova.ACL_NOTES[acl_mode or nova.DEFAULT])
        else:
            plan = make_service_plan(settings, consumer, scope, path,
                                     getattr(consumer, "acl_note", "the owning user (user_id)"))
        plans.append(plan)
    return PlanResult(plans)


def make_plan(settings: Settings, db: CinderDB, scope: Scope, journal_path: Any) -> ServicePlan:
    db.check()
    skip = settings.skip_reason()
    tables = {"volumes": db.count("volumes", scope.host, scope.cluster) if "volumes" in scope.tables else 0,
              "snapshots": db.count_snapshots(scope.host, scope.cluster) if "volumes" in scope.tables else 0,
              "backups": db.count("backups", scope.host, scope.cluster) if "backups" in scope.tables else 0}
    snapshots = repair.assess(db, scope.host, scope.cluster, "volumes" in scope.tables, journal_path, None)
    repairable = [d for d in snapshots if d.repair]
    to_check = [d for d in snapshots if d.reason == repair.NOT_CHECKED]
    left = [d for d in snapshots if not d.repair and d.reason != repair.NOT_CHECKED]
    replay = jr.replay(journal_path)
    reusable = sum(1 for (t, i) in replay.rows
                   if replay.reusable(t, i) and db.key_id(t, i) == jr.FIXED_KEY_ID)
    orphans = find_orphans(CinderConsumer(db), replay)
    actions: list[str] = []
    if skip:
        decision, message = skip
    elif not (tables["volumes"] or tables["backups"] or repairable or to_check):
        decision, message = SKIP_NOTHING_TO_MIGRATE, MSG_NO_ITEMS
    else:
        decision, message = "migrate", MSG_STARTING
        n = tables["volumes"] + tables["backups"]
        if n:
            actions.append(f"create {n - min(reusable, n)} Barbican secret(s) holding fixed_key "
                           f"(AES, {settings.key_bits} bits, symmetric), {OWNER_ACL}")
        if reusable:
            actions.append(f"reuse {reusable} secret(s) a previous run stored but did not use")
        if tables["volumes"]:
            actions.append(f"point {tables['volumes']} volume(s) and their {tables['snapshots']} snapshot(s) "
                           "at their new secret (compare-and-swap on the all-zeros id)")
        if tables["backups"]:
            actions.append(f"point {tables['backups']} backup(s) at their own new secret")
        if repairable:
            actions.append(f"repair {len(repairable)} snapshot(s) still on the all-zeros id although keytools "
                           "migrated their volume (journal): give them the volume's id")
        if to_check:
            actions.append(f"read back the secret of {len({d.volume_id for d in to_check})} volume(s) whose "
                           f"{len(to_check)} snapshot(s) are still on the all-zeros id, and repair them only if "
                           "it holds fixed_key")
    if orphans:
        actions.append(f"report {len(orphans)} orphan secret(s) from earlier runs (delete them with --cleanup)")
    reasons: dict[str, int] = {}
    for d in left:
        reasons[d.reason] = reasons.get(d.reason, 0) + 1
    for reason, n in sorted(reasons.items()):
        actions.append(f"leave {n} snapshot(s) on the all-zeros id: {reason.replace('_', ' ')} "
                       "(keep a copy of fixed_key)")
    by_host = []
    for table in scope.tables:
        by_host.extend(db.breakdown(table, scope.host, scope.cluster))
    return ServicePlan(
        "cinder", decision, message, settings.backend, settings.key_bits or None, db.describe(),
        tables, db.global_counts(), by_host,
        {"path": str(journal_path), "reusable_secrets": reusable,
         "unresolved_intents": len(replay.unresolved_intents()), "orphans": len(orphans)}, orphans, actions,
        scope={"host": scope.host, "cluster": scope.cluster, "tables": list(scope.tables)},
        stranded_snapshots={"repairable": len(repairable), "needs_read_back": len(to_check), "left_alone": reasons},
        snapshots=[d.as_dict() for d in snapshots])


def make_service_plan(settings: Settings, consumer: Consumer, scope: Scope, journal_path: Any,
                      acl_note: str) -> ServicePlan:
    """The plan for a service without cinder's follower rows (nova instances, glance images)."""
    consumer.check()
    skip = settings.skip_reason()
    tables = {t: consumer.count(t, scope) for t in consumer.tables}
    replay = jr.replay(journal_path)
    reusable = sum(1 for (t, i) in replay.rows
                   if t in consumer.tables and replay.reusable(t, i) and consumer.current_key(t, i) == jr.FIXED_KEY_ID)
    orphans = find_orphans(consumer, replay)
    n = sum(tables.values())
    actions: list[str] = []
    if skip:
        decision, message = skip
    elif not n:
        decision, message = "nothing_to_migrate", f"No {'/'.join(consumer.tables)} use the all-zeros key id."
    else:
        decision, message = "migrate", MSG_STARTING
        actions.append(f"create {n - min(reusable, n)} Barbican secret(s) holding fixed_key (AES, "
                       f"{settings.key_bits} bits, symmetric), each with a read ACL for {acl_note}")
        if reusable:
            actions.append(f"reuse {reusable} secret(s) a previous run stored but did not use")
        actions.append(f"point {n} {'/'.join(consumer.tables)} at their new secret (compare-and-swap on the "
                       "all-zeros id)")
    if orphans:
        actions.append(f"report {len(orphans)} orphan secret(s) from earlier runs (delete them with --cleanup)")
    return ServicePlan(
        consumer.service, decision, message, settings.backend, settings.key_bits or None, consumer.describe(),
        tables, consumer.remaining(), consumer.breakdown(scope),
        {"path": str(journal_path), "reusable_secrets": reusable,
         "unresolved_intents": len(replay.unresolved_intents()), "orphans": len(orphans)}, orphans, actions)
