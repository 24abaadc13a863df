"""Nova's implementation of the migration ``Consumer``: instances on the all-zeros ephemeral key.

One secret per instance (nova's ConfKeyManager gave every instance the same id), then a
compare-and-swap of ``instances.ephemeral_key_uuid`` in the instance's cell database. Instances of
every cell of ``cell_mappings`` (cell0 included) unless ``--cell``.

Who may read the key. Nova reads it with the token of whoever starts the operation: the owner, a
colleague of the same project (start, reboot, resize), an admin (rebuild, migrate, evacuate). With
fixed_key every one of them could; a key Nova itself creates in Barbican lives in the owner's
project, where its members can read it. The migrated secret lives in the service project, so its
read ACL must name them: ``--acl project`` (the default) names the instance's user, every member of
its project and every admin, listed from Keystone when the run starts; ``--acl owner`` the
instance's user only (then only the owner can start or reboot it, and admin operations fail).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from keytools.errors import Forbidden
from keytools.keystone_members import ProjectMembers
from keytools.nova_db import NovaCells
from migrate.consumer import Readers, log_remaining, owner_only
from migrate.db import Item

LOG = logging.getLogger("keytools.migrate")

DEFAULT = "project"  # --acl for Nova when not given: what worked with fixed_key keeps working
ACL_NOTES = {
    "owner": "the instance's user (user_id) only: colleagues cannot start or reboot it, admins cannot "
             "rebuild, migrate or evacuate it",
    "project": "the instance's user, every member of its project and every user holding the admin role "
               "(listed from Keystone at migration time): start/reboot by colleagues and rebuild/migrate/"
               "evacuate by admins keep working",
}


def project_readers(members: ProjectMembers, admin_cloud: str | None) -> Readers:
    """``--acl project`` for instances: owner + project members + admins. The admins are listed now,
    so credentials that may not read Keystone's role assignments fail before any secret is made."""
    try:
        admins = members.admins()
    except Forbidden as exc:
        raise Forbidden(f"Nova's project ACL needs Keystone's role assignments, which "
                        f"{'--admin-cloud ' + admin_cloud if admin_cloud else 'these credentials'} may not list",
                        "Pass --admin-cloud NAME (a cloud with Keystone's admin role), or --acl owner "
                        "(only the instance's user can then read its key)") from exc

    def readers(item: Item) -> list[str]:
        colleagues = members(item.project_id, allow_empty=True)
        if not colleagues:
            LOG.warning("Project %s of instance %s has no members in Keystone: its key is readable by the "
                        "instance's user and the admins only", item.project_id, item.id)
        return sorted({*owner_only(item), *colleagues, *admins})

    return readers


class NovaConsumer:
    service = "nova"
    tables = ("instances",)
    acl_note = ACL_NOTES[DEFAULT]  # said in the plan (migrate.plan picks the note of --acl)

    def __init__(self, cells: NovaCells, readers: Readers | None = None) -> None:
        self.cells = cells
        self._readers = readers or owner_only

    def identity(self) -> str:
        return self.cells.identity()

    def describe(self) -> str:
        return self.cells.describe()

    def check(self) -> None:
        self.cells.check()

    def _cells(self, scope: Any) -> list[str]:
        wanted = getattr(scope, "cell", None)
        return [c.name for c in self.cells.cells if not wanted or c.name == wanted]

    def count(self, table: str, scope: Any) -> int:
        return sum(self.cells.count(name) for name in self._cells(scope)) if table == "instances" else 0

    def items(self, table: str, scope: Any) -> Iterator[Item]:
        if table != "instances":
            return
        for name in self._cells(scope):
            for r in self.cells.rows(name):
                yield Item("instances", r.uuid, r.user_id, r.project_id, r.host, where=name)

    def readers(self, item: Item) -> list[str]:
        return self._readers(item)

    def swap(self, item: Item, new_key_id: str) -> tuple[bool, int]:
        cell = item.where
        if cell is None:
            found = self.cells.find(item.id)
            if found is None:
                return False, 0
            cell = found[0]
        return self.cells.swap(cell, item.id, new_key_id), 0

    def current_key(self, table: str, row_id: str) -> str | None:
        found = self.cells.find(row_id)
        return found[1].ephemeral_key_uuid if found else None

    def owner(self, table: str, row_id: str) -> str | None:
        found = self.cells.find(row_id)
        return found[1].user_id if found else None

    def referenced(self, key_id: str) -> bool:
        return self.cells.referenced(key_id)

    def repair(self, scope: Any, journal_path: Any, holds: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        return [], []

    def remaining(self) -> dict[str, int]:
        return {"instances": self.cells.count()}

    def breakdown(self, scope: Any) -> list[dict[str, Any]]:
        out = []
        for name in self._cells(scope):
            out.extend(self.cells.breakdown(name))
        return out

    def item_line(self, item: Item) -> str:
        return f"Migrating instance {item.id} ephemeral encryption key to Barbican (cell {item.where})"

    def log_status(self) -> dict[str, int]:
        left = self.remaining()
        log_remaining("instances", left["instances"],
                      "There are still {n} instance(s) using the ConfKeyManager's all-zeros ephemeral key ID.",
                      "No instances are using the ConfKeyManager's ephemeral_key_uuid.")
        return left

    def follower_problems(self, item_id: str, secret_id: str) -> list[dict[str, Any]]:
        return []

    def dispose(self) -> None:
        self.cells.dispose()
