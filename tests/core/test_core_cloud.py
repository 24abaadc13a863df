"""Auth resolution, castellan through keytools, RBAC and doctor against the real sandbox."""

from __future__ import annotations

import json
import os

import pytest
from castellan.common import exception as castellan_exc
from castellan.common.objects import symmetric_key

from keytools import auth, keymanager, rbac
from keytools.errors import EXIT_FORBIDDEN, EXIT_UNREACHABLE, Forbidden
from keytools.service_errors import SECRET_FORBIDDEN, translate
from tests.helpers.cli import run_keytools


def test_castellan_roundtrip_256_bit_key(creator_session):
    km = keymanager.key_manager_for_session(creator_session)
    key_bytes = os.urandom(32)
    key_id = km.store(keymanager.SESSION_CONTEXT, symmetric_key.SymmetricKey("AES", 256, key_bytes))
    try:
        got = km.get(keymanager.SESSION_CONTEXT, key_id)
        assert got.get_encoded() == key_bytes and got.bit_length == 256 and got.algorithm == "AES"
    finally:
        km.delete(keymanager.SESSION_CONTEXT, key_id)


def test_no_creator_gets_403_mapped_to_clear_error(nocreator_session):
    km = keymanager.key_manager_for_session(nocreator_session)
    with pytest.raises(castellan_exc.KeyManagerError) as info:
        km.store(keymanager.SESSION_CONTEXT, symmetric_key.SymmetricKey("AES", 256, b"\0" * 32))
    err = translate(info.value)
    assert isinstance(err, Forbidden) and err.exit_code == EXIT_FORBIDDEN
    assert SECRET_FORBIDDEN in err.one_line()


def test_rbac_probe_stores_nothing(creator_session):
    client = keymanager.barbican_client(creator_session)
    before = client.secrets.list(limit=1).__len__()
    total_before = client.secrets.list(limit=100)
    assert rbac.can_create_secrets(creator_session) is True
    assert len(client.secrets.list(limit=100)) == len(total_before)
    assert before <= len(total_before)


def test_clouds_yaml_and_os_env_resolution(sandbox, monkeypatch):
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(sandbox.clouds_yaml))
    assert auth.session_from_cloud("sandbox-demo").get_token()
    for key in [k for k in os.environ if k.startswith("OS_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("OS_AUTH_URL", sandbox.keystone_url)
    monkeypatch.setenv("OS_USERNAME", "demo")
    monkeypatch.setenv("OS_PASSWORD", sandbox.password("demo"))
    monkeypatch.setenv("OS_PROJECT_NAME", "demo")
    monkeypatch.setenv("OS_USER_DOMAIN_NAME", "Default")
    monkeypatch.setenv("OS_PROJECT_DOMAIN_NAME", "Default")
    monkeypatch.setenv("OS_IDENTITY_API_VERSION", "3")
    session = auth.session_from_cloud(None)
    assert session.auth.get_access(session).username == "demo"


def test_service_config_section_resolution(sandbox, tmp_path, kt):
    conf = tmp_path / "cinder.conf"
    conf.write_text(f"""[keystone_authtoken]
auth_url = {sandbox.keystone_url}
auth_type = password
username = cinder
password = {sandbox.password('cinder')}
project_name = service
user_domain_name = Default
project_domain_name = Default
""")
    session = auth.session_from_oslo_config(str(conf))
    assert session.auth.get_access(session).project_name == "service"
    result = kt("--auth-config-file", str(conf), "doctor", "--format", "json")
    assert result.exit_code == 1  # cinder lacks creator
    assert sandbox.password("cinder") not in result.output


def _doctor(kt, cloud, *extra):
    result = kt("--os-cloud", cloud, "doctor", "--format", "json", *extra)
    return result, {f["check"]: f for f in json.loads(result.stdout)}


def test_doctor_creator_user_passes(kt):
    result, findings = _doctor(kt, "sandbox-demo")
    assert result.exit_code == 0, result.output
    assert all(f["status"] == "ok" for f in findings.values())
    assert "creator" in findings["roles"]["detail"]


def test_doctor_probe_creates_and_deletes(kt, creator_session):
    client = keymanager.barbican_client(creator_session)
    before = len(client.secrets.list(limit=200))
    result, findings = _doctor(kt, "sandbox-demo", "--probe")
    assert result.exit_code == 0
    assert "deleted" in findings["can create secrets"]["detail"]
    assert len(client.secrets.list(limit=200)) == before


def test_doctor_no_creator_names_the_remedy(kt):
    result, findings = _doctor(kt, "sandbox-cinder")
    assert result.exit_code == 1
    check = findings["can create secrets"]
    assert check["status"] == "fail"
    assert check["remedy"].startswith("openstack role add --user cinder --project service creator")


def test_doctor_admin_passes(kt):
    result, _ = _doctor(kt, "sandbox-admin")
    assert result.exit_code == 0


def test_wrong_password_is_exit_5(sandbox, tmp_path):
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(sandbox.clouds_yaml.read_text().replace(sandbox.password("demo"), "wrong-password"))
    proc = run_keytools("--os-cloud", "sandbox-demo", "doctor", env=sandbox.env(OS_CLIENT_CONFIG_FILE=str(clouds)))
    assert proc.returncode == 1  # doctor reports the failed token check in its table
    assert "Keystone refused the credentials" in proc.stdout
    assert "wrong-password" not in proc.stdout + proc.stderr


def test_keystone_unreachable_is_reported(sandbox, tmp_path):
    from keytools.sandbox.processes import free_ports

    port = free_ports(1)[0]
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(sandbox.clouds_yaml.read_text().replace(sandbox.keystone_url, f"http://127.0.0.1:{port}/v3"))
    proc = run_keytools("--os-cloud", "sandbox-demo", "doctor", "--format", "json",
                        env=sandbox.env(OS_CLIENT_CONFIG_FILE=str(clouds)))
    findings = {f["check"]: f for f in json.loads(proc.stdout)}
    assert proc.returncode == 1
    assert findings["keystone reachable"]["status"] == "fail"
    assert "cannot reach Keystone" in findings["keystone reachable"]["detail"]
    assert findings["token issued"]["status"] == "skipped"
    assert EXIT_UNREACHABLE == 4


@pytest.fixture
def only_role_user(sandbox, admin_session):
    """A user with exactly one role in project demo, removed afterwards."""
    from keystoneclient.v3 import client as ks_client

    keystone = ks_client.Client(session=admin_session, interface="public")
    made = []

    def make(role: str):
        name = f"only-{role}"
        user = keystone.users.create(name=name, domain="default", password="pw-" + role)
        project = next(p for p in keystone.projects.list(name="demo"))
        keystone.roles.grant(next(r for r in keystone.roles.list(name=role)), user=user, project=project)
        made.append(user)
        from keystoneauth1 import loading, session

        plugin = loading.get_plugin_loader("password").load_from_options(
            auth_url=sandbox.keystone_url, username=name, password="pw-" + role, project_name="demo",
            user_domain_name="Default", project_domain_name="Default")
        return session.Session(auth=plugin)

    yield make
    for user in made:
        keystone.users.delete(user)


def test_legacy_policy_member_alone_cannot_create(only_role_user):
    check = rbac.check_create(only_role_user("member"))
    assert not check.allowed and check.policy == "legacy" and check.missing_role == "creator"
    assert check.remedy() == "openstack role add --user only-member --project demo creator"


def test_new_policy_creator_alone_cannot_create(sandbox, only_role_user):
    from keytools.sandbox import manager

    manager.up(sandbox.state, rbac="new")
    try:
        creator_only = rbac.check_create(only_role_user("creator"))
        assert not creator_only.allowed and creator_only.policy == "new"
        assert creator_only.remedy() == "openstack role add --user only-creator --project demo member"
        assert rbac.check_create(sandbox.session("demo")).allowed
    finally:
        manager.up(sandbox.state, rbac="legacy")
    assert not rbac.check_create(sandbox.session("cinder")).allowed
