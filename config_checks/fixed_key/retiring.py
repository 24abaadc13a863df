"""``fixed-key retire``: plan, refuse or back up, then swap each file in atomically."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from config_checks.fixed_key.backup import write_backup
from config_checks.fixed_key.plan import FileChange, plan_retire
from config_checks.fixed_key.refusals import check_cinder_db, check_inventory
from keytools.errors import StateError, UsageError
from keytools.fileutil import atomic_write, private_dir, remove_stale_temps
from keytools.fixed_key_refs import Inventory


@dataclass
class RetireResult:
    """The files retired (or, on a dry run, that would be) and the inventory the run relied on."""

    changes: list[FileChange] = field(default_factory=list)
    inventory: Inventory | None = None
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"inventory": self.inventory.as_dict() if self.inventory else None,
                "ignored_services": self.inventory.ignored if self.inventory else [],
                "files": [c.as_dict(self.dry_run) for c in self.changes]}


def retire(roots: Sequence[str], backup_dir: str | None, per_node: bool = False, db_url: str | None = None,
           dry_run: bool = False, inventory: Inventory | None = None, node: str | None = None) -> RetireResult:
    """Plan, check the database, back up, then swap each file atomically (backup before edit).
    ``inventory`` (taken by the caller) is checked, except on a dry run, and recorded in every
    backup: what was seen, what ignored."""
    if db_url:
        check_cinder_db(db_url)
    if inventory is not None and not dry_run:
        check_inventory(inventory)
    seen: list[str] = []
    changes = plan_retire(roots, per_node=per_node, seen_files=seen, node=node)
    if not dry_run:
        for path in seen:  # temp files an earlier killed run left next to any config file
            remove_stale_temps(Path(path))
    result = RetireResult(changes, inventory, dry_run)
    if dry_run or not changes:
        return result
    bdir = private_dir(require_backup_dir(backup_dir))
    for change in changes:
        change.backup = str(write_backup(bdir, change, inventory))
        current = Path(change.path).read_bytes()
        if current != change.old:  # compare-and-swap: someone edited it since we planned
            raise StateError(f"{change.path} changed while retiring; nothing written to it", "Rerun the command")
        atomic_write(change.path, change.new, mode=None)
    return result


def require_backup_dir(backup_dir: str | None) -> str:
    """A real retire needs somewhere for the backups (UsageError, exit 2, before anything is read)."""
    if not backup_dir:
        raise UsageError("--backup-dir is required to retire fixed_key",
                         "Give a directory on a safe disk; it receives a 0600 copy of each value")
    return backup_dir
