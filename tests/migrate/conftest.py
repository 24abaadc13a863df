"""Fixtures for migrate: a copy per test of the Cinder and Nova schema templates (tests/conftest.py), a fixed_key,
cinder.conf files pointing at the sandbox, and a dedicated service user without creator."""

from __future__ import annotations

import secrets
import shutil
import uuid
from pathlib import Path

import pytest

from keytools.sandbox import configs
from tests.helpers.db_seed import copy_nova

FIXED_KEY_HEX = "8f2a" + secrets.token_hex(30)  # 256 bits, fresh per run


@pytest.fixture
def cinder_url(cinder_template: Path, tmp_path: Path) -> str:
    """A fresh copy of the template for one test."""
    dest = tmp_path / "cinder.sqlite"
    shutil.copyfile(cinder_template, dest)
    return f"sqlite:///{dest}"


@pytest.fixture(scope="session")
def fixed_key_hex() -> str:
    return FIXED_KEY_HEX


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "fixed_key.hex"
    path.write_text(FIXED_KEY_HEX + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture(scope="session")
def migrator_user(sandbox, admin_session):
    """A service user of our own ('kt-migrator', project service, role service only: no creator),
    so granting and revoking creator never disturbs the sandbox's cinder user other tests rely on."""
    from keystoneclient.v3 import client as ks_client

    keystone = ks_client.Client(session=admin_session, interface="public")
    name = f"kt-migrator-{uuid.uuid4().hex[:6]}"
    password = secrets.token_urlsafe(16)
    project = next(p for p in keystone.projects.list(name="service") if p.name == "service")
    role = next(r for r in keystone.roles.list(name="service") if r.name == "service")
    user = keystone.users.create(name=name, password=password, domain="default", default_project=project)
    keystone.roles.grant(role, user=user, project=project)
    yield {"name": name, "password": password, "id": user.id}
    keystone.users.delete(user)


def write_cinder_conf(path: Path, sandbox, db_url: str, fixed_key: str | None, backend: str | None = "barbican",
                      user: dict | None = None, section: str = "key_manager") -> Path:
    """A cinder.conf as a deployment has it: database, key manager, service credentials."""
    cfg = sandbox.config
    auth = configs.authtoken_section(cfg, "cinder")
    if user:
        auth["username"] = user["name"]
        auth["password"] = user["password"]
    lines = ["[DEFAULT]", "debug = false", "", "[database]", f"connection = {db_url}", ""]
    km = []
    if backend is not None:
        lines += ["[key_manager]", f"backend = {backend}"]
        if section == "key_manager" and fixed_key is not None:
            lines.append(f"fixed_key = {fixed_key}")
        lines.append("")
    if section == "keymgr" and fixed_key is not None:
        km = ["[keymgr]", f"fixed_key = {fixed_key}", ""]
    lines += km + ["[keystone_authtoken]"] + [f"{k} = {v}" for k, v in auth.items()] + [""]
    path.write_text("\n".join(lines))
    path.chmod(0o600)
    return path


@pytest.fixture
def cinder_conf(tmp_path: Path, sandbox, cinder_url: str):
    def make(fixed_key: str | None = FIXED_KEY_HEX, backend: str | None = "barbican", user: dict | None = None,
             section: str = "key_manager", name: str = "cinder.conf") -> Path:
        return write_cinder_conf(tmp_path / name, sandbox, cinder_url, fixed_key, backend, user, section)

    return make


@pytest.fixture
def nova_dbs(nova_template: Path, tmp_path: Path) -> dict[str, str]:
    """A fresh copy for one test: {'api': url, 'cell0': url, 'cell1': url, 'cell2': url}."""
    return copy_nova(nova_template, tmp_path / "nova")
