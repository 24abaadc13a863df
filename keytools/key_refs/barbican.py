"""Barbican's own consumer registrations, read from its database.

A service may register itself as a consumer of a secret (``secret_consumer_metadata``: service,
resource type, resource id) or of a container (``container_consumer_metadata``: name, URL; every
secret of the container is then in use). Non-deleted registrations only. The registering project
reads the secret: the read path is that project's members.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from keytools.errors import ServiceUnavailable, UsageError
from keytools.key_refs.model import READ_PROJECT, KeyRef, ReadPath, paged

NEED = ("secrets", "projects", "secret_consumer_metadata")


def engine_for(url: str) -> sa.Engine:
    """A read engine on Barbican's database (SQLite or MySQL/MariaDB URL)."""
    try:
        parsed = sa.engine.make_url(url)
    except Exception:
        raise UsageError("the Barbican database URL is not valid",
                         "Give mysql+pymysql://barbican:PW@HOST/barbican or sqlite:////path/barbican.sqlite") from None
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        if not parsed.database or not Path(parsed.database).is_file():
            raise ServiceUnavailable(f"Barbican database {parsed.database}: no such file",
                                     "Check --barbican-db-url or [database] connection in barbican.conf")
        kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
    else:
        kwargs.update(pool_pre_ping=True, pool_recycle=3600, connect_args={"connect_timeout": 10})
    try:
        return sa.create_engine(parsed, **kwargs)
    except Exception as exc:  # noqa: BLE001 - unknown dialect, missing driver
        raise UsageError(f"Barbican database URL not usable: {type(exc).__name__}",
                         "Use mysql+pymysql:// or sqlite:///") from None


class BarbicanConsumers:
    service = "barbican"

    def __init__(self, url: str) -> None:
        self.engine = engine_for(url)
        self.display = self.engine.url.render_as_string(hide_password=True)

    def describe(self) -> str:
        return self.display

    def dispose(self) -> None:
        self.engine.dispose()

    def scan(self, only: frozenset[str] | None = None) -> Iterator[KeyRef]:
        try:
            conn = self.engine.connect()
        except sa.exc.DBAPIError as exc:
            raise ServiceUnavailable(f"cannot connect to the Barbican database {self.display}: "
                                     f"{' '.join(str(exc.orig).split())[:160]}",
                                     "Check the URL and that the database server is up") from None
        with conn:
            names = set(sa.inspect(conn).get_table_names())
            if not set(NEED) <= names:
                raise UsageError(f"{self.display} is not a Barbican database (no table "
                                 f"{', '.join(sorted(set(NEED) - names))})",
                                 "Point --barbican-db-url or barbican.conf at Barbican's database")
            meta = sa.MetaData()
            c, p = (sa.Table(n, meta, autoload_with=conn) for n in ("secret_consumer_metadata", "projects"))
            q = (sa.select(c.c.id, c.c.secret_id, c.c.service, c.c.resource_type, c.c.resource_id,
                           p.c.external_id.label("project"))
                 .select_from(c.outerjoin(p, p.c.id == c.c.project_id)).where(c.c.deleted == sa.false()))

            def fetch(after: str, limit: int) -> list[Any]:
                return conn.execute(q.where(c.c.id > after).order_by(c.c.id).limit(limit)).all()

            for r in paged(fetch, lambda r: r.id, ""):
                yield KeyRef("barbican", "consumers", f"{r.service}/{r.resource_type}/{r.resource_id}", r.secret_id,
                             "secret_consumer_metadata", r.service, r.project, None, ReadPath(READ_PROJECT, None, r.project))
            if not {"container_consumer_metadata", "container_secret"} <= names:
                return
            cc, cs = (sa.Table(n, meta, autoload_with=conn) for n in ("container_consumer_metadata", "container_secret"))
            q2 = (sa.select(cs.c.id, cs.c.secret_id, cc.c.container_id, cc.c.name, cc.c.URL,
                            p.c.external_id.label("project"))
                  .select_from(cs.join(cc, cc.c.container_id == cs.c.container_id)
                               .outerjoin(p, p.c.id == cc.c.project_id))
                  .where(cc.c.deleted == sa.false(), cs.c.deleted == sa.false()))

            for r in conn.execute(q2.order_by(cs.c.id, cc.c.id)):  # few rows: one per container secret and consumer
                yield KeyRef("barbican", "container_consumers", f"{r.container_id}:{r.name}:{r.URL}", r.secret_id,
                             "container_consumer_metadata", r.name, r.project, None,
                             ReadPath(READ_PROJECT, None, r.project))
