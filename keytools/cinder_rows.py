"""The one reader of Cinder's volumes, snapshots and backups on the all-zeros key id.

``migrate`` (plan, run, verify, status: through ``migrate.db.CinderDB``, which adds the paged
listing and the compare-and-swap writes) and ``fixed-key`` (``keytools.cinder_db``: the retire
check and the inventory) read Cinder through this class, so "still on the all-zeros id" means
the same everywhere: cinder's own test.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from keytools.cinder_db import FIXED_KEY_ID, FIXED_KEY_TABLES
from keytools.errors import ServiceUnavailable, UsageError


def host_filter(column: sa.ColumnElement[Any], value: str, mysql: bool) -> sa.ColumnElement[bool]:
    """cinder.db.api._filter_host: pool exact; backend = exact or value#*; host also value@*."""
    level = "pool" if "#" in value else "backend" if "@" in value else "host"
    if mysql:  # MySQL compares case-insensitively; cinder forces BINARY
        conds = [column == sa.func.binary(value)]
        like = "LIKE BINARY"
    else:
        conds = [column == value]
        like = "LIKE"
    if level != "pool":
        conds.append(column.op(like)(value + "#%"))
        if level == "host":
            conds.append(column.op(like)(value + "@%"))
    return sa.or_(*conds)


class CinderRows:
    """The one reader of Cinder's volumes, snapshots and backups on the all-zeros key id.

    Queries follow cinder's own: non-deleted rows (``deleted`` false; NULL is invisible to cinder
    too), exact string equality on ``encryption_key_id``, cinder's host matching (``host``,
    ``host@backend``, ``host@backend#pool``; ``cluster_name`` for clustered cinder-volume; backups
    by exact host). SQLite and MySQL/MariaDB (where host matching is forced binary, as cinder
    does). ``migrate.db.CinderDB`` adds the paged row listing and the compare-and-swap writes."""

    def __init__(self, url: str, pool_size: int = 8) -> None:
        try:
            parsed = sa.engine.make_url(url)
        except Exception:
            raise UsageError("the database URL is not valid",
                             "Give a SQLAlchemy URL such as mysql+pymysql://cinder:PW@HOST/cinder "
                             "or sqlite:////path/cinder.sqlite") from None
        self.url = parsed
        self.mysql = parsed.get_backend_name() in ("mysql", "mariadb")
        kwargs: dict[str, Any] = {"future": True}
        if parsed.get_backend_name() == "sqlite":
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
        else:
            kwargs.update(pool_size=pool_size, max_overflow=4, pool_pre_ping=True, pool_recycle=3600)
        try:
            self.engine = sa.create_engine(parsed, **kwargs)
        except Exception as exc:  # unknown dialect, missing driver
            raise UsageError(f"database URL not usable: {type(exc).__name__}: {exc}",
                             "Use mysql+pymysql:// or sqlite:///") from None
        self.meta = sa.MetaData()
        self._tables: dict[str, sa.Table] = {}

    def describe(self) -> str:
        return self.url.render_as_string(hide_password=True)

    def check(self, extra_tables: tuple[str, ...] = ()) -> None:
        """Connect and make sure this is a cinder schema (fail early with a clear message)."""
        try:
            with self.engine.connect() as conn:
                insp = sa.inspect(conn)
                names = set(insp.get_table_names())
                missing = [t for t in (*FIXED_KEY_TABLES, *extra_tables) if t not in names]
                if missing:
                    raise UsageError(f"{self.describe()} is not a Cinder database (no table {', '.join(missing)})",
                                     "Point --db-url or [database] connection at Cinder's database")
                for name in (*FIXED_KEY_TABLES, *extra_tables):
                    self._tables[name] = sa.Table(name, self.meta, autoload_with=conn)
                for name in FIXED_KEY_TABLES:
                    cols = set(self._tables[name].c.keys())
                    need = {"id", "encryption_key_id", "deleted"}
                    if not need <= cols:
                        raise UsageError(f"{self.describe()}: table {name} has no {', '.join(sorted(need - cols))}",
                                         "Run 'cinder-manage db sync' first (Queens or later schema)")
        except sa.exc.OperationalError as exc:
            raise ServiceUnavailable(f"cannot connect to the Cinder database {self.describe()}: "
                                     f"{' '.join(str(exc.orig).split())[:200]}",
                                     "Check [database] connection and that the database server is up") from None
        except sa.exc.ArgumentError as exc:
            raise UsageError(f"database URL not usable: {exc}", "Use mysql+pymysql:// or sqlite:///") from None

    def table(self, name: str) -> sa.Table:
        if not self._tables:
            self.check()
        return self._tables[name]

    def dispose(self) -> None:
        self.engine.dispose()

    def _zeros(self, t: sa.Table) -> sa.ColumnElement[bool]:
        return sa.and_(t.c.encryption_key_id == FIXED_KEY_ID, t.c.deleted == sa.false())

    def _scope(self, table: str, host: str | None, cluster: str | None) -> list[sa.ColumnElement[bool]]:
        t = self.table(table)
        conds: list[sa.ColumnElement[bool]] = [self._zeros(t)]
        if table == "backups":
            if host:
                conds.append(t.c.host == (sa.func.binary(host) if self.mysql else host))
        elif cluster:
            conds.append(host_filter(t.c.cluster_name, cluster, self.mysql))
        elif host:
            conds.append(host_filter(t.c.host, host, self.mysql))
        return conds

    def count(self, table: str, host: str | None = None, cluster: str | None = None) -> int:
        t = self.table(table)
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(t)
                                .where(*self._scope(table, host, cluster))).scalar_one()

    def count_snapshots(self, host: str | None = None, cluster: str | None = None) -> int:
        """Non-deleted all-zeros snapshots of the volumes in scope (they follow their volume)."""
        s, v = self.table("snapshots"), self.table("volumes")
        query = (sa.select(sa.func.count()).select_from(s.join(v, v.c.id == s.c.volume_id))
                 .where(self._zeros(s), *self._scope("volumes", host, cluster)))
        with self.engine.connect() as conn:
            return conn.execute(query).scalar_one()

    def global_counts(self) -> dict[str, int]:
        """Non-deleted rows still on the all-zeros id, all hosts (what cinder's status lines count)."""
        return {name: self.count(name) for name in FIXED_KEY_TABLES}

    def breakdown(self, table: str, host: str | None = None, cluster: str | None = None) -> list[dict[str, Any]]:
        """Remaining rows grouped by host and project (for plan/status)."""
        t = self.table(table)
        query = (sa.select(t.c.host, t.c.project_id, sa.func.count().label("rows"))
                 .where(*self._scope(table, host, cluster)).group_by(t.c.host, t.c.project_id)
                 .order_by(t.c.host, t.c.project_id))
        with self.engine.connect() as conn:
            return [{"table": table, "host": r.host, "project": r.project_id, "rows": r.rows}
                    for r in conn.execute(query)]

    def snapshot_breakdown(self) -> list[dict[str, Any]]:
        """All-zeros snapshots grouped by their volume's host (snapshots have none) and project."""
        s, v = self.table("snapshots"), self.table("volumes")
        query = (sa.select(v.c.host, s.c.project_id, sa.func.count().label("rows"))
                 .select_from(s.outerjoin(v, v.c.id == s.c.volume_id)).where(self._zeros(s))
                 .group_by(v.c.host, s.c.project_id))
        with self.engine.connect() as conn:
            return [{"table": "snapshots", "host": r.host, "project": r.project_id, "rows": r.rows}
                    for r in conn.execute(query)]

    def backups_may_depend(self) -> list[dict[str, Any]]:
        """Backups with a NULL key id (made before the column existed: the id lives only in the
        backup's stored metadata) of a volume whose type is encrypted, by host and project."""
        self.check(("encryption",))
        b, v, e = self.table("backups"), self.table("volumes"), self.table("encryption")
        query = (sa.select(b.c.host, b.c.project_id, sa.func.count().label("rows"))
                 .select_from(b.join(v, v.c.id == b.c.volume_id))
                 .where(b.c.encryption_key_id.is_(None), b.c.deleted == sa.false(),
                        v.c.volume_type_id.in_(sa.select(e.c.volume_type_id)))
                 .group_by(b.c.host, b.c.project_id))
        with self.engine.connect() as conn:
            return [{"table": "backups", "host": r.host, "project": r.project_id, "rows": r.rows}
                    for r in conn.execute(query)]

    def key_id(self, table: str, row_id: str) -> str | None:
        """The row's current encryption_key_id (None when gone or deleted)."""
        t = self.table(table)
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(t.c.encryption_key_id, t.c.deleted).where(t.c.id == row_id)).first()
        if row is None or row.deleted:
            return None
        return row.encryption_key_id

    def user_id(self, table: str, row_id: str) -> str | None:
        t = self.table(table)
        with self.engine.connect() as conn:
            return conn.execute(sa.select(t.c.user_id).where(t.c.id == row_id)).scalar()

    def referenced(self, key_id: str) -> bool:
        """Does any volume, snapshot or backup (deleted ones too) use this key id?"""
        with self.engine.connect() as conn:
            for name in FIXED_KEY_TABLES:
                t = self.table(name)
                if conn.execute(sa.select(t.c.id).where(t.c.encryption_key_id == key_id).limit(1)).first():
                    return True
        return False

    def snapshot_keys(self, volume_id: str) -> list[tuple[str, str | None]]:
        """(snapshot id, key id) of every non-deleted snapshot of a volume."""
        s = self.table("snapshots")
        with self.engine.connect() as conn:
            return [(r.id, r.encryption_key_id) for r in conn.execute(
                sa.select(s.c.id, s.c.encryption_key_id)
                .where(s.c.volume_id == volume_id, s.c.deleted == sa.false()))]

    def _volume_scope(self, host: str | None, cluster: str | None) -> sa.ColumnElement[bool]:
        """Is a volume (any key) inside --host/--cluster, matched as for the rows to migrate."""
        v = self.table("volumes")
        if cluster:
            return host_filter(v.c.cluster_name, cluster, self.mysql)
        if host:
            return host_filter(v.c.host, host, self.mysql)
        return sa.true()

    def stranded_snapshots(self, host: str | None = None, cluster: str | None = None) -> list[dict[str, Any]]:
        """Snapshots on the all-zeros id whose volume is not (crash between cinder's two updates,
        a backup restore that re-keyed the volume, or a deleted volume: cinder migrates none of
        them), with their volume's key, host and whether it is inside --host/--cluster."""
        s, v = self.table("snapshots"), self.table("volumes")
        query = (sa.select(s.c.id, s.c.volume_id, v.c.encryption_key_id.label("volume_key"),
                           v.c.deleted.label("volume_deleted"), v.c.host.label("volume_host"), v.c.id.label("volume_row"),
                           sa.case((self._volume_scope(host, cluster), 1), else_=0).label("in_scope"))
                 .select_from(s.outerjoin(v, v.c.id == s.c.volume_id))
                 .where(self._zeros(s), sa.or_(v.c.id.is_(None), v.c.deleted == sa.true(),
                                               v.c.encryption_key_id != FIXED_KEY_ID,
                                               v.c.encryption_key_id.is_(None)))
                 .order_by(s.c.volume_id, s.c.id))
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]
