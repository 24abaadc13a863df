"""``keytools migrate finish`` as a library call: refuse while rows remain, then drop the temporary role.

The role to revoke is what ``migrate run --grant-creator`` journaled (``granted`` records of every
service's journal), else the one named, for the migrating credentials' user and project unless
both are given. Revoking twice is harmless: a role already gone is reported as "was not set".
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keystoneauth1 import session as ks_session

from keytools import auth, rbac
from keytools.errors import StateError, UsageError
from keytools.logs import log_event
from keytools.service_errors import translated
from migrate import journal as jr
from migrate.consumer import Consumer
from migrate.engine import LOG

NEXT_STEP = ("Retire fixed_key: back it up, then remove [key_manager]/[keymgr] fixed_key from "
             "cinder.conf and nova.conf on every node (keytools fixed-key)")
DEFAULT_ROLE = "creator"


@dataclass
class Revocation:
    """One role removed (or found already absent) from the migrating user."""

    user: str
    project: str
    role: str
    removed: bool

    def as_dict(self) -> dict[str, Any]:
        return {"user": self.user, "project": self.project, "role": self.role, "removed": self.removed}


@dataclass
class FinishResult:
    remaining: dict[str, int]
    revoked: list[Revocation] = field(default_factory=list)
    next: str = NEXT_STEP

    @property
    def left(self) -> int:
        return sum(self.remaining.values())

    def as_dict(self) -> dict[str, Any]:
        return {"remaining": self.remaining, "revoked": [r.as_dict() for r in self.revoked], "next": self.next}


@dataclass
class RevokeRequest:
    """``--revoke-creator`` and what it names (None: from the journals / the credentials)."""

    admin_cloud: str | None
    user: str | None = None
    project: str | None = None
    role: str | None = None


def remaining(consumers: Iterable[Consumer]) -> dict[str, int]:
    """Objects still on the all-zeros id, per table, over every service (each checked first)."""
    counts: dict[str, int] = {}
    for consumer in consumers:
        consumer.check()
        counts.update(consumer.remaining())
    return counts


def granted_roles(paths: Iterable[Path]) -> list[dict[str, str]]:
    """The roles ``--grant-creator`` journaled, once each, oldest first."""
    seen: dict[tuple[str, str, str], dict[str, str]] = {}
    for path in paths:
        for doc in jr.records(path):
            if doc.get("op") == "granted":
                g = {"user": doc["user"], "project": doc["project"], "role": doc["role"]}
                seen[(g["user"], g["project"], g["role"])] = g
    return list(seen.values())


def migrating_user(session: ks_session.Session) -> tuple[str, str]:
    """(user name, project name) of the credentials the migration ran with."""
    with translated("Keystone", "reading the migrating user"):
        access = session.auth.get_access(session)
    return access.username, access.project_name


def finish_migration(built: Sequence[tuple[Consumer, Path]], force: bool, revoke: RevokeRequest | None,
                     session: Callable[[], ks_session.Session]) -> FinishResult:
    """Refuse (exit 6) while rows remain unless ``force``; then revoke the temporary role(s).
    ``session`` gives the migrating credentials (asked only to learn their user/project)."""
    result = FinishResult(remaining(c for c, _ in built))
    if result.left and not force:
        raise StateError(f"{', '.join(f'{n} {t[:-1]}(s)' for t, n in result.remaining.items() if n)} still use "
                         "the all-zeros key id",
                         "Run 'keytools migrate run' (and check 'keytools migrate status') first, or pass --force")
    if revoke is None:
        return result
    if not revoke.admin_cloud:
        raise UsageError("--revoke-creator needs --admin-cloud NAME", "Name a clouds.yaml cloud with admin rights")
    grants = granted_roles(path for _, path in built)
    if revoke.user or revoke.project or revoke.role or not grants:
        user, project = revoke.user, revoke.project
        if not (user and project):
            who, where = migrating_user(session())
            user, project = user or who, project or where
        grants = [{"user": user, "project": project, "role": revoke.role or DEFAULT_ROLE}]
    admin = auth.session_from_cloud(revoke.admin_cloud)
    for g in grants:
        removed = rbac.revoke_role(admin, g["user"], g["project"], g["role"])
        result.revoked.append(Revocation(g["user"], g["project"], g["role"], removed))
        log_event(LOG, logging.INFO, f"Revoked role {g['role']} from {g['user']} in project {g['project']}"
                  if removed else f"{g['user']} had no role {g['role']} in project {g['project']}",
                  "revoked_role", **g, removed=removed)
    return result
