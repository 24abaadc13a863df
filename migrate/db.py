"""The Cinder database as the migration sees it: rows on the all-zeros key id, changed only by CAS.

Reading (cinder's queries and host matching) is ``keytools.cinder_rows.CinderRows``, shared with
``fixed-key``. Here: rows are listed in keyset pages so memory stays flat however many there are,
and every write is a compare-and-swap on the all-zeros id, so two runs (or cinder itself) can
never migrate the same row twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from keytools.cinder_db import FIXED_KEY_ID
from keytools.cinder_rows import CinderRows

PAGE = 500


KINDS = {"volumes": "volume", "backups": "backup", "instances": "instance", "images": "image"}


@dataclass(frozen=True)
class Item:
    """One object to migrate, any service: a volume (its snapshots follow it), a backup, an
    instance (``where`` = its cell), an image."""

    table: str  # "volumes", "backups", "instances", "images"
    id: str
    user_id: str | None
    project_id: str | None
    host: str | None
    where: str | None = None  # nova: the cell; glance: unused

    @property
    def kind(self) -> str:
        return KINDS.get(self.table, self.table)


class CinderDB(CinderRows):
    """``CinderRows`` plus what only the migration does: list rows to migrate as ``Item``s in
    keyset pages, and compare-and-swap them off the all-zeros id."""

    def items(self, table: str, host: str | None = None, cluster: str | None = None,
              after: str = "") -> Iterator[Item]:
        """Rows of ``table`` on the all-zeros id, in id order, one page in memory at a time."""
        t = self.table(table)
        conds = self._scope(table, host, cluster)
        last = after
        while True:
            query = (sa.select(t.c.id, t.c.user_id, t.c.project_id, t.c.host)
                     .where(*conds, t.c.id > last).order_by(t.c.id).limit(PAGE))
            with self.engine.connect() as conn:
                rows = conn.execute(query).all()
            for row in rows:
                yield Item(table, row.id, row.user_id, row.project_id, row.host)
            if len(rows) < PAGE:
                return
            last = rows[-1].id

    # ---- writing (compare-and-swap only) ------------------------------------------------------------

    def swap(self, table: str, row_id: str, new_key_id: str) -> bool:
        """Point the row (alone) at ``new_key_id`` only if it is still on the all-zeros id."""
        t = self.table(table)
        stmt = (sa.update(t).where(t.c.id == row_id, t.c.encryption_key_id == FIXED_KEY_ID,
                                   t.c.deleted == sa.false()).values(encryption_key_id=new_key_id))
        with self.engine.begin() as conn:
            return conn.execute(stmt).rowcount == 1

    def swap_with_snapshots(self, table: str, row_id: str, new_key_id: str) -> tuple[bool, int]:
        """CAS the row and, for a volume that won, its all-zeros snapshots, in one transaction
        (cinder saves them separately; here a crash cannot strand snapshots). Returns
        (won, snapshots updated)."""
        t = self.table(table)
        stmt = (sa.update(t).where(t.c.id == row_id, t.c.encryption_key_id == FIXED_KEY_ID,
                                   t.c.deleted == sa.false()).values(encryption_key_id=new_key_id))
        with self.engine.begin() as conn:
            if conn.execute(stmt).rowcount != 1:
                return False, 0
            if table != "volumes":
                return True, 0
            s = self.table("snapshots")
            snaps = conn.execute(sa.update(s).where(s.c.volume_id == row_id, s.c.encryption_key_id == FIXED_KEY_ID,
                                                    s.c.deleted == sa.false()).values(encryption_key_id=new_key_id))
            return True, snaps.rowcount

    def swap_snapshots(self, volume_id: str, new_key_id: str) -> int:
        """Give the volume's non-deleted all-zeros snapshots the volume's new id (cinder does this
        right after the volume; here it is CAS too)."""
        s = self.table("snapshots")
        stmt = (sa.update(s).where(s.c.volume_id == volume_id, s.c.encryption_key_id == FIXED_KEY_ID,
                                   s.c.deleted == sa.false()).values(encryption_key_id=new_key_id))
        with self.engine.begin() as conn:
            return conn.execute(stmt).rowcount

    def repair_snapshot(self, snapshot_id: str, key: str) -> bool:
        """Give one snapshot its volume's key id, only if it is still on the all-zeros id (CAS)."""
        s = self.table("snapshots")
        stmt = (sa.update(s).where(s.c.id == snapshot_id, s.c.encryption_key_id == FIXED_KEY_ID,
                                   s.c.deleted == sa.false()).values(encryption_key_id=key))
        with self.engine.begin() as conn:
            return conn.execute(stmt).rowcount == 1


@dataclass(frozen=True)
class VolumeRow:
    """A volume as ``migrate rekey`` needs it: its key, state, owner and its type's key size."""

    id: str
    key_id: str | None
    status: str | None
    attach_status: str | None
    host: str | None
    user_id: str | None
    project_id: str | None
    key_bits: int | None  # the volume type's encryption key_size (None: not set)

    @property
    def in_use(self) -> bool:
        return self.status == "in-use" or self.attach_status == "attached"


class RekeyDB(CinderDB):
    """``CinderDB`` plus what re-keying reads and writes: volumes with any key id, who else uses
    a key id (snapshots and backups keep the old header and so the old key), and a compare-and-swap
    from one key id to another."""

    def _volume_query(self) -> sa.Select:
        v = self.table("volumes")
        e = self.table("encryption")
        size = (sa.select(e.c.key_size).where(e.c.volume_type_id == v.c.volume_type_id, e.c.deleted == sa.false())
                .limit(1).scalar_subquery())
        return sa.select(v.c.id, v.c.encryption_key_id, v.c.status, v.c.attach_status, v.c.host, v.c.user_id,
                         v.c.project_id, size.label("key_bits")).where(v.c.deleted == sa.false())

    @staticmethod
    def _row(r: Any) -> VolumeRow:
        return VolumeRow(r.id, r.encryption_key_id, r.status, r.attach_status, r.host, r.user_id, r.project_id,
                         int(r.key_bits) if r.key_bits else None)

    def check_rekey(self) -> None:
        self.check(("encryption",))

    def volume(self, volume_id: str) -> VolumeRow | None:
        """A non-deleted volume (None when gone or deleted)."""
        v = self.table("volumes")
        with self.engine.connect() as conn:
            row = conn.execute(self._volume_query().where(v.c.id == volume_id)).first()
        return self._row(row) if row else None

    def encrypted_volumes(self, host: str | None = None, cluster: str | None = None,
                          after: str = "") -> Iterator[VolumeRow]:
        """Non-deleted volumes with a key id, in scope, in id order, one page at a time."""
        v = self.table("volumes")
        last = after
        while True:
            query = (self._volume_query().where(v.c.encryption_key_id.is_not(None), self._volume_scope(host, cluster),
                                                v.c.id > last).order_by(v.c.id).limit(PAGE))
            with self.engine.connect() as conn:
                rows = conn.execute(query).all()
            yield from (self._row(r) for r in rows)
            if len(rows) < PAGE:
                return
            last = rows[-1].id

    def key_users(self, key_id: str, but: str) -> list[dict[str, str]]:
        """Non-deleted snapshots and backups (and volumes other than ``but``) that use ``key_id``."""
        out: list[dict[str, str]] = []
        with self.engine.connect() as conn:
            for name in ("volumes", "snapshots", "backups"):
                t = self.table(name)
                query = sa.select(t.c.id).where(t.c.encryption_key_id == key_id, t.c.deleted == sa.false(),
                                                t.c.id != but).order_by(t.c.id)
                out.extend({"table": name, "id": r.id} for r in conn.execute(query))
        return out

    def swap_key(self, volume_id: str, old_key_id: str, new_key_id: str) -> bool:
        """Point the volume (alone: its snapshots keep the old header) at ``new_key_id`` only if it
        is still on ``old_key_id`` and not deleted."""
        t = self.table("volumes")
        stmt = (sa.update(t).where(t.c.id == volume_id, t.c.encryption_key_id == old_key_id,
                                   t.c.deleted == sa.false()).values(encryption_key_id=new_key_id))
        with self.engine.begin() as conn:
            return conn.execute(stmt).rowcount == 1
