"""Snapshots on the all-zeros id whose volume has another key: repair only a provably
half-finished migration, leave every other one alone and say why.

cinder saves the volume, then each snapshot; a crash in between leaves snapshots on the all-zeros
id while their volume has its Barbican secret, and they need the volume's id. But a backup
restore also gives a volume a new, different key (cinder/backup/manager.py) while its snapshots
keep the all-zeros id and their fixed_key data: pointing those at the volume's key would make
them undecryptable. So a snapshot is repaired only when keytools' journal says keytools migrated
its volume to exactly its current key, or the volume's secret, read back from Barbican, holds
fixed_key.

Like cinder's own lines, decisions cover the run's scope only: a ``--host``/``--cluster`` run sees
the snapshots whose volume row is on that host or cluster (a deleted volume's row keeps its host; a
snapshot whose volume row is missing belongs to no host and is seen only by a run without
``--host``/``--cluster``), and a run of ``--only backups`` sees none.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from keytools.cinder_db import FIXED_KEY_ID
from keytools.logs import log_event
from keytools.secret_store import secret_id
from migrate import journal as jr
from migrate.db import CinderDB

LOG = logging.getLogger("keytools.migrate")

# why a snapshot is repaired
BY_JOURNAL = "journal_migrated_volume"
BY_PAYLOAD = "volume_key_is_fixed_key"
# why one is left alone
VOLUME_GONE = "volume_deleted_or_missing"
VOLUME_NO_KEY = "volume_has_no_key"
OTHER_KEY = "volume_key_is_not_fixed_key"
UNREADABLE = "volume_key_unreadable"
NOT_CHECKED = "needs_read_back"  # plan: a run reads the secret back first

# key id -> (holds fixed_key: True/False/None = unreadable, why unreadable)
Checker = Callable[[str], tuple[bool | None, str]]


@dataclass(frozen=True)
class SnapshotDecision:
    """What happens to one stranded snapshot, and why (shown in plan, run output and logs)."""

    id: str
    volume_id: str
    volume_host: str | None
    volume_key: str | None
    repair: bool
    reason: str
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _journal_keys(path: Path, volume_ids: set[str]) -> dict[str, str]:
    """volume id -> key id keytools migrated it to, for the volumes asked about (streamed)."""
    found: dict[str, str] = {}
    if not volume_ids:
        return found
    for table, row_id, ref in jr.iter_done(path):
        if table == "volumes" and row_id in volume_ids:
            found[row_id] = secret_id(ref)
    return found


def assess(db: CinderDB, host: str | None, cluster: str | None, volumes_in_scope: bool, journal_path: Path,
           check: Checker | None) -> list[SnapshotDecision]:
    """Decide every stranded snapshot. ``check`` reads a volume's secret back (None in a plan:
    nothing is contacted, such snapshots are reported as needing the read-back)."""
    if not volumes_in_scope:
        return []
    scoped = bool(host or cluster)
    rows = [r for r in db.stranded_snapshots(host, cluster)
            if (r["in_scope"] if r["volume_row"] is not None else not scoped)]
    live = {r["volume_id"] for r in rows if r["volume_key"] and r["volume_row"] and not r["volume_deleted"]}
    journal = _journal_keys(journal_path, live)
    checked: dict[str, tuple[bool | None, str]] = {}
    out = []
    for r in rows:
        vid, vkey, vhost = r["volume_id"], r["volume_key"], r["volume_host"]

        def decide(repair: bool, reason: str, detail: str) -> SnapshotDecision:
            return SnapshotDecision(r["id"], vid, vhost, vkey, repair, reason, detail)  # noqa: B023

        if r["volume_row"] is None or r["volume_deleted"]:
            out.append(decide(False, VOLUME_GONE, f"volume {vid} is deleted or missing; cinder never migrates "
                              "its snapshots (keep a copy of fixed_key)"))
        elif not vkey or vkey == FIXED_KEY_ID:
            out.append(decide(False, VOLUME_NO_KEY, f"volume {vid} has no key id"))
        elif journal.get(vid) == vkey:
            out.append(decide(True, BY_JOURNAL, f"keytools migrated volume {vid} to key {vkey} (journal)"))
        elif check is None:
            out.append(decide(False, NOT_CHECKED, f"a run reads volume {vid}'s secret {vkey} back and repairs "
                              "only if it holds fixed_key"))
        else:
            if vkey not in checked:
                checked[vkey] = check(vkey)
            holds, why = checked[vkey]
            if holds:
                out.append(decide(True, BY_PAYLOAD, f"volume {vid}'s secret {vkey} holds fixed_key (read back)"))
            elif holds is False:
                out.append(decide(False, OTHER_KEY, f"volume {vid}'s secret {vkey} does not hold fixed_key (the "
                                  "volume was re-keyed, e.g. by a backup restore); the snapshot's data is still "
                                  "under fixed_key"))
            else:
                out.append(decide(False, UNREADABLE, f"volume {vid}'s secret {vkey} could not be read back "
                                  f"({why}); not proven to hold fixed_key"))
    return out


def repair_stranded(db: CinderDB, scope: Any, journal_path: Any,
                    check: Checker | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Repair the stranded snapshots that provably belong to a half-finished migration of a
    volume in scope (see above); log and return (repaired, left alone with why)."""
    repaired, left = [], []
    for d in assess(db, scope.host, scope.cluster, "volumes" in scope.tables, journal_path, check):
        fields = {"table": "snapshots", "id": d.id, "volume_id": d.volume_id, "host": d.volume_host,
                  "secret_id": d.volume_key, "reason": d.reason}
        if not d.repair:
            left.append(d.as_dict())
            log_event(LOG, logging.WARNING, f"Left snapshot {d.id} on the all-zeros key id: {d.detail}",
                      "snapshot_left_alone", **fields)
        elif d.volume_key and db.repair_snapshot(d.id, d.volume_key):
            repaired.append(d.as_dict())
            log_event(LOG, logging.INFO, f"Repaired snapshot {d.id}: it now uses the key of its volume "
                      f"{d.volume_id}, as cinder would have ({d.detail})", "repaired_snapshot", **fields)
    return repaired, left
