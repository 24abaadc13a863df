"""Barbican's side of a reconciliation, read-only from its database (SQLite or MySQL/MariaDB).

The API cannot list secrets across projects, the database can: secrets (type, project, creator,
name, created, expiration, deleted), orders, read ACLs and metadata, in keyset pages. Project ids
are Keystone's (``projects.external_id``), not Barbican's internal row ids. Times are naive UTC,
as Barbican stores them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from keytools.barbican import barbican_conf
from keytools.errors import ServiceUnavailable, UsageError
from keytools.key_refs.barbican import engine_for
from keytools.key_refs.model import PAGE, paged

NEED = {"secrets": {"id", "name", "secret_type", "project_id", "creator_id", "created_at", "expiration", "deleted",
                    "deleted_at"},
        "projects": {"id", "external_id"}, "orders": {"id", "secret_id", "project_id", "deleted", "status"},
        "secret_acls": {"id", "secret_id", "operation", "project_access"},
        "secret_acl_users": {"acl_id", "user_id"}}
# barbican-manage db clean's tables (barbican/model/clean.py cleanup_all), soft-deleted rows only.
CLEAN_TABLES = ("transport_keys", "order_barbican_metadata", "order_retry_tasks", "order_plugin_metadata", "orders",
                "encrypted_data", "secret_user_metadata", "secret_store_metadata", "container_secret",
                "secret_consumer_metadata", "secrets", "container_consumer_metadata", "containers", "kek_data")


@dataclass(slots=True)
class SecretRow:
    id: str
    name: str | None
    secret_type: str | None
    project: str | None
    creator: str | None
    created: dt.datetime | None
    expiration: dt.datetime | None
    deleted: bool
    deleted_at: dt.datetime | None
    project_access: bool = True  # the read ACL's flag (True without an ACL)
    acl_users: tuple[str, ...] = ()
    ordered: bool = False  # made by an order (castellan's create_key)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "secret_type": self.secret_type, "project": self.project,
                "creator": self.creator, "created": _iso(self.created), "expiration": _iso(self.expiration),
                "deleted": self.deleted}


@dataclass(slots=True)
class OrderRow:
    id: str
    secret_id: str | None
    project: str | None
    creator: str | None
    status: str | None
    created: dt.datetime | None


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") + "Z" if value else None


def resolve_url(db_url: str | None, config_file: str | None) -> str:
    """``--barbican-db-url``, else ``[database] connection`` of ``--barbican-config-file``."""
    if db_url and config_file:
        raise UsageError("--barbican-db-url and --barbican-config-file both given", "Give one of them")
    if db_url:
        return db_url
    if config_file:
        return barbican_conf.load(config_file, need_kek=False).connection
    raise UsageError("no Barbican database given",
                     "Pass --barbican-db-url URL or --barbican-config-file barbican.conf (the API cannot list "
                     "secrets across projects)")


class BarbicanDB:
    """Read-only access to Barbican's tables; refuses a database that is not Barbican's."""

    def __init__(self, url: str) -> None:
        self.engine = engine_for(url)
        self.display = self.engine.url.render_as_string(hide_password=True)
        self.tables: dict[str, sa.Table] = {}

    def dispose(self) -> None:
        self.engine.dispose()

    def connect(self) -> sa.Connection:
        try:
            return self.engine.connect()
        except sa.exc.DBAPIError as exc:
            raise ServiceUnavailable(f"cannot connect to the Barbican database {self.display}: "
                                     f"{' '.join(str(exc.orig).split())[:160]}",
                                     "Check the URL and that the database server is up") from None

    def check(self) -> None:
        with self.connect() as conn:
            names = set(sa.inspect(conn).get_table_names())
            missing = sorted(set(NEED) - names)
            if missing:
                raise UsageError(f"{self.display} is not a Barbican database (no table {', '.join(missing)})",
                                 "Point --barbican-db-url or barbican.conf [database] connection at Barbican's "
                                 "database")
            meta = sa.MetaData()
            for name in sorted(names & {*NEED, *CLEAN_TABLES}):
                self.tables[name] = sa.Table(name, meta, autoload_with=conn)
            for name, cols in NEED.items():
                lacking = cols - set(self.tables[name].c.keys())
                if lacking:
                    raise UsageError(f"{self.display}: table {name} has no {', '.join(sorted(lacking))}",
                                     "Is this Barbican's database? Run 'barbican-manage db upgrade' first")

    def t(self, name: str) -> sa.Table:
        if not self.tables:
            self.check()
        return self.tables[name]

    def projects(self, conn: sa.Connection) -> dict[str, str]:
        p = self.t("projects")
        return {r.id: r.external_id for r in conn.execute(sa.select(p.c.id, p.c.external_id))}

    def secrets(self) -> Iterator[SecretRow]:
        """Every secret (deleted ones too), with its read ACL and whether an order made it."""
        s, a, u, o = self.t("secrets"), self.t("secret_acls"), self.t("secret_acl_users"), self.t("orders")
        with self.connect() as conn:
            projects = self.projects(conn)
            acls: dict[str, tuple[bool, list[str]]] = {}
            acl_secret: dict[str, str] = {}
            for r in conn.execute(sa.select(a.c.id, a.c.secret_id, a.c.project_access).where(a.c.operation == "read")):
                acls[r.secret_id] = (bool(r.project_access), [])
                acl_secret[r.id] = r.secret_id
            for r in conn.execute(sa.select(u.c.acl_id, u.c.user_id)):
                if r.acl_id in acl_secret:
                    acls[acl_secret[r.acl_id]][1].append(r.user_id)
            ordered = {r.secret_id for r in conn.execute(sa.select(o.c.secret_id).where(o.c.secret_id.is_not(None))
                                                         .distinct())}
            q = sa.select(s.c.id, s.c.name, s.c.secret_type, s.c.project_id, s.c.creator_id, s.c.created_at,
                          s.c.expiration, s.c.deleted, s.c.deleted_at)

            def fetch(after: str, limit: int) -> list[Any]:
                return conn.execute(q.where(s.c.id > after).order_by(s.c.id).limit(limit)).all()

            for r in paged(fetch, lambda r: r.id, "", PAGE):
                access, users = acls.get(r.id, (True, []))
                yield SecretRow(r.id, r.name, r.secret_type, projects.get(r.project_id), r.creator_id, r.created_at,
                                r.expiration, bool(r.deleted), r.deleted_at, access, tuple(sorted(users)),
                                r.id in ordered)

    def live_orders(self) -> Iterator[OrderRow]:
        o = self.t("orders")
        with self.connect() as conn:
            projects = self.projects(conn)
            q = (sa.select(o.c.id, o.c.secret_id, o.c.project_id, o.c.creator_id, o.c.status, o.c.created_at)
                 .where(o.c.deleted == sa.false()))

            def fetch(after: str, limit: int) -> list[Any]:
                return conn.execute(q.where(o.c.id > after).order_by(o.c.id).limit(limit)).all()

            for r in paged(fetch, lambda r: r.id, "", PAGE):
                yield OrderRow(r.id, r.secret_id, projects.get(r.project_id), r.creator_id, r.status, r.created_at)

    def clean_counts(self, threshold: dt.datetime) -> dict[str, int]:
        """What ``barbican-manage db clean --min-days N`` would hard-delete, per table (its order and
        rules: soft-deleted rows deleted on or before ``threshold``; orders only without retry tasks;
        secrets and containers only when no order row points at them any more)."""
        counts: dict[str, int] = {}
        with self.connect() as conn:
            def old(t: sa.Table) -> list[sa.ColumnElement[bool]]:
                return [t.c.deleted == sa.true(), t.c.deleted_at <= threshold]

            for name in CLEAN_TABLES:
                if name not in self.tables or name in ("orders", "secrets", "containers"):
                    continue
                t = self.tables[name]
                counts[name] = conn.execute(sa.select(sa.func.count()).select_from(t).where(*old(t))).scalar_one()
            o = self.t("orders")
            rt = self.tables.get("order_retry_tasks")
            order_cond = old(o)
            if rt is not None:
                order_cond.append(~sa.exists().where(rt.c.order_id == o.c.id))
            counts["orders"] = conn.execute(sa.select(sa.func.count()).select_from(o).where(*order_cond)).scalar_one()
            surviving = sa.select(o.c.id).where(~sa.and_(*order_cond))  # orders the clean keeps
            for parent, col in (("secrets", o.c.secret_id), ("containers", o.c.container_id)):
                if parent not in self.tables:
                    continue
                t = self.tables[parent]
                blocked = sa.exists().where(col == t.c.id, o.c.id.in_(surviving))
                counts[parent] = conn.execute(sa.select(sa.func.count()).select_from(t)
                                              .where(*old(t), ~blocked)).scalar_one()
                counts[f"{parent}_blocked_by_orders"] = conn.execute(
                    sa.select(sa.func.count()).select_from(t).where(*old(t), blocked)).scalar_one()
        return counts
