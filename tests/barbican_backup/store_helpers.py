"""Secrets on the software store of an ``hsm_sandbox`` (real Barbican, real SoftHSM2), for the
``barbican store`` tests, the HSM benchmark and the demo.

The sandbox's global default is pkcs11; a project gets secrets on simple_crypto the way an
operator's cloud has them: its admin makes the software store the project's preferred one
(POST /v1/secret-stores/{id}/preferred), stores secrets, orders keys, adds ACLs, containers and
consumers, and unsets the preference again.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from barbicanclient import client as barbican_client

from keytools.barbican.store_migrate import fingerprint
from keytools.sandbox import bootstrap

PROJECTS = ("admin", "demo", "service")


@dataclass
class Seeded:
    """Secret ids per project with their payload fingerprints (what must survive a move)."""

    secrets: dict[str, dict[str, str]] = field(default_factory=dict)  # project name -> {id: fingerprint}
    acl_secret: str | None = None
    consumer_secret: str | None = None
    container: str | None = None
    deleted: list[str] = field(default_factory=list)

    def all_ids(self) -> list[str]:
        return [s for by in self.secrets.values() for s in by]


def conf_path(sb: Any) -> Path:
    return sb.state.path("barbican", ".barbican", "barbican.conf")


def session(sb: Any, project: str) -> Any:
    return bootstrap.admin_session(sb.config, project)


def client(sb: Any, project: str) -> Any:
    return barbican_client.Client(session=session(sb, project), endpoint=sb.url("barbican"))


def _store_ref(sess: Any, sb: Any, name: str) -> str:
    resp = sess.get(sb.url("barbican", "/v1/secret-stores"), headers={"Accept": "application/json"})
    resp.raise_for_status()
    for store in resp.json()["secret_stores"]:
        if store["name"].lower().startswith(name):
            return store["secret_store_ref"]
    raise AssertionError(f"no {name} store in {resp.json()}")


def prefer_software(sb: Any, project: str, on: bool) -> None:
    prefer_store(sb, project, "software", on)


def prefer_store(sb: Any, project: str, store: str, on: bool) -> None:
    """Set (``on``) or unset ``project``'s preferred store, as an admin of that project."""
    sess = session(sb, project)
    ref = _store_ref(sess, sb, store)
    if on:
        sess.post(f"{ref}/preferred", headers={"Accept": "application/json"}).raise_for_status()
    else:
        resp = sess.delete(f"{ref}/preferred", raise_exc=False)
        assert resp.status_code in (204, 404), resp.text


def payload_fp(payload: Any) -> str:
    return fingerprint(payload.encode() if isinstance(payload, str) else bytes(payload))


def seed(sb: Any, per_project: int = 3, projects: tuple[str, ...] = PROJECTS, extras: bool = True) -> Seeded:
    """``per_project`` secrets (plus an ordered key) on simple_crypto in each project; in the first
    project also an ACL, a secret consumer, a container with a consumer and a soft-deleted secret."""
    out = Seeded()
    tag = uuid.uuid4().hex[:8]
    for n, project in enumerate(projects):
        bc = client(sb, project)
        prefer_software(sb, project, True)
        try:
            mine: dict[str, str] = {}
            for i in range(per_project):
                payload = f"{tag}-{project}-{i}-" + hashlib.sha256(f"{tag}{project}{i}".encode()).hexdigest()
                ref = bc.secrets.create(name=f"store-{tag}-{i}", payload=payload).store()
                mine[ref.rsplit("/", 1)[1]] = payload_fp(payload)
            if extras:
                order = bc.orders.create_key(name=f"store-{tag}-order", algorithm="aes", bit_length=256, mode="cbc")
                order_ref = order.submit()
                secret_ref = bc.orders.get(order_ref).secret_ref
                mine[secret_ref.rsplit("/", 1)[1]] = payload_fp(bc.secrets.get(secret_ref).payload)
            if extras and n == 0:
                ids = list(mine)
                base = sb.url("barbican", "/v1/secrets/")
                acl = bc.acls.create(entity_ref=base + ids[0], users=[uuid.uuid4().hex], project_access=False)
                acl.submit()
                out.acl_secret = ids[0]
                bc.secrets.register_consumer(base + ids[1], service="image", resource_type="image",
                                             resource_id=str(uuid.uuid4()))
                out.consumer_secret = ids[1]
                container = bc.containers.create(name=f"store-{tag}", secrets={"a": bc.secrets.get(base + ids[0]),
                                                                             "b": bc.secrets.get(base + ids[2])})
                cref = container.store()
                bc.containers.register_consumer(cref, "volume", "http://127.0.0.1/volume/1")
                out.container = cref.rsplit("/", 1)[1]
                gone = bc.secrets.create(name=f"store-{tag}-gone", payload="soon deleted").store()
                bc.secrets.delete(gone)
                out.deleted.append(gone.rsplit("/", 1)[1])
            out.secrets[project] = mine
        finally:
            prefer_software(sb, project, False)
    return out


def read_all(sb: Any, seeded: Seeded) -> dict[str, str]:
    """Every seeded secret read through the API as an admin of its project: id -> fingerprint."""
    found = {}
    for project, ids in seeded.secrets.items():
        bc = client(sb, project)
        base = sb.url("barbican", "/v1/secrets/")
        for sid in ids:
            found[sid] = payload_fp(bc.secrets.get(base + sid).payload)
    return found


def plugin_of(sb: Any, secret_ids: list[str]) -> dict[str, str]:
    """encrypted_data.kek_id -> kek_data.plugin_name, straight from the database."""
    from keytools.barbican import barbican_conf
    from keytools.barbican.dbquery import reader

    conn = barbican_conf.load(conf_path(sb), need_kek=False).connection
    with reader(conn) as query:
        rows = query("SELECT e.secret_id, k.plugin_name FROM encrypted_data e JOIN kek_data k ON e.kek_id = k.id")
    wanted = set(secret_ids)
    return {str(s): re.sub(r".*\.", "", p) for s, p in rows if str(s) in wanted}


def related_rows(sb: Any) -> dict[str, list[tuple[Any, ...]]]:
    """ACL, consumer and container rows (must not change in a move)."""
    from keytools.barbican import barbican_conf
    from keytools.barbican.dbquery import reader

    conn = barbican_conf.load(conf_path(sb), need_kek=False).connection
    out = {}
    with reader(conn) as query:
        for table in ("secret_acls", "secret_acl_users", "secret_consumer_metadata", "container_secret",
                      "container_consumer_metadata", "secrets"):
            out[table] = sorted(tuple(str(v) for v in r) for r in query(f"SELECT * FROM {table}"))  # noqa: S608
    return out
