"""Cinder's key ids: ``encryption_key_id`` of non-deleted volumes, snapshots and backups.

Read through ``keytools.cinder_rows.CinderRows`` (cinder's notion of "deleted", its schema check).
Cinder reads a volume's key with the token of the user attaching it; Barbican lets that user read
through an ACL naming it or a role in the secret's project, so the read path is the object's user
in the object's project. Snapshots have no host: their volume's is shown. Backups with a NULL key
id of an encrypted volume type (made before the column existed) may depend on a key Cinder does
not record: they are yielded with ``key_id=None``, ``certain=False``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa

from keytools.key_refs.model import READ_USER, KeyRef, ReadPath, paged

PUSH_DOWN = 500  # an ``only`` set up to this size goes into the query as IN (...)


class CinderKeySource:
    service = "cinder"

    def __init__(self, db_url: str) -> None:
        from keytools.cinder_rows import CinderRows

        self.rows = CinderRows(db_url)

    def describe(self) -> str:
        return self.rows.describe()

    def dispose(self) -> None:
        self.rows.dispose()

    def _select(self, conn: sa.Connection, query: sa.Select, id_col: sa.ColumnElement[Any]) -> Iterator[Any]:
        def fetch(after: str, limit: int) -> list[Any]:
            return conn.execute(query.where(id_col > after).order_by(id_col).limit(limit)).all()
        return paged(fetch, lambda r: r.id, "")

    def scan(self, only: frozenset[str] | None = None) -> Iterator[KeyRef]:
        self.rows.check(("encryption",))
        v, s, b, e = (self.rows.table(n) for n in ("volumes", "snapshots", "backups", "encryption"))

        def keyed(t: sa.Table) -> list[sa.ColumnElement[bool]]:
            conds = [t.c.deleted == sa.false(), t.c.encryption_key_id.is_not(None)]
            if only is not None and len(only) <= PUSH_DOWN:
                conds.append(t.c.encryption_key_id.in_(sorted(only)))
            return conds

        def ref(kind: str, r: Any) -> KeyRef:
            return KeyRef("cinder", kind, r.id, r.encryption_key_id, "encryption_key_id", r.host, r.project_id,
                          r.user_id, ReadPath(READ_USER, r.user_id, r.project_id), certain=r.encryption_key_id is not None)

        with self.rows.engine.connect() as conn:
            q = sa.select(v.c.id, v.c.encryption_key_id, v.c.host, v.c.project_id, v.c.user_id).where(*keyed(v))
            for r in self._select(conn, q, v.c.id):
                yield ref("volumes", r)
            q = (sa.select(s.c.id, s.c.encryption_key_id, v.c.host, s.c.project_id, s.c.user_id)
                 .select_from(s.outerjoin(v, v.c.id == s.c.volume_id)).where(*keyed(s)))
            for r in self._select(conn, q, s.c.id):
                yield ref("snapshots", r)
            q = sa.select(b.c.id, b.c.encryption_key_id, b.c.host, b.c.project_id, b.c.user_id).where(*keyed(b))
            for r in self._select(conn, q, b.c.id):
                yield ref("backups", r)
            q = (sa.select(b.c.id, b.c.encryption_key_id, b.c.host, b.c.project_id, b.c.user_id)
                 .select_from(b.join(v, v.c.id == b.c.volume_id))
                 .where(b.c.encryption_key_id.is_(None), b.c.deleted == sa.false(),
                        v.c.volume_type_id.in_(sa.select(e.c.volume_type_id))))
            for r in self._select(conn, q, b.c.id):
                yield ref("backups_may_depend", r)
