"""The per-service side of a migration: what the engine asks each service that holds all-zeros ids.

The engine (``migrate.engine.Migrator``) owns the journal, the Barbican secret (create or reuse,
named ``keytools-migrate:<table>:<id>``), the read-back, retries, error counting, orphans and
progress. Everything that depends on the service is behind this interface, implemented once per
service: ``CinderConsumer`` (volumes + snapshots, backups), ``migrate.nova.NovaConsumer``
(instances in every cell), the Glance one (images, ``migrate.glance``)::

    class Consumer(Protocol):
        service: str                 # "cinder" | "nova" | "glance" (--service value)
        tables: tuple[str, ...]      # kinds that each get their own secret ("instances")
        def identity(self) -> str    # one journal per identity (no password in it)
        def describe(self) -> str    # for plan/errors
        def check(self) -> None      # connect, refuse a wrong schema/endpoint (one-line KeytoolsError)
        def count(self, table, scope) -> int
        def items(self, table, scope) -> Iterator[Item]       # on the all-zeros id, non-deleted, paged
        def readers(self, item) -> list[str]                   # user ids for the secret's read ACL
        def swap(self, item, new_key_id) -> tuple[bool, int]   # compare-and-swap: only while still on
            # the all-zeros id; (won, followers updated); False = someone else migrated it
        def current_key(self, table, id) -> str | None         # None: gone/deleted
        def owner(self, table, id) -> str | None               # the user verify expects in the ACL
        def referenced(self, key_id) -> bool                   # any object (deleted too) uses it?
        def repair(self, scope, journal_path, holds) -> tuple[list[dict], list[dict]]
            # stranded followers: (repaired, left alone with why); cinder snapshots, see migrate.repair
        def remaining(self) -> dict[str, int]                  # still on the all-zeros id, whole scope
        def breakdown(self, scope) -> list[dict]               # remaining by location and project
        def item_line(self, item) -> str                       # the service's own "Migrating ..." line
        def log_status(self) -> dict[str, int]                 # closing status lines, returns remaining
        def follower_problems(self, item_id, secret_id) -> list[dict]  # verify: e.g. snapshots
        def dispose(self) -> None

Optional: ``acl_note`` (str), how the plan describes the read ACL ("the instance's user
(user_id)", "every member of the image's owner project, listed from Keystone at migration time").
A service with no followers returns ``(won, 0)`` from swap, ``([], [])`` from repair and ``[]`` from
follower_problems. ``Scope`` carries the service filters (cinder host/cluster/tables, nova cell).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

from keytools.cinder_db import FIXED_KEY_ID
from keytools.logs import log_event
from migrate.repair import Checker, repair_stranded
from migrate.db import CinderDB, Item

LOG = logging.getLogger("keytools.migrate")
Readers = Callable[[Item], list[str]]


class Consumer(Protocol):
    service: str
    tables: tuple[str, ...]

    def identity(self) -> str: ...
    def describe(self) -> str: ...
    def check(self) -> None: ...
    def count(self, table: str, scope: Any) -> int: ...
    def items(self, table: str, scope: Any) -> Iterator[Item]: ...
    def readers(self, item: Item) -> list[str]: ...
    def swap(self, item: Item, new_key_id: str) -> tuple[bool, int]: ...
    def current_key(self, table: str, row_id: str) -> str | None: ...
    def owner(self, table: str, row_id: str) -> str | None: ...
    def referenced(self, key_id: str) -> bool: ...
    def repair(self, scope: Any, journal_path: Path,
               holds: Checker | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]: ...
    def remaining(self) -> dict[str, int]: ...
    def breakdown(self, scope: Any) -> list[dict[str, Any]]: ...
    def item_line(self, item: Item) -> str: ...
    def log_status(self) -> dict[str, int]: ...
    def follower_problems(self, item_id: str, secret_id: str) -> list[dict[str, Any]]: ...
    def dispose(self) -> None: ...


def log_remaining(table: str, left: int, still: str, none: str) -> None:
    """A service's closing status line, as cinder's: WARNING with the count while objects
    remain on the all-zeros id (``still`` has a ``{n}``), else INFO ``none``."""
    if left:
        log_event(LOG, logging.WARNING, still.format(n=left), f"status_{table}_remaining", table=table,
                  remaining=left)
    else:
        log_event(LOG, logging.INFO, none, f"status_no_{table}", table=table, remaining=0)


def item_line(item: Item) -> str:
    """cinder's per-item line: it logs ``type(item).__name__``, which is ``VolumeMigration`` for
    cinder-volume (cinder/volume/volume_migration.py) and ``Backup`` for cinder-backup."""
    return f"Migrating {'VolumeMigration' if item.table == 'volumes' else 'Backup'} {item.id} encryption key to Barbican"


def log_status(db: CinderDB) -> dict[str, int]:
    """cinder's closing assessment: global counts, all hosts, cinder's wording (``backups(s)``, sic)."""
    counts = db.global_counts()
    log_remaining("volumes", counts["volumes"],
                  "There are still {n} volume(s) using the ConfKeyManager's all-zeros encryption key ID.",
                  "No volumes are using the ConfKeyManager's encryption_key_id.")
    log_remaining("backups", counts["backups"],
                  "There are still {n} backups(s) using the ConfKeyManager's all-zeros encryption key ID.",
                  "No backups are known to be using the ConfKeyManager's encryption_key_id.")
    return counts


def owner_only(item: Item) -> list[str]:
    """cinder's and nova's ACL: the user who owns the object."""
    return [item.user_id] if item.user_id else []


class CinderConsumer:
    """Cinder through ``CinderDB``: the original path, unchanged in behaviour (journal identity,
    log lines, snapshot handling). ``readers`` is the owning user unless ``--acl project``."""

    service = "cinder"
    tables = ("volumes", "backups")

    def __init__(self, db: CinderDB, readers: Readers | None = None) -> None:
        self.db = db
        self._readers = readers or owner_only

    def identity(self) -> str:
        return self.db.describe()  # as before the consumer interface: existing journals stay valid

    def describe(self) -> str:
        return self.db.describe()

    def check(self) -> None:
        self.db.check()

    def count(self, table: str, scope: Any) -> int:
        return self.db.count(table, scope.host, scope.cluster)

    def items(self, table: str, scope: Any) -> Iterator[Item]:
        return self.db.items(table, scope.host, scope.cluster)

    def readers(self, item: Item) -> list[str]:
        users = list(self._readers(item))
        if item.user_id and item.user_id not in users:
            users.insert(0, item.user_id)
        return users

    def swap(self, item: Item, new_key_id: str) -> tuple[bool, int]:
        return self.db.swap_with_snapshots(item.table, item.id, new_key_id)

    def current_key(self, table: str, row_id: str) -> str | None:
        return self.db.key_id(table, row_id)

    def owner(self, table: str, row_id: str) -> str | None:
        return self.db.user_id(table, row_id)

    def referenced(self, key_id: str) -> bool:
        return self.db.referenced(key_id)

    def repair(self, scope: Any, journal_path: Path,
               holds: Checker | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        return repair_stranded(self.db, scope, journal_path, holds)

    def remaining(self) -> dict[str, int]:
        return self.db.global_counts()

    def breakdown(self, scope: Any) -> list[dict[str, Any]]:
        out = []
        for table in scope.tables:
            if table in self.tables:
                out.extend(self.db.breakdown(table, scope.host, scope.cluster))
        return out

    def item_line(self, item: Item) -> str:
        return item_line(item)

    def log_status(self) -> dict[str, int]:
        return log_status(self.db)

    def follower_problems(self, item_id: str, secret_id: str) -> list[dict[str, Any]]:
        problems = []
        for snap_id, snap_key in self.db.snapshot_keys(item_id):
            if snap_key != secret_id:
                what = "still on the all-zeros id" if snap_key == FIXED_KEY_ID else f"uses {snap_key}"
                problems.append({"table": "snapshots", "id": snap_id, "secret_id": secret_id,
                                 "problem": f"snapshot of volume {item_id} {what}"})
        return problems

    def dispose(self) -> None:
        self.db.dispose()
