"""``keytools barbican store status``: where Barbican's secrets are, per crypto plugin and project.

A secret's store is decided at read time only by ``encrypted_data.kek_id -> kek_data.plugin_name``
(``secret_store_metadata`` looks the same for every store_crypto store), so the counts come from
that join in Barbican's database. Beside them: the stores each node's barbican.conf configures,
whether PKCS#11 is the global default everywhere, and projects whose preferred store is another one.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

from keytools.barbican import barbican_conf, store_config
from keytools.barbican.dbquery import Query, reader
from keytools.barbican.store_config import CLASS_NAMES, P11, PLUGIN_CLASSES, SIMPLE, StoreConfig

COUNT_SQL = """
SELECT p.external_id, k.plugin_name, s.deleted, COUNT(*)
FROM secrets s
JOIN encrypted_data e ON e.secret_id = s.id
JOIN kek_data k ON e.kek_id = k.id
JOIN projects p ON s.project_id = p.id
GROUP BY p.external_id, k.plugin_name, s.deleted
"""
PREFERENCE_SQL = """
SELECT p.external_id, st.id, st.name, st.crypto_plugin
FROM project_secret_store ps
JOIN secret_stores st ON ps.secret_store_id = st.id
JOIN projects p ON ps.project_id = p.id
WHERE ps.deleted = 0
"""


@dataclass
class ProjectCount:
    project: str  # Keystone project id (projects.external_id)
    plugin: str  # simple_crypto | p11_crypto | the class name of another plugin
    active: int = 0
    deleted: int = 0  # soft-deleted, still in the database until barbican-manage db clean


@dataclass
class Preference:
    project: str
    store_id: str
    store: str
    crypto_plugin: str | None


@dataclass
class StoreStatus:
    database: str  # engine only, never the URL (it holds a password)
    counts: list[ProjectCount] = field(default_factory=list)
    preferences: list[Preference] = field(default_factory=list)
    nodes: list[StoreConfig] = field(default_factory=list)
    api_max_version: str | None = None  # the Barbican API's microversion, when asked with credentials

    def total(self, plugin: str, deleted: bool = False) -> int:
        return sum(c.deleted if deleted else c.active for c in self.counts if c.plugin == plugin)

    @property
    def p11_default_everywhere(self) -> bool:
        return bool(self.nodes) and all(n.default_crypto == P11 for n in self.nodes)

    @property
    def api_offers_move(self) -> bool | None:
        """Microversion 1.3 (PUT /v1/secrets/{id}/secret-store/{store-id}, releases after 23.0.0)."""
        return None if self.api_max_version is None else offers_move(self.api_max_version)

    def as_dict(self) -> dict[str, Any]:
        return {"database": self.database,
                "totals": {p: {"active": self.total(p), "deleted": self.total(p, True)}
                           for p in sorted({c.plugin for c in self.counts} | {SIMPLE, P11})},
                "projects": [asdict(c) for c in self.counts],
                "preferences": [asdict(p) for p in self.preferences],
                "nodes": [n.as_dict() for n in self.nodes],
                "p11_global_default_everywhere": self.p11_default_everywhere,
                "api_max_version": self.api_max_version, "api_offers_secret_store_move": self.api_offers_move}


def offers_move(version: str) -> bool:
    """Is microversion 1.3 (the secret-store move) within ``version``?"""
    major, _, minor = version.partition(".")
    try:
        return (int(major), int(minor or 0)) >= (1, 3)
    except ValueError:
        return False


def plugin_short(class_name: str) -> str:
    return CLASS_NAMES.get(class_name, class_name)


def read_counts(query: Query) -> list[ProjectCount]:
    found: dict[tuple[str, str], ProjectCount] = {}
    for project, plugin, deleted, count in query(COUNT_SQL):
        row = found.setdefault((str(project), plugin_short(plugin)), ProjectCount(str(project), plugin_short(plugin)))
        if deleted:
            row.deleted += int(count)
        else:
            row.active += int(count)
    return sorted(found.values(), key=lambda c: (c.project, c.plugin))


def read_preferences(query: Query) -> list[Preference]:
    return [Preference(str(p), str(sid), name, crypto) for p, sid, name, crypto in query(PREFERENCE_SQL)]


def status(configs: list[str | os.PathLike[str]], api_max_version: str | None = None) -> StoreStatus:
    """Counts from the database of the first config; store settings of every config given."""
    nodes = [store_config.load(c) for c in configs]
    conf = barbican_conf.load(configs[0], need_kek=False)
    from sqlalchemy.engine import make_url

    result = StoreStatus(make_url(conf.connection).get_backend_name(), nodes=nodes, api_max_version=api_max_version)
    with reader(conf.connection) as query:
        result.counts = read_counts(query)
        result.preferences = read_preferences(query)
    return result


def api_max_version(session: Any) -> str | None:
    """The highest key-manager microversion the Barbican API offers (GET /v1/ with a microversion
    header lists min_version/max_version; without one they are left out)."""
    resp = session.get("/v1/", endpoint_filter={"service_type": "key-manager", "interface": "public"},
                       headers={"Accept": "application/json", "OpenStack-API-Version": "key-manager 1.1"},
                       raise_exc=False)
    if resp.status_code != 200:
        return "1.0"
    return (resp.json().get("version") or {}).get("max_version") or "1.0"


def p11_kek_note(query: Query) -> str:
    """For ``kek rotate``: it rotates simple_crypto's master KEK only; say so when p11 KEKs exist."""
    rows = query(f"SELECT COUNT(*) FROM kek_data WHERE plugin_name = '{PLUGIN_CLASSES[P11]}' AND deleted = 0")  # noqa: S608
    count = int(rows[0][0]) if rows else 0
    if not count:
        return ""
    return (f"; simple_crypto project KEKs only: {count} p11_crypto project KEKs are wrapped by the HSM's MKEK "
            "and not rotated here (barbican-manage hsm rewrap_pkek)")
