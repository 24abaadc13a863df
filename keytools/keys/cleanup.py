"""``keys cleanup`` (quarantine, then delete), ``keys release`` and ``keys undelete``.

Quarantine: for each orphan secret of a reconcile, the journal first records (secret, project,
payload fingerprint, the read ACL as it was), then the secret's read ACL becomes "no project
access, no users" and it gets the metadata ``keytools-quarantine: <UTC time>``; leftover orders
are recorded. Barbican cannot disable a secret: its creator and the project's admins still read
it, so a quarantine makes unexpected readers fail loudly, it proves nothing.

Delete, after ``--after``: only with every service seen; a fresh reconcile must still find the
order leftover / the secret orphaned, and each secret is re-checked against every service (its
id alone) right before its DELETE. Orders first, then secrets. The journal is a shortcut, never
the truth: reruns read Barbican's real state (the quarantine tag, deleted rows), so a kill -9 at
any point converges on a rerun and nothing is deleted twice (a deleted secret is no orphan).

Undelete: Barbican only soft-deletes, so until ``barbican-manage db clean`` purges the rows the
secret comes back through its database: the secret row and the children deleted with it
(encrypted data, store and user metadata, container links) lose their ``deleted`` flag; the
read ACL, which Barbican hard-deletes, is recreated from the journal when keytools quarantined it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from keystoneauth1 import session as ks_session

from keytools.errors import KeytoolsError, NotFound, ProblemsFound, ServiceUnavailable, StateError, UsageError
from keytools.key_refs.model import KeyRef, KeySource, NotSeen, survey
from keytools.keys.barbican_db import BarbicanDB, _iso
from keytools.keys.reconcile import QUARANTINE_KEY, Report, now_utc
from keytools.service_errors import translate

LOG = logging.getLogger("keytools.keys")
Sources = Callable[[], Mapping[str, KeySource | NotSeen]]


# ---- journal --------------------------------------------------------------------------------------

class Journal:
    """Append-only JSON lines, fsynced per record; a torn last line (kill -9) is skipped."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def records(self) -> Iterator[dict[str, Any]]:
        if not self.path.exists():
            return
        for line in self.path.read_text().splitlines():
            try:
                yield json.loads(line)
            except ValueError:
                continue

    def add(self, op: str, **fields: Any) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, (json.dumps({"op": op, "at": _iso(now_utc()), **fields}) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def first(self, op: str, key: str, value: str) -> dict[str, Any] | None:
        return next((r for r in self.records() if r.get("op") == op and r.get(key) == value), None)


# ---- Barbican through its API, scoped to each secret's project -------------------------------------

class Barbican:
    """Barbican's API as the operator, rescoped to the project of each secret (ACLs, metadata and
    deletes need a role in the secret's own project)."""

    def __init__(self, session: ks_session.Session, endpoint: str | None = None) -> None:
        self.base = session
        self._endpoint = endpoint
        self._scoped: dict[str, ks_session.Session] = {}

    def endpoint(self) -> str:
        if self._endpoint is None:
            from keytools.keymanager import barbican_endpoint

            try:
                self._endpoint = barbican_endpoint(self.base)
            except Exception as exc:  # noqa: BLE001
                raise translate(exc, "Barbican", "finding the key-manager endpoint") from exc
        return self._endpoint.rstrip("/")

    def session(self, project: str | None) -> ks_session.Session:
        if not project:
            return self.base
        if project not in self._scoped:
            from keystoneauth1.identity import v3

            auth = self.base.auth
            try:
                token = self.base.get_token()
                url = auth.auth_url if hasattr(auth, "auth_url") else self.base.get_endpoint(service_type="identity")
            except Exception as exc:  # noqa: BLE001
                raise translate(exc, "Keystone", "authenticating") from exc
            self._scoped[project] = ks_session.Session(auth=v3.Token(auth_url=url, token=token, project_id=project),
                                                       verify=self.base.verify)
        return self._scoped[project]

    def request(self, project: str | None, method: str, path: str, what: str, **kw: Any) -> Any:
        try:
            resp = self.session(project).request(f"{self.endpoint()}{path}", method, raise_exc=False, **kw)
        except Exception as exc:  # noqa: BLE001 - connection errors, auth
            raise translate(exc, "Barbican", what) from exc
        if resp.status_code == 404:
            raise NotFound(f"Barbican: not found while {what}")
        if resp.status_code >= 400:
            raise translate(_HTTPError(resp.status_code, resp.text[:200]), "Barbican", what)
        return resp

    def fingerprint(self, project: str | None, sid: str) -> str:
        resp = self.request(project, "GET", f"/v1/secrets/{sid}/payload", f"reading secret {sid}",
                            headers={"Accept": "application/octet-stream"})
        return "sha256:" + hashlib.sha256(resp.content).hexdigest()[:32]

    def set_acl(self, project: str | None, sid: str, project_access: bool, users: list[str]) -> None:
        self.request(project, "PUT", f"/v1/secrets/{sid}/acl", f"setting the ACL of secret {sid}",
                     json={"read": {"project-access": project_access, "users": users}})

    def set_meta(self, project: str | None, sid: str, key: str, value: str) -> None:
        try:
            self.request(project, "PUT", f"/v1/secrets/{sid}/metadata/{key}", f"tagging secret {sid}",
                         json={"key": key, "value": value})
        except NotFound:
            self.request(project, "POST", f"/v1/secrets/{sid}/metadata", f"tagging secret {sid}",
                         json={"key": key, "value": value})

    def drop_meta(self, project: str | None, sid: str, key: str) -> None:
        try:
            self.request(project, "DELETE", f"/v1/secrets/{sid}/metadata/{key}", f"untagging secret {sid}")
        except NotFound:
            pass

    def delete(self, project: str | None, kind: str, oid: str) -> bool:
        """DELETE an order or secret; False when it was already gone."""
        try:
            self.request(project, "DELETE", f"/v1/{kind}s/{oid}", f"deleting {kind} {oid}")
        except NotFound:
            return False
        return True


class _HTTPError(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"HTTP {status}: {' '.join(text.split())}")
        self.status_code = status


# ---- quarantine -------------------------------------------------------------------------------------

@dataclass
class CleanupResult:
    phase: str
    applied: bool
    secrets: list[dict[str, Any]] = field(default_factory=list)
    orders: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    error_types: set[type] = field(default_factory=set)

    def failed(self, item: str, exc: Exception) -> None:
        self.errors.append(f"{item}: {getattr(exc, 'message', exc)}")
        self.error_types.add(type(exc))

    def as_dict(self) -> dict[str, Any]:
        return {"phase": self.phase, "applied": self.applied, "secrets": self.secrets, "orders": self.orders,
                "skipped": self.skipped, "errors": self.errors,
                "counts": {"secrets": len(self.secrets), "orders": len(self.orders), "skipped": len(self.skipped)}}

    def failure(self) -> KeytoolsError | None:
        """ServiceUnavailable (exit 4) when Barbican was unreachable or failing for every failed item,
        else ProblemsFound; None when nothing failed. A rerun finishes the failed items."""
        if not self.errors:
            return None
        kind = ServiceUnavailable if self.error_types == {ServiceUnavailable} else ProblemsFound
        return kind(f"{len(self.errors)} item(s) failed: {self.errors[0]}",
                    "Fix the cause and rerun: finished items are not done again")


def quarantine_tags(db: BarbicanDB) -> dict[str, str]:
    """secret id -> quarantine time, from Barbican's live metadata rows (the real state)."""
    m = db.t("secret_user_metadata") if "secret_user_metadata" in db.tables else None
    if m is None:
        return {}
    with db.connect() as conn:
        return {r.secret_id: r.value for r in conn.execute(
            sa.select(m.c.secret_id, m.c.value).where(m.c.key == QUARANTINE_KEY, m.c.deleted == sa.false()))}


def quarantine(report: Report, db: BarbicanDB, api: Barbican | None, journal: Journal, apply: bool) -> CleanupResult:
    result = CleanupResult("quarantine", apply)
    if not report.survey.complete or report.orphans_withheld:
        raise StateError(f"nothing can be quarantined: {report.orphans_withheld}",
                         "Give every service's options (or --ignore-service explicitly) and rerun")
    tagged = quarantine_tags(db)
    stamp = _iso(report.checked_at) or ""
    for o in report.leftover_orders:
        result.orders.append({"order_id": o["order_id"], "secret_id": o["secret_id"], "project": o["project"]})
        if apply and not journal.first("order-quarantined", "order_id", o["order_id"]):
            journal.add("order-quarantined", order_id=o["order_id"], secret_id=o["secret_id"], project=o["project"])
    for orphan in report.orphans:
        s = orphan.secret
        item = {"secret_id": s.id, "project": s.project, "kind": orphan.kind}
        if s.id in tagged:
            result.skipped.append({**item, "why": f"already quarantined {tagged[s.id]}"})
            continue
        result.secrets.append(item)
        if not apply or api is None:
            continue
        try:
            if not journal.first("quarantine-intent", "secret_id", s.id):  # the ACL as it was, once
                journal.add("quarantine-intent", secret_id=s.id, project=s.project,
                            fingerprint=api.fingerprint(s.project, s.id),
                            acl={"project_access": s.project_access, "users": list(s.acl_users)})
            api.set_acl(s.project, s.id, False, [])
            api.set_meta(s.project, s.id, QUARANTINE_KEY, stamp)
            journal.add("quarantined", secret_id=s.id)
            LOG.info("quarantined secret %s (project %s)", s.id, s.project)
        except NotFound:
            result.skipped.append({**item, "why": "gone from Barbican"})
        except KeytoolsError as exc:  # recorded; the other items go on
            result.failed(f"secret {s.id}", exc)
    return result


def release(ids: list[str], db: BarbicanDB, api: Barbican, journal: Journal, apply: bool) -> CleanupResult:
    """Undo a quarantine: the ACL recorded before it, the tag removed. ``ids`` empty: all of them."""
    result = CleanupResult("release", apply)
    tagged = quarantine_tags(db)
    intents = {r["secret_id"]: r for r in journal.records() if r.get("op") == "quarantine-intent"}
    for sid in ids or sorted(tagged):
        intent = intents.get(sid)
        if sid not in tagged and intent is None:
            raise UsageError(f"secret {sid} is not quarantined", "List them with keytools keys cleanup (dry run)")
        if sid not in tagged:
            result.skipped.append({"secret_id": sid, "why": "not tagged (released, or deleted)"})
            continue
        acl = (intent or {}).get("acl") or {"project_access": True, "users": []}
        project = (intent or {}).get("project") or _project_of(db, sid)
        result.secrets.append({"secret_id": sid, "project": project, "acl": acl})
        if apply:
            api.set_acl(project, sid, bool(acl["project_access"]), list(acl["users"]))
            api.drop_meta(project, sid, QUARANTINE_KEY)
            journal.add("released", secret_id=sid)
    return result


def _project_of(db: BarbicanDB, sid: str) -> str | None:
    s, p = db.t("secrets"), db.t("projects")
    with db.connect() as conn:
        return conn.execute(sa.select(p.c.external_id).select_from(s.join(p, p.c.id == s.c.project_id))
                            .where(s.c.id == sid)).scalar()


# ---- delete -----------------------------------------------------------------------------------------

def still_unreferenced(sources: Sources, sid: str) -> tuple[bool, list[KeyRef]]:
    """Ask every service again about this one id (complete survey required)."""
    found: list[KeyRef] = []
    seen = survey(sources(), found.append, only=(sid,))
    return (seen.complete and not [r for r in found if r.key_id == sid or r.key_id is None]), found


def delete(report: Report, db: BarbicanDB, api: Barbican | None, journal: Journal, sources: Sources,
           after: dt.timedelta, apply: bool) -> CleanupResult:
    result = CleanupResult("delete", apply)
    if not report.survey.complete or report.survey.ignored or report.orphans_withheld:
        why = report.orphans_withheld or f"services ignored: {', '.join(report.survey.ignored)}"
        raise StateError(f"nothing is deleted unless every service was seen: {why}",
                         "Give every service's options (no --ignore-service) and rerun")
    cutoff = report.checked_at - after
    orphan_ids = {o.secret.id for o in report.orphans}
    leftover = {o["order_id"]: o for o in report.leftover_orders}
    for rec in journal.records():
        if rec.get("op") != "order-quarantined" or any(x["order_id"] == rec["order_id"] for x in result.orders):
            continue
        at = _parse(rec.get("at"))
        if rec["order_id"] not in leftover:
            result.skipped.append({"order_id": rec["order_id"], "why": "no longer a leftover order (or gone)"})
        elif at is None or at > cutoff:
            result.skipped.append({"order_id": rec["order_id"], "why": f"quarantined {rec.get('at')}, not yet --after"})
        else:
            result.orders.append({"order_id": rec["order_id"], "secret_id": rec.get("secret_id")})
            if apply and api is not None:
                journal.add("delete-intent", kind="order", id=rec["order_id"])
                gone = not api.delete(leftover[rec["order_id"]]["project"], "order", rec["order_id"])
                journal.add("deleted", kind="order", id=rec["order_id"], already_gone=gone)
    for sid, stamp in sorted(quarantine_tags(db).items()):
        at = _parse(stamp)
        item: dict[str, Any] = {"secret_id": sid}
        if sid not in orphan_ids:
            result.skipped.append({**item, "why": "referenced again (or no longer live): release it"})
            continue
        if at is None or at > cutoff:
            result.skipped.append({**item, "why": f"quarantined {stamp}, not yet --after"})
            continue
        free, refs = still_unreferenced(sources, sid)
        if not free:
            result.skipped.append({**item, "why": "referenced at the moment of deletion: "
                                   + ", ".join(f"{r.service} {r.kind} {r.object_id}" for r in refs)[:300]
                                   or "a service was not seen"})
            continue
        project = next(o.secret.project for o in report.orphans if o.secret.id == sid)
        result.secrets.append({**item, "project": project})
        if apply and api is not None:
            try:
                journal.add("delete-intent", kind="secret", id=sid)
                gone = not api.delete(project, "secret", sid)
                journal.add("deleted", kind="secret", id=sid, already_gone=gone)
            except KeytoolsError as exc:  # recorded; the other items go on
                result.failed(f"secret {sid}", exc)
    return result


def _parse(value: str | None) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat((value or "").rstrip("Z"))
    except ValueError:
        return None


# ---- undelete ---------------------------------------------------------------------------------------

CHILDREN = ("encrypted_data", "secret_store_metadata", "secret_user_metadata", "container_secret")


def undelete(db: BarbicanDB, sid: str, journal: Journal | None, clear_expiration: bool = False) -> dict[str, Any]:
    """Bring a soft-deleted secret back through Barbican's database (one transaction)."""
    s = db.t("secrets")
    with db.engine.begin() as conn:
        row = conn.execute(sa.select(s.c.id, s.c.deleted, s.c.deleted_at, s.c.expiration).where(s.c.id == sid)).first()
        if row is None:
            raise ProblemsFound(f"secret {sid} is not in Barbican's database (purged by db clean, or never existed)",
                           "Restore it from a Barbican backup: keytools barbican restore")
        restored: dict[str, int] = {}
        if row.deleted:
            conn.execute(sa.update(s).where(s.c.id == sid).values(deleted=False, deleted_at=None, status="ACTIVE"))
            window = (row.deleted_at - dt.timedelta(seconds=5), row.deleted_at + dt.timedelta(seconds=5)) \
                if row.deleted_at else None
            for name in CHILDREN:
                if name not in db.tables:
                    continue
                t = db.tables[name]
                conds = [t.c.secret_id == sid, t.c.deleted == sa.true()]
                if window:
                    conds.append(t.c.deleted_at.between(*window))
                if name == "secret_user_metadata":
                    conds.append(t.c.key != QUARANTINE_KEY)
                restored[name] = conn.execute(sa.update(t).where(*conds).values(deleted=False, deleted_at=None)).rowcount
        if clear_expiration and row.expiration is not None:
            conn.execute(sa.update(s).where(s.c.id == sid).values(expiration=None))
        acl = None
        intent = journal.first("quarantine-intent", "secret_id", sid) if journal else None
        if intent and row.deleted:
            acl = intent["acl"]
            _recreate_acl(db, conn, sid, acl)
    if journal and row.deleted:
        journal.add("undeleted", secret_id=sid)
    return {"secret_id": sid, "was_deleted": bool(row.deleted), "children_restored": restored,
            "acl_restored": acl, "expiration_cleared": bool(clear_expiration and row.expiration is not None)}


def _recreate_acl(db: BarbicanDB, conn: sa.Connection, sid: str, acl: dict[str, Any]) -> None:
    a, u = db.t("secret_acls"), db.t("secret_acl_users")
    old = [r.id for r in conn.execute(sa.select(a.c.id).where(a.c.secret_id == sid, a.c.operation == "read"))]
    if old:
        conn.execute(sa.delete(u).where(u.c.acl_id.in_(old)))
        conn.execute(sa.delete(a).where(a.c.id.in_(old)))
    if acl.get("project_access", True) and not acl.get("users"):
        return  # Barbican's default: no ACL row at all
    now = now_utc()
    acl_id = str(uuid.uuid4())
    base = {"created_at": now, "updated_at": now, "deleted": False, "status": "ACTIVE"}
    conn.execute(sa.insert(a).values(id=acl_id, secret_id=sid, operation="read",
                                     project_access=bool(acl.get("project_access")), **_cols(a, base)))
    for user in acl.get("users") or []:
        conn.execute(sa.insert(u).values(id=str(uuid.uuid4()), acl_id=acl_id, user_id=user, **_cols(u, base)))


def _cols(t: sa.Table, values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if k in t.c}
