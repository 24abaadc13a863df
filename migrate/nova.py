"""Nova's implementation of the migration ``Consumer``: instances on the all-zeros ephemeral key.

One secret per instance (nova's ConfKeyManager gave every instance the same id), read ACL for
the instance's ``user_id`` (nova reads the key with the owner's token when it starts the
instance), then a compare-and-swap of ``instances.ephemeral_key_uuid`` in the instance's cell
database. Instances of every cell of ``cell_mappings`` (cell0 included) unless ``--cell``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from keytools.nova_db import NovaCells
from migrate.consumer import log_remaining, owner_only
from migrate.db import Item


class NovaConsumer:
    service = "nova"
    tables = ("instances",)
    acl_note = "the instance's user (user_id)"  # said in the plan

    def __init__(self, cells: NovaCells) -> None:
        self.cells = cells

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
        return owner_only(item)

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
