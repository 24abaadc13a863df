"""Nova's key ids, every cell: ``instances.ephemeral_key_uuid`` and the vTPM secret.

Cells come from ``keytools.nova_db.NovaCells`` (nova_api's ``cell_mappings`` or ``--nova-db-url``).
"Not deleted" is ``deleted = 0`` (nova soft-deletes by setting ``deleted`` to the row id). The vTPM
secret's id is the ``vtpm_secret_uuid`` row of ``instance_system_metadata`` (nova's libvirt driver
creates it with the owner's token and reads it back at every boot). Nova reads both keys with the
instance owner's token: the read path is the instance's user in its project.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa

from keytools.key_refs.model import READ_USER, KeyRef, ReadPath, paged
from keytools.nova_db import NovaCells, NovaSettings

VTPM_KEY = "vtpm_secret_uuid"
PUSH_DOWN = 500


class NovaKeySource:
    service = "nova"

    def __init__(self, settings: NovaSettings) -> None:
        self.settings = settings
        self._cells: NovaCells | None = None

    def describe(self) -> str:
        return self._cells.describe() if self._cells else "nova"

    def dispose(self) -> None:
        if self._cells:
            self._cells.dispose()

    def scan(self, only: frozenset[str] | None = None) -> Iterator[KeyRef]:
        self._cells = cells = NovaCells(self.settings)
        cells.check()
        for cell in cells.cells:
            yield from self._cell(cells, cell.name, only)

    def _cell(self, cells: NovaCells, name: str, only: frozenset[str] | None) -> Iterator[KeyRef]:
        t = cells.table(name)
        push = only is not None and len(only) <= PUSH_DOWN
        with cells.connect(name) as conn:
            conds = [t.c.deleted == 0, t.c.ephemeral_key_uuid.is_not(None)]
            if push:
                conds.append(t.c.ephemeral_key_uuid.in_(sorted(only or ())))
            q = sa.select(t.c.uuid, t.c.ephemeral_key_uuid, t.c.host, t.c.project_id, t.c.user_id).where(*conds)

            def fetch(after: str, limit: int) -> list[Any]:
                return conn.execute(q.where(t.c.uuid > after).order_by(t.c.uuid).limit(limit)).all()

            for r in paged(fetch, lambda r: r.uuid, ""):
                yield KeyRef("nova", "instances", r.uuid, r.ephemeral_key_uuid, "ephemeral_key_uuid",
                             f"{name}/{r.host or '-'}", r.project_id, r.user_id,
                             ReadPath(READ_USER, r.user_id, r.project_id))
            if "instance_system_metadata" not in sa.inspect(conn).get_table_names():
                return
            m = sa.Table("instance_system_metadata", sa.MetaData(), autoload_with=conn)
            conds = [m.c.key == VTPM_KEY, m.c.deleted == 0, t.c.deleted == 0, m.c.value.is_not(None)]
            if push:
                conds.append(m.c.value.in_(sorted(only or ())))
            q2 = (sa.select(m.c.id, m.c.value, t.c.uuid, t.c.host, t.c.project_id, t.c.user_id)
                  .select_from(m.join(t, t.c.uuid == m.c.instance_uuid)).where(*conds))

            def fetch2(after: int, limit: int) -> list[Any]:
                return conn.execute(q2.where(m.c.id > after).order_by(m.c.id).limit(limit)).all()

            for r in paged(fetch2, lambda r: r.id, 0):
                yield KeyRef("nova", "vtpm", r.uuid, r.value, VTPM_KEY, f"{name}/{r.host or '-'}", r.project_id,
                             r.user_id, ReadPath(READ_USER, r.user_id, r.project_id))
