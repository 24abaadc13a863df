"""``keytools doctor``: can these credentials do what keytools needs? Each check says why not.

Checks run in order and stop being meaningful once one fails (no token, no Barbican), so later
checks are reported as skipped rather than as confusing secondary failures.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from castellan.common.objects import opaque_data
from keystoneauth1 import session as ks_session

from keytools import keymanager, rbac
from keytools.errors import KeytoolsError
from keytools.service_errors import translated

OK, FAIL, SKIP, WARN = "ok", "fail", "skipped", "warn"


@dataclass
class Finding:
    check: str
    status: str
    detail: str
    remedy: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _run(findings: list[Finding], check: str, func, remedy: str | None = None) -> Any:
    """Run one check; record ok with its detail, or fail with the error's one-line message."""
    try:
        detail, value = func()
    except KeytoolsError as exc:
        findings.append(Finding(check, FAIL, exc.one_line(), exc.hint or remedy))
        return None
    findings.append(Finding(check, OK, detail))
    return value if value is not None else True


def diagnose(session: ks_session.Session, probe: bool = False, policy_hint: str | None = None) -> list[Finding]:
    findings: list[Finding] = []

    def keystone_reachable():
        with translated("Keystone", "contacting Keystone"):
            auth_url = getattr(session.auth, "auth_url", None)
            resp = session.get(auth_url, authenticated=False, raise_exc=False)
        return f"{auth_url} answered HTTP {resp.status_code}", auth_url

    def token():
        with translated("Keystone", "issuing a token"):
            access = session.auth.get_access(session)
        return (f"user {access.username} in project {access.project_name} "
                f"(expires {access.expires.isoformat() if access.expires else '?'})", access)

    def endpoint():
        with translated("Barbican", "looking up the key-manager endpoint"):
            url = keymanager.barbican_endpoint(session)
        return f"key-manager endpoint {url}", url

    if not _run(findings, "keystone reachable", keystone_reachable):
        return _skip_rest(findings, ["token issued", "barbican endpoint", "barbican reachable", "roles",
                                     "can create secrets"])
    access = _run(findings, "token issued", token)
    if not access:
        return _skip_rest(findings, ["barbican endpoint", "barbican reachable", "roles", "can create secrets"])
    url = _run(findings, "barbican endpoint", endpoint,
               "Register Barbican: openstack endpoint create key-manager public <URL>")
    if not url:
        return _skip_rest(findings, ["barbican reachable", "roles", "can create secrets"])

    def barbican_reachable():
        with translated("Barbican", "contacting Barbican"):
            resp = session.get(f"{url}/", authenticated=False, raise_exc=False)
        if resp.status_code >= 500:
            raise KeytoolsError(f"Barbican answered HTTP {resp.status_code} at {url}",
                                "Check the barbican-api service and its log")
        return f"{url} answered HTTP {resp.status_code}", True

    if not _run(findings, "barbican reachable", barbican_reachable):
        return _skip_rest(findings, ["roles", "can create secrets"])
    roles = sorted(access.role_names or [])
    findings.append(Finding("roles", OK, f"{', '.join(roles) or 'none'} in project {access.project_name}"))

    try:
        findings.append(_create_finding(session, url, probe, policy_hint))
    except KeytoolsError as exc:
        findings.append(Finding("can create secrets", FAIL, exc.one_line(), exc.hint))
    return findings


def _create_finding(session: ks_session.Session, url: str, probe: bool, policy_hint: str | None) -> Finding:
    check = rbac.check_create(session, policy_hint, endpoint=url)
    if not check.allowed:
        policy = {"legacy": "legacy Barbican policy", "new": "enforce_new_defaults policy"}.get(
            check.policy or "", "legacy Barbican policy, or 'member' under enforce_new_defaults")
        return Finding("can create secrets", FAIL,
                       f"Barbican refused secret creation: role '{check.missing_role}' missing ({policy})",
                       check.remedy())
    detail = _probe_secret(session, url) if probe else "allowed (policy probe, nothing stored)"
    return Finding("can create secrets", OK, detail)


def _probe_secret(session: ks_session.Session, url: str) -> str:
    """--probe: store a real secret, read it back, delete it."""
    km = keymanager.SessionBarbicanKeyManager(session, url)
    ctx = keymanager.SESSION_CONTEXT
    with translated("Barbican", "storing the probe secret"):
        secret_id = km.store(ctx, opaque_data.OpaqueData(b"keytools-doctor-probe", name="keytools-doctor-probe"))
    try:
        with translated("Barbican", "reading the probe secret back"):
            ok = km.get(ctx, secret_id).get_encoded() == b"keytools-doctor-probe"
    finally:
        with translated("Barbican", "deleting the probe secret"):
            km.delete(ctx, secret_id)
    if not ok:
        raise KeytoolsError("the probe secret read back different bytes")
    return "allowed (probe secret created, read back and deleted)"


def _skip_rest(findings: list[Finding], checks: list[str]) -> list[Finding]:
    findings.extend(Finding(c, SKIP, "skipped: an earlier check failed") for c in checks)
    return findings
