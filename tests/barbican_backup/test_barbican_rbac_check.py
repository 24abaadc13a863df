"""rbac-check proven on the sandbox in both policies: the principals it flags are exactly those whose
secret operations work under the legacy policy and stop working with enforce_new_defaults = True."""

from __future__ import annotations

import json

import pytest
from keystoneauth1 import loading
from keystoneauth1 import session as ks_session
from keystoneclient.v3 import client as ks_client

from keytools import keymanager
from keytools.barbican import rbac_check

ROLE_SETS = {"rc-creator": ["creator"], "rc-observer": ["observer"], "rc-audit": ["audit"],
             "rc-member": ["member"], "rc-reader": ["reader"], "rc-both": ["creator", "member"],
             "rc-obs-reader": ["observer", "reader"]}
APP_CREDS = {"rc-app-creator": ["creator"], "rc-app-member": ["member"]}  # both owned by rc-both
PW = "rbac-check-pw-0123"


def _session(sandbox, **auth) -> ks_session.Session:
    kind = "v3applicationcredential" if "application_credential_id" in auth else "password"
    if kind == "password":
        auth.update(project_name="demo", user_domain_name="Default", project_domain_name="Default")
    plugin = loading.get_plugin_loader(kind).load_from_options(auth_url=sandbox.keystone_url, **auth)
    return ks_session.Session(auth=plugin)


@pytest.fixture(scope="module")
def principals(sandbox):
    admin = sandbox.session("admin")
    keystone = ks_client.Client(session=admin, interface="public")
    project = next(p for p in keystone.projects.list(name="demo"))
    roles = {r.name: r for r in keystone.roles.list()}
    made = []
    for name, role_names in ROLE_SETS.items():
        for old in keystone.users.list(name=name):
            keystone.users.delete(old)
        user = keystone.users.create(name=name, domain="default", password=PW)
        made.append(user)
        for role in role_names:
            keystone.roles.grant(roles[role], user=user, project=project)
    sessions = {name: _session(sandbox, username=name, password=PW) for name in ROLE_SETS}
    owner = ks_client.Client(session=sessions["rc-both"], interface="public")
    for name, role_names in APP_CREDS.items():
        cred = owner.application_credentials.create(name=name, roles=[{"name": r} for r in role_names])
        sessions[name] = _session(sandbox, application_credential_id=cred.id,
                                  application_credential_secret=cred.secret)
    demo_admin = _session(sandbox, username="admin", password=sandbox.password("admin"))
    ref = keymanager.barbican_client(demo_admin).secrets.create(name="rbac-target", payload="rbac payload").store()
    yield sessions, ref
    for user in made:
        keystone.users.delete(user)


def probe(session: ks_session.Session, ref: str) -> set[str]:
    """The secret operations that work for ``session`` (nothing is left behind)."""
    from keytools import rbac

    works = set()
    base = keymanager.barbican_endpoint(session)
    if rbac.can_create_secrets(session, base):
        works.add("create")
    if session.get(f"{base}/v1/secrets", raise_exc=False).status_code == 200:
        works.add("list")
    if session.get(ref, raise_exc=False, headers={"Accept": "application/json"}).status_code == 200:
        works.add("read metadata")
    if session.get(f"{ref}/payload", raise_exc=False, headers={"Accept": "text/plain"}).status_code == 200:
        works.add("decrypt")
    return works


def test_flagged_are_exactly_those_that_break_after_switching(sandbox, principals, kt):
    from keytools.sandbox import manager

    sessions, ref = principals
    result = kt("--os-cloud", "sandbox-admin", "barbican", "rbac-check", "--project", "demo", "-f", "json")
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    flagged = {f["name"] or f["user"]: f for f in report["findings"]}
    legacy = {name: probe(s, ref) for name, s in sessions.items()}
    manager.up(sandbox.state, rbac="new")
    try:
        new = {name: probe(s, ref) for name, s in sessions.items()}
    finally:
        manager.up(sandbox.state, rbac="legacy")
    broken = {name: legacy[name] - new[name] for name in sessions if legacy[name] - new[name]}
    assert set(flagged) == set(broken), (flagged.keys(), broken, legacy, new)
    assert {"rc-creator", "rc-observer", "rc-audit", "rc-obs-reader", "rc-app-creator"} == set(broken)
    for name, lost in broken.items():  # what it says is lost is what stopped working (of what was probed)
        assert set(flagged[name]["loses"]) & {"create", "list", "read metadata", "decrypt"} == lost, name
    assert flagged["rc-creator"]["remedy"] == "openstack role add --user rc-creator --project demo member"
    assert "application credential create --role member" in flagged["rc-app-creator"]["remedy"]
    assert flagged["rc-app-creator"]["kind"] == "application credential"
    table = kt("--os-cloud", "sandbox-admin", "barbican", "rbac-check", "--project", "demo")
    assert table.exit_code == 1 and "openstack role add --user rc-audit --project demo member" in table.stdout


def test_model_matches_barbican_policy_shape():
    assert rbac_check.loses({"creator"}, rbac_check.DEFAULT_IMPLIES) == list(rbac_check.OPS)
    assert rbac_check.loses({"admin"}, rbac_check.DEFAULT_IMPLIES) == []
    assert rbac_check.loses({"creator", "member"}, rbac_check.DEFAULT_IMPLIES) == []
    assert rbac_check.loses({"audit"}, rbac_check.DEFAULT_IMPLIES) == ["read metadata"]
    assert rbac_check.loses({"reader"}, rbac_check.DEFAULT_IMPLIES) == []


def test_rbac_check_needs_admin_and_credentials(sandbox, kt):
    result = kt("--os-cloud", "no-such-cloud", "barbican", "rbac-check")
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    demo = kt("--os-cloud", "sandbox-demo", "barbican", "rbac-check")
    assert demo.exit_code == 5 and "listing role assignments" in demo.stderr, demo.output
