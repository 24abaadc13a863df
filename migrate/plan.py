"""``migrate plan``: what a run would do and why, from the database and the journal only.

Nothing is changed and Barbican is not contacted, so a plan is safe on a production database at
any time (it reads, it never writes).
"""

from __future__ import annotations

from typing import Any

from migrate import journal as jr
from migrate import repair
from migrate.config import SKIP_NOTHING_TO_MIGRATE, Settings
from migrate.consumer import CinderConsumer, Consumer
from migrate.db import CinderDB
from migrate.engine import MSG_NO_ITEMS, MSG_STARTING, Scope, find_orphans


def make_plan(settings: Settings, db: CinderDB, scope: Scope, journal_path: Any) -> dict[str, Any]:
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
                           f"(AES, {settings.key_bits} bits, symmetric), each with a read ACL for the row's user")
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
    return {"service": "cinder", "decision": decision, "message": message, "backend": settings.backend,
            "key_bits": settings.key_bits or None, "database": db.describe(),
            "scope": {"host": scope.host, "cluster": scope.cluster, "tables": list(scope.tables)},
            "to_migrate": tables, "all_hosts": db.global_counts(), "by_host_project": by_host,
            "stranded_snapshots": {"repairable": len(repairable), "needs_read_back": len(to_check),
                                   "left_alone": reasons},
            "snapshots": [d.as_dict() for d in snapshots],
            "journal": {"path": str(journal_path), "reusable_secrets": reusable,
                        "unresolved_intents": len(replay.unresolved_intents()), "orphans": len(orphans)},
            "orphans": orphans, "actions": actions}


def make_service_plan(settings: Settings, consumer: Consumer, scope: Scope, journal_path: Any,
                      acl_note: str) -> dict[str, Any]:
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
    return {"service": consumer.service, "decision": decision, "message": message, "backend": settings.backend,
            "key_bits": settings.key_bits or None, "database": consumer.describe(),
            "to_migrate": tables, "all_hosts": consumer.remaining(), "by_host_project": consumer.breakdown(scope),
            "journal": {"path": str(journal_path), "reusable_secrets": reusable,
                        "unresolved_intents": len(replay.unresolved_intents()), "orphans": len(orphans)},
            "orphans": orphans, "actions": actions}
