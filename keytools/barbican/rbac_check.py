"""Secure-RBAC readiness: which role assignments and application credentials reach secrets only
through Barbican's legacy policy, and what each loses under ``[oslo_policy] enforce_new_defaults = True``.

The model is Barbican 23's own policy (barbican/common/policies/secrets.py and base.py), per project,
for a principal's effective roles (implied roles included: admin implies member implies reader):

- legacy (the deprecated rules): admin and creator do everything, observer lists, reads and
  decrypts, audit reads metadata only; member and reader grant nothing;
- new defaults: admin and member do everything (delete and update: own or non-private secrets);
  reader, creator, observer and audit grant nothing on secrets (per-secret ACLs still do, in both).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from keystoneauth1 import session as ks_session

from keytools.service_errors import translated

OPS = ("create", "list", "read metadata", "decrypt", "update", "delete")
LEGACY = {"admin": set(OPS), "creator": set(OPS), "observer": {"list", "read metadata", "decrypt"},
          "audit": {"read metadata"}}
NEW = {"admin": set(OPS), "member": set(OPS)}
DEFAULT_IMPLIES = {"admin": {"member"}, "member": {"reader"}}


def allowed(roles: set[str], policy: dict[str, set[str]]) -> set[str]:
    out: set[str] = set()
    for role in roles:
        out |= policy.get(role.lower(), set())
    return out


def expand(roles: set[str], implies: dict[str, set[str]]) -> set[str]:
    """Roles plus every role they imply (Keystone puts implied roles in the token)."""
    seen, todo = set(), [r.lower() for r in roles]
    while todo:
        role = todo.pop()
        if role not in seen:
            seen.add(role)
            todo.extend(implies.get(role, ()))
    return seen


def loses(roles: set[str], implies: dict[str, set[str]]) -> list[str]:
    eff = expand(roles, implies)
    return [op for op in OPS if op in allowed(eff, LEGACY) - allowed(eff, NEW)]


@dataclass
class Finding:
    kind: str  # "user" | "service user" | "application credential"
    user: str
    project: str
    roles: list[str]
    loses: list[str]
    remedy: str
    name: str | None = None  # the application credential's name
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RbacReport:
    assignments: int = 0
    application_credentials: int = 0
    findings: list[Finding] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"assignments": self.assignments, "application_credentials": self.application_credentials,
                "findings": [f.as_dict() for f in self.findings], "warnings": self.warnings,
                "breaks": bool(self.findings)}


def _user_flag(user: str, domain: str) -> str:
    return f"--user {user}" + (f" --user-domain {domain}" if domain and domain.lower() != "default" else "")


def _project_flag(project: str, domain: str) -> str:
    return f"--project {project}" + (f" --project-domain {domain}" if domain and domain.lower() != "default" else "")


def _note(lost: list[str]) -> str:
    if "create" in lost:
        return ""
    return ("member also allows create/update/delete; for read-only access grant per-secret ACLs instead "
            "(openstack acl user add --user USER SECRET_HREF)")


def _implications(keystone: Any, names: dict[str, str]) -> dict[str, set[str]]:
    try:
        rules = keystone.inference_rules.list_inference_roles()
    except Exception:
        return {k: set(v) for k, v in DEFAULT_IMPLIES.items()}
    out: dict[str, set[str]] = {}
    for rule in rules:
        prior = getattr(rule, "prior_role", None) or {}
        implied = getattr(rule, "implies", None) or []
        pname = (prior.get("name") or names.get(prior.get("id", ""), "")).lower()
        for imp in implied if isinstance(implied, list) else [implied]:
            iname = (imp.get("name") or names.get(imp.get("id", ""), "")).lower()
            if pname and iname:
                out.setdefault(pname, set()).add(iname)
    return out or {k: set(v) for k, v in DEFAULT_IMPLIES.items()}


def check(session: ks_session.Session, project: str | None = None) -> RbacReport:
    """Every project role assignment (effective, groups expanded) and application credential."""
    from keystoneclient.v3 import client as ks_client

    report = RbacReport()
    with translated("Keystone", "listing role assignments"):
        keystone = ks_client.Client(session=session, interface="public")
        role_names = {r.id: r.name for r in keystone.roles.list()}
        implies = _implications(keystone, role_names)
        assignments = keystone.role_assignments.list(effective=True, include_names=True)
    grouped: dict[tuple[str, str], dict[str, Any]] = {}
    for a in assignments:
        scope = getattr(a, "scope", {}) or {}
        if "project" not in scope or not getattr(a, "user", None):
            continue
        proj = scope["project"]
        if project and project not in (proj.get("id"), proj.get("name")):
            continue
        user = a.user
        key = (user["id"], proj["id"])
        entry = grouped.setdefault(key, {"user": user.get("name", user["id"]),
                                         "user_domain": (user.get("domain") or {}).get("name", ""),
                                         "project": proj.get("name", proj["id"]),
                                         "project_domain": (proj.get("domain") or {}).get("name", ""),
                                         "roles": set()})
        entry["roles"].add(a.role.get("name") or role_names.get(a.role["id"], a.role["id"]))
    report.assignments = len(grouped)
    service_users = {uid for (uid, _), e in grouped.items() if "service" in {r.lower() for r in e["roles"]}}
    for (uid, _pid), e in sorted(grouped.items(), key=lambda kv: (kv[1]["project"], kv[1]["user"])):
        lost = loses(e["roles"], implies)
        if not lost:
            continue
        kind = "service user" if uid in service_users or e["project"] == "service" else "user"
        remedy = (f"openstack role add {_user_flag(e['user'], e['user_domain'])} "
                  f"{_project_flag(e['project'], e['project_domain'])} member")
        report.findings.append(Finding(kind, e["user"], e["project"], sorted(e["roles"]), lost, remedy,
                                       note=_note(lost)))
    projects = {pid: e["project"] for (_, pid), e in grouped.items()}
    for uid in sorted({uid for uid, _ in grouped}):
        try:
            creds = keystone.application_credentials.list(user=uid)
        except Exception as exc:  # the admin may not list other users' credentials (Keystone policy)
            report.warnings.append(f"cannot list the application credentials of user {uid}: {type(exc).__name__}")
            continue
        for cred in creds:
            report.application_credentials += 1
            roles = {r.get("name") or role_names.get(r.get("id", ""), "") for r in (cred.roles or [])}
            lost = loses(roles, implies)
            if not lost:
                continue
            owner = next(e for (u, _), e in grouped.items() if u == uid)
            pname = projects.get(cred.project_id, cred.project_id)
            if project and project not in (cred.project_id, pname):
                continue
            user_has_member = any(u == uid and p == cred.project_id and "member" in expand(e["roles"], implies)
                                  for (u, p), e in grouped.items())
            remedy = (("" if user_has_member else
                       f"openstack role add {_user_flag(owner['user'], owner['user_domain'])} "
                       f"{_project_flag(pname, '')} member; then ")
                      + f"as {owner['user']}: openstack application credential create --role member "
                        f"{cred.name}-rbac && openstack application credential delete {cred.name}")
            report.findings.append(Finding("application credential", owner["user"], pname, sorted(roles), lost,
                                           remedy, name=cred.name,
                                           note="application credentials cannot gain roles: recreate it"))
    return report
