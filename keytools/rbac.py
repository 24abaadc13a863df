"""Barbican role checks shared by doctor and every preflight, under both policies in force today.

Barbican 23 ships two rule sets: the documented legacy roles (``creator`` creates secrets,
``observer`` reads, ``audit`` sees metadata) when ``[oslo_policy] enforce_new_defaults = False``,
and today's defaults (``member`` creates, ``reader`` reads) otherwise. ``admin`` works under both.
Whether a user may create secrets is asked of Barbican itself with a probe that cannot store
anything: Barbican checks policy before it validates the body, so an invalid body answers 403 when
the role is missing and 400 when it is there.
"""

from __future__ import annotations

from dataclasses import dataclass

from keystoneauth1 import session as ks_session

from keytools import keymanager
from keytools.errors import Forbidden, NotFound
from keytools.service_errors import translate, translated

LEGACY = "legacy"
NEW = "new"
CREATE_ROLE = {LEGACY: "creator", NEW: "member"}

# An empty payload is rejected by Barbican's validator (400) only after policy allowed the POST.
_PROBE_BODY = {"name": "keytools-rbac-probe", "payload": "", "payload_content_type": "text/plain"}


@dataclass(frozen=True)
class CreateCheck:
    """Outcome of a secret-creation check for one user in one project."""

    allowed: bool
    roles: tuple[str, ...]
    policy: str | None  # legacy / new when it can be told from the roles and the answer, else None
    missing_role: str | None  # what to grant; None when allowed
    user: str
    project: str

    def remedy(self) -> str | None:
        if self.allowed:
            return None
        role = self.missing_role or CREATE_ROLE[LEGACY]
        text = creator_remedy(self.user, self.project, role)
        if self.policy is None:
            text += (f" (legacy Barbican policy; with [oslo_policy] enforce_new_defaults = True "
                     f"grant '{CREATE_ROLE[NEW]}' instead)")
        return text


def creator_remedy(user: str, project: str, role: str = "creator") -> str:
    """The documented command that lets ``user`` create secrets in ``project``."""
    return f"openstack role add --user {user} --project {project} {role}"


def can_create_secrets(session: ks_session.Session, endpoint: str | None = None) -> bool:
    """Ask Barbican whether this session may create secrets, leaving nothing behind."""
    with translated("Barbican", "checking secret-creation rights"):
        base = endpoint or keymanager.barbican_endpoint(session)
        resp = session.post(f"{base}/v1/secrets", json=_PROBE_BODY, raise_exc=False,
                            headers={"Accept": "application/json"})
    if resp.status_code == 403:
        return False
    if resp.status_code == 400:
        return True
    if resp.status_code == 201:  # a Barbican that accepts empty payloads: remove what it made
        ref = resp.json().get("secret_ref")
        if ref:
            session.delete(ref, raise_exc=False)
        return True
    raise translate(_HttpStatus(resp.status_code, resp.text[:200]), "Barbican", "checking secret-creation rights")


class _HttpStatus(Exception):
    def __init__(self, status_code: int, text: str) -> None:
        super().__init__(f"HTTP {status_code}: {' '.join(text.split())}")
        self.status_code = status_code


def check_create(session: ks_session.Session, policy_hint: str | None = None,
                 endpoint: str | None = None) -> CreateCheck:
    """Whether the session's user may create secrets, which policy that implies, what to grant."""
    with translated("Keystone", "reading the token's roles"):
        access = session.auth.get_access(session)
    roles = tuple(sorted(access.role_names or []))
    allowed = can_create_secrets(session, endpoint)
    policy = policy_hint or infer_policy(set(roles), allowed)
    missing = None if allowed else CREATE_ROLE[policy or LEGACY]
    return CreateCheck(allowed, roles, policy, missing, access.username or access.user_id,
                       access.project_name or access.project_id)


def infer_policy(roles: set[str], allowed: bool) -> str | None:
    """Tell the policy in force from a user's roles and whether creation was allowed."""
    has_creator, has_member = "creator" in roles, "member" in roles
    if allowed and "admin" in roles:
        return None  # admin creates secrets under both policies
    if allowed:
        if has_creator and not has_member:
            return LEGACY
        if has_member and not has_creator:
            return NEW
        return None
    if has_creator and not has_member:
        return NEW  # creator grants nothing under today's defaults
    if has_member and not has_creator:
        return LEGACY  # member grants nothing under the legacy policy
    return None


def _find(manager, name: str, kind: str, **filters):
    matches = [item for item in manager.list(name=name, **filters) if item.name == name]
    if not matches:
        raise NotFound(f"Keystone {kind} {name!r} not found", f"Check the {kind} name")
    return matches[0]


def _assignment(admin_session: ks_session.Session, user: str, project: str, role: str,
                user_domain: str = "default", project_domain: str = "default"):
    from keystoneclient.v3 import client as ks_client

    keystone = ks_client.Client(session=admin_session, interface="public")
    with translated("Keystone", f"looking up {user}/{project}/{role}"):
        user_obj = _find(keystone.users, user, "user", domain=user_domain)
        project_obj = _find(keystone.projects, project, "project", domain=project_domain)
        role_obj = _find(keystone.roles, role, "role")
    return keystone, user_obj, project_obj, role_obj


def grant_role(admin_session: ks_session.Session, user: str, project: str, role: str = "creator") -> None:
    """``openstack role add --user USER --project PROJECT ROLE`` with admin credentials."""
    keystone, u, p, r = _assignment(admin_session, user, project, role)
    try:
        with translated("Keystone", f"granting {role} to {user} in {project}"):
            keystone.roles.grant(r, user=u, project=p)
    except Forbidden as exc:
        raise Forbidden(f"not allowed to grant roles: {exc.message}",
                        "Use admin credentials (e.g. --admin-cloud NAME)") from None


def revoke_role(admin_session: ks_session.Session, user: str, project: str, role: str = "creator") -> bool:
    """``openstack role remove``; returns False when the user did not have the role."""
    keystone, u, p, r = _assignment(admin_session, user, project, role)
    try:
        with translated("Keystone", f"revoking {role} from {user} in {project}"):
            keystone.roles.revoke(r, user=u, project=p)
    except NotFound:
        return False
    return True
