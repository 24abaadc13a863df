"""Seed a Cinder database (schema from ``cinder-manage db sync``) and Nova cell databases with
ConfKeyManager-era rows.

Used by the tests, the demo (scripts/demo.d) and the benchmarks, never by keytools itself: rows
are inserted with SQLAlchemy into the tables cinder's and nova's own migrations created, with the
columns they require and ``deleted = 0``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from keytools.cinder_db import FIXED_KEY_ID


@dataclass
class Seeded:
    volumes: list[str] = field(default_factory=list)
    snapshots: list[str] = field(default_factory=list)
    backups: list[str] = field(default_factory=list)


def _ensure_volume_type(conn: sa.Connection, meta: sa.MetaData) -> str:
    vt = sa.Table("volume_types", meta, autoload_with=conn)
    row = conn.execute(sa.select(vt.c.id).where(vt.c.name == "LuksEncryptor-Template-256")).first()
    if row:
        return row.id
    type_id = str(uuid.uuid4())
    conn.execute(sa.insert(vt).values(id=type_id, name="LuksEncryptor-Template-256", deleted=False,
                                      is_public=True))
    return type_id


def seed(db_url: str, volumes: int = 0, snapshots_per_volume: int = 0, backups: int = 0,
         host: str = "ctl-0@lvm#lvm", backup_host: str = "ctl-0", user_id: str = "u-owner",
         project_id: str = "p-owner", key_id: str = FIXED_KEY_ID, deleted: bool = False,
         cluster_name: str | None = None, batch: int = 2000) -> Seeded:
    """Insert rows on ``key_id`` (the all-zeros id by default); returns their ids."""
    engine = sa.create_engine(db_url)
    out = Seeded()
    try:
        with engine.begin() as conn:
            meta = sa.MetaData()
            vol_t = sa.Table("volumes", meta, autoload_with=conn)
            snap_t = sa.Table("snapshots", meta, autoload_with=conn)
            bak_t = sa.Table("backups", meta, autoload_with=conn)
            type_id = _ensure_volume_type(conn, meta)
            vols: list[dict[str, Any]] = []
            snaps: list[dict[str, Any]] = []
            baks: list[dict[str, Any]] = []

            def flush(force: bool = False) -> None:
                for table, rows in ((vol_t, vols), (snap_t, snaps), (bak_t, baks)):
                    if rows and (force or len(rows) >= batch):
                        conn.execute(sa.insert(table), rows)
                        rows.clear()

            for _ in range(volumes):
                vid = str(uuid.uuid4())
                out.volumes.append(vid)
                vols.append({"id": vid, "volume_type_id": type_id, "user_id": user_id, "project_id": project_id,
                             "host": host, "cluster_name": cluster_name, "encryption_key_id": key_id,
                             "deleted": deleted, "size": 1, "status": "available"})
                for _ in range(snapshots_per_volume):
                    sid = str(uuid.uuid4())
                    out.snapshots.append(sid)
                    snaps.append({"id": sid, "volume_id": vid, "volume_type_id": type_id, "user_id": user_id,
                                  "project_id": project_id, "encryption_key_id": key_id, "deleted": deleted,
                                  "status": "available", "volume_size": 1})
                flush()
            flush(force=True)
            for _ in range(backups):
                bid = str(uuid.uuid4())
                out.backups.append(bid)
                baks.append({"id": bid, "volume_id": str(uuid.uuid4()), "user_id": user_id,
                             "project_id": project_id, "host": backup_host, "encryption_key_id": key_id,
                             "deleted": deleted, "status": "available", "size": 1})
                flush()
            flush(force=True)
    finally:
        engine.dispose()
    return out


def keys(db_url: str, table: str) -> dict[str, str | None]:
    """id -> encryption_key_id of every row of ``table`` (tests)."""
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            t = sa.Table(table, sa.MetaData(), autoload_with=conn)
            return {r.id: r.encryption_key_id for r in conn.execute(sa.select(t.c.id, t.c.encryption_key_id))}
    finally:
        engine.dispose()


def seed_instances(cell_url: str, n: int, key_id: str | None = FIXED_KEY_ID, user_id: str = "u-owner",
                   project_id: str = "p-owner", host: str = "cmp-0", deleted: bool = False) -> list[str]:
    """Insert ``n`` instances into a Nova cell database (schema from ``nova-manage db sync``);
    a deleted one gets ``deleted = id`` as nova's soft delete does."""
    engine = sa.create_engine(cell_url)
    out = []
    try:
        with engine.begin() as conn:
            t = sa.Table("instances", sa.MetaData(), autoload_with=conn)
            for _ in range(n):
                uid = str(uuid.uuid4())
                res = conn.execute(sa.insert(t).values(uuid=uid, user_id=user_id, project_id=project_id, host=host,
                                                       vm_state="active", ephemeral_key_uuid=key_id, deleted=0))
                if deleted:
                    row_id = res.inserted_primary_key[0]
                    conn.execute(sa.update(t).where(t.c.id == row_id).values(deleted=row_id))
                out.append(uid)
    finally:
        engine.dispose()
    return out


def instance_keys(cell_url: str) -> dict[str, str | None]:
    """uuid -> ephemeral_key_uuid of every instance of a cell (tests)."""
    engine = sa.create_engine(cell_url)
    try:
        with engine.connect() as conn:
            return dict(conn.execute(sa.text("SELECT uuid, ephemeral_key_uuid FROM instances")).all())
    finally:
        engine.dispose()


def nova_two_cells(work: Path) -> str:
    """Nova as a TripleO controller has it, under ``work``: API, cell0 and two cell databases
    (nova-manage), and a puppet-generated nova.conf naming the API database with a new fixed_key.
    The key is also written to ``work/fixed_key.hex`` (0600, for --fixed-key-file) and returned."""
    import secrets

    from keytools.nova_db import create_databases

    create_databases(f"sqlite:///{work}/nova_api.sqlite", f"sqlite:///{work}/cell0.sqlite",
                     {"cell1": f"sqlite:///{work}/cell1.sqlite", "cell2": f"sqlite:///{work}/cell2.sqlite"})
    key = secrets.token_hex(32)
    key_file = work / "fixed_key.hex"
    key_file.write_text(key + "\n")
    key_file.chmod(0o600)
    conf = work / "nodes/ctl-0/var/lib/config-data/puppet-generated/nova/etc/nova"
    conf.mkdir(parents=True)
    (conf / "nova.conf").write_text(f"[api_database]\nconnection = sqlite:///{work}/nova_api.sqlite\n"
                                    f"[key_manager]\nbackend = barbican\nfixed_key = {key}\n")
    return key


NOVA_FILES = ("nova_api.sqlite", "cell0.sqlite", "cell1.sqlite", "cell2.sqlite")


def copy_nova(template: Path, dest: Path) -> dict[str, str]:
    """A copy of a nova-manage template (``tests/conftest.py`` ``nova_template``) in ``dest``:
    {'api': url, 'cell0': url, 'cell1': url, 'cell2': url}; the copy's cell_mappings point at the
    copied cells."""
    import shutil

    dest.mkdir(parents=True, exist_ok=True)
    for name in NOVA_FILES:
        shutil.copyfile(template / name, dest / name)
    urls = {"api": f"sqlite:///{dest / 'nova_api.sqlite'}"}
    eng = sa.create_engine(urls["api"])
    with eng.begin() as conn:
        for cell in ("cell0", "cell1", "cell2"):
            urls[cell] = f"sqlite:///{dest / (cell + '.sqlite')}"
            conn.execute(sa.text("UPDATE cell_mappings SET database_connection = :u WHERE name = :n"),
                         {"u": urls[cell], "n": cell})
    eng.dispose()
    return urls
