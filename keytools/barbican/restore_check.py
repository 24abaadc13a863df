"""Prove a restored Barbican database through Barbican's own API: what the restored rows say must
be what Barbican serves, and every checked secret must decrypt (simple_crypto's Fernet and AES-GCM
layers authenticate, so a wrong or missing KEK or a damaged row fails loudly, never silently).

The inventory is read from the scratch copy of the archive's database, never from production.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import requests

from keytools.barbican.scratch import Server

Query = Callable[[str], list[tuple[Any, ...]]]
ACL_OPERATIONS = ("read",)


@dataclass
class SecretRow:
    id: str
    project: str
    name: str | None
    secret_type: str | None
    algorithm: str | None
    bit_length: int | None
    mode: str | None
    content_type: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    acl: dict[str, tuple[bool, tuple[str, ...]]] = field(default_factory=dict)  # operation -> (project, users)


@dataclass
class Inventory:
    projects: list[str]
    secrets: dict[str, SecretRow]
    containers: dict[str, str]  # container id -> project
    counts: dict[str, int]
    order_projects: list[str] = field(default_factory=list)


def inventory(query: Query, quote: Callable[[str], str]) -> Inventory:
    """Everything the API checks compare against, read from the restored (scratch) database."""
    projects = {r[0]: r[1] for r in query("SELECT id, external_id FROM projects")}
    secrets: dict[str, SecretRow] = {}
    for sid, pid, name, stype, alg, bits, mode in query(
            "SELECT id, project_id, name, secret_type, algorithm, bit_length, mode FROM secrets WHERE deleted = 0"):
        secrets[sid] = SecretRow(sid, projects.get(pid, pid), name, stype, alg, bits, mode)
    for sid, ctype in query("SELECT secret_id, content_type FROM encrypted_data WHERE deleted = 0"):
        if sid in secrets:
            secrets[sid].content_type = ctype
    for sid, key, value in query(f"SELECT secret_id, {quote('key')}, {quote('value')} "  # noqa: S608
                                 "FROM secret_user_metadata WHERE deleted = 0"):
        if sid in secrets:
            secrets[sid].metadata[key] = value
    users: dict[str, list[str]] = {}
    for acl_id, user in query("SELECT acl_id, user_id FROM secret_acl_users WHERE deleted = 0"):
        users.setdefault(acl_id, []).append(user)
    for acl_id, sid, operation, project_access in query(
            "SELECT id, secret_id, operation, project_access FROM secret_acls WHERE deleted = 0"):
        if sid in secrets:
            secrets[sid].acl[operation] = (bool(project_access), tuple(sorted(users.get(acl_id, []))))
    containers = {cid: projects.get(pid, pid) for cid, pid in
                  query("SELECT id, project_id FROM containers WHERE deleted = 0")}
    orders = query("SELECT COUNT(*) FROM orders WHERE deleted = 0")
    order_projects = sorted({projects.get(r[0], r[0]) for r in query("SELECT DISTINCT project_id FROM orders "
                                                                      "WHERE deleted = 0")})
    consumers = query("SELECT COUNT(*) FROM container_consumer_metadata WHERE deleted = 0")
    return Inventory(sorted(set(projects.values())), secrets, containers,
                     {"secrets": len(secrets), "containers": len(containers), "orders": int(orders[0][0]),
                      "container_consumers": int(consumers[0][0])}, order_projects)


def choose(ids: list[str], sample: int | None, seed: int) -> list[str]:
    """Every secret, or ``sample`` of them drawn reproducibly from ``seed``."""
    ordered = sorted(ids)
    if sample is None or sample >= len(ordered):
        return ordered
    return sorted(random.Random(seed).sample(ordered, sample))


class ApiChecker:
    """Barbican's REST API on the scratch server, one HTTP session per thread."""

    def __init__(self, server: Server, threads: int = 4) -> None:
        self.server = server
        self.threads = threads
        self._local = threading.local()

    def _get(self, project: str, path: str, accept: str = "application/json") -> requests.Response:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        headers = {**self.server.headers(project), "Accept": accept, "OpenStack-API-Version": "key-manager 1.1"}
        return session.get(f"{self.server.url}{path}", headers=headers, timeout=60)

    def total(self, project: str, collection: str) -> int:
        resp = self._get(project, f"/v1/{collection}?limit=1")
        resp.raise_for_status()
        return int(resp.json().get("total", 0))

    def counts(self, inv: Inventory) -> dict[str, int]:
        # secrets: every project; containers and orders: the projects holding any (elsewhere the
        # API, which reads the same restored rows, can only answer 0)
        owners = {"secrets": inv.projects, "containers": sorted(set(inv.containers.values())),
                  "orders": inv.order_projects}
        with ThreadPoolExecutor(self.threads) as pool:
            found = {name: sum(pool.map(lambda p, n=name: self.total(p, n), projects))
                     for name, projects in owners.items()}
        consumers = 0
        for cid, project in inv.containers.items():
            resp = self._get(project, f"/v1/containers/{cid}/consumers?limit=1")
            resp.raise_for_status()
            consumers += int(resp.json().get("total", 0))
        found["container_consumers"] = consumers
        return found

    def check_secrets(self, rows: list[SecretRow]) -> list[str]:
        """One problem line per secret that does not come back whole (empty: all good)."""
        with ThreadPoolExecutor(self.threads) as pool:
            return [p for p in pool.map(self.check_secret, rows) if p]

    def check_secret(self, row: SecretRow) -> str | None:
        try:
            return self._check(row)
        except requests.RequestException as exc:
            return f"secret {row.id}: request failed ({type(exc).__name__})"

    def _check(self, row: SecretRow) -> str | None:
        base = f"/v1/secrets/{row.id}"
        meta = self._get(row.project, base)
        if meta.status_code != 200:
            return f"secret {row.id}: GET answered {meta.status_code}"
        body = meta.json()
        for key in ("name", "secret_type", "algorithm", "bit_length", "mode"):
            if body.get(key) != getattr(row, key):
                return f"secret {row.id}: {key} is {body.get(key)!r} through the API, {getattr(row, key)!r} in the dump"
        if row.content_type:
            payload = self._get(row.project, f"{base}/payload", accept=row.content_type)
            if payload.status_code != 200:
                return f"secret {row.id}: payload does not decrypt (HTTP {payload.status_code})"
            if not payload.content:
                return f"secret {row.id}: payload decrypts to nothing"
            if (row.secret_type == "symmetric" and row.bit_length and row.content_type == "application/octet-stream"
                    and len(payload.content) * 8 != row.bit_length):
                return f"secret {row.id}: key decrypts to {len(payload.content) * 8} bits, not {row.bit_length}"
        if row.metadata:  # (the API reads the restored rows: without any, there is nothing to prove)
            user_meta = self._get(row.project, f"{base}/metadata")
            if user_meta.status_code != 200 or (user_meta.json().get("metadata") or {}) != row.metadata:
                return f"secret {row.id}: user metadata did not come back (HTTP {user_meta.status_code})"
        if not row.acl:
            return None
        acl = self._get(row.project, f"{base}/acl")
        if acl.status_code != 200:
            return f"secret {row.id}: ACL answered HTTP {acl.status_code}"
        served = acl.json()
        for operation in ACL_OPERATIONS:
            want = row.acl.get(operation, (True, ()))
            got = served.get(operation) or {}
            have = (bool(got.get("project-access", True)), tuple(sorted(got.get("users") or [])))
            if have != want:
                return f"secret {row.id}: {operation} ACL is {have} through the API, {want} in the dump"
        return None
