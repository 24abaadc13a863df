"""Shared fixtures: one real local cloud (Keystone + Barbican on loopback) for the whole run.

Feature tests ask for more services through ``sandbox_with("cinder")`` etc., which adds them to the
same running sandbox. Nothing here is a mock: sessions authenticate against the real Keystone.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner
from keystoneauth1 import session as ks_session

from keytools import auth, redaction
from keytools.cli import main
from keytools.sandbox import configs, manager
from keytools.sandbox.state import SandboxConfig, StateDir

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


@dataclass
class Sandbox:
    state: StateDir
    _sessions: list[ks_session.Session] = field(default_factory=list)

    @property
    def config(self) -> SandboxConfig:
        return self.state.load()

    @property
    def clouds_yaml(self) -> Path:
        return self.state.clouds_yaml

    def url(self, service: str, path: str = "") -> str:
        return configs.url(self.config, service, path)

    @property
    def keystone_url(self) -> str:
        return configs.keystone_url(self.config)

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for a keytools/openstack subprocess pointed at this sandbox."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        env["OS_CLIENT_CONFIG_FILE"] = str(self.clouds_yaml)
        env.update(extra)
        return env

    def session(self, user: str) -> ks_session.Session:
        """A session as sandbox user ``user`` (admin, demo, cinder, nova, glance, swift)."""
        old = os.environ.get("OS_CLIENT_CONFIG_FILE")
        os.environ["OS_CLIENT_CONFIG_FILE"] = str(self.clouds_yaml)
        try:
            session = auth.session_from_cloud(f"sandbox-{user}")
            self._sessions.append(session)
            return session
        finally:
            if old is None:
                os.environ.pop("OS_CLIENT_CONFIG_FILE", None)
            else:
                os.environ["OS_CLIENT_CONFIG_FILE"] = old

    def password(self, user: str) -> str:
        return self.config.passwords[user]


@pytest.fixture(autouse=True)
def _fresh_redaction_registry():
    """Each test starts like a new keytools process: no secrets registered by earlier tests
    (a short test secret such as 'short' would otherwise mask parts of later outputs)."""
    redaction.clear()
    yield


def _bring_up(state: StateDir, **kwargs) -> Sandbox:
    manager.up(state, **kwargs)
    return Sandbox(state)


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory):
    """The run's local cloud (legacy Barbican RBAC, SQLite), torn down at the end."""
    state = StateDir(tmp_path_factory.mktemp("sandbox"))
    try:
        yield _bring_up(state)
    finally:
        manager.down(state)


@pytest.fixture(scope="session")
def mariadb_sandbox(tmp_path_factory: pytest.TempPathFactory):
    """A second local cloud whose Keystone and Barbican run on a private MariaDB server
    (4 Barbican workers: real concurrency). Its MariaDB also holds an empty ``cinder`` database;
    ``configs.db_url(s.state, s.config, "cinder")`` is its URL."""
    state = StateDir(tmp_path_factory.mktemp("sandbox-mariadb"))
    try:
        yield _bring_up(state, db="mariadb")
    finally:
        manager.down(state)


@pytest.fixture(scope="session")
def sandbox_with(sandbox: Sandbox):
    """``sandbox_with("cinder")`` adds cinder-api (or glance, swift) to the running sandbox."""

    def add(*services: str) -> Sandbox:
        manager.up(sandbox.state, with_services=list(services))
        # Sessions made earlier hold a token whose catalog lacks the new endpoints: re-auth them.
        for session in sandbox._sessions:
            session.invalidate()
        return sandbox

    return add


@pytest.fixture(scope="session")
def admin_session(sandbox: Sandbox) -> ks_session.Session:
    return sandbox.session("admin")


@pytest.fixture(scope="session")
def creator_session(sandbox: Sandbox) -> ks_session.Session:
    """'demo': creator (legacy policy) and member (new defaults) in project demo."""
    return sandbox.session("demo")


@pytest.fixture(scope="session")
def nocreator_session(sandbox: Sandbox) -> ks_session.Session:
    """'cinder' in project service without creator: secret creation is refused (403)."""
    return sandbox.session("cinder")


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def invoke(args: list[str], env: dict[str, str] | None = None, input: str | None = None) -> Result:
    """Run the keytools CLI in-process (main(), so the exit-code mapping is what users get)."""
    runner = CliRunner()
    with runner.isolation(input=input, env=env) as streams:
        out, err = streams[0], streams[1]
        code = main([str(a) for a in args])
        return Result(code, out.getvalue().decode(), err.getvalue().decode())


@pytest.fixture
def kt(sandbox: Sandbox):
    """``kt("doctor", "--os-cloud", "sandbox-demo")`` with clouds.yaml of the sandbox."""

    def run(*args: str, env: dict[str, str] | None = None, input: str | None = None) -> Result:
        merged = {"OS_CLIENT_CONFIG_FILE": str(sandbox.clouds_yaml)}
        merged.update(env or {})
        return invoke(list(args), env=merged, input=input)

    return run


def run_keytools(*args: str, env: dict[str, str] | None = None, timeout: float = 300,
                 input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run keytools as a real subprocess (for kill tests, TTY-less behaviour, real exit codes)."""
    return subprocess.run([sys.executable, "-m", "keytools.cli", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=timeout, input=input)
