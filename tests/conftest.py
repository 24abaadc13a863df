"""Shared fixtures: one real local cloud (Keystone + Barbican on loopback) for the whole run.

Feature tests ask for more services through ``sandbox_with("cinder")`` etc., which adds them to the
same running sandbox. Nothing here is a mock: sessions authenticate against the real Keystone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from keystoneauth1 import session as ks_session

from keytools import auth, redaction
from keytools.sandbox import configs, manager
from keytools.sandbox.state import SandboxConfig, StateDir
from tests.helpers.cli import Result, invoke


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
def hsm_sandbox(tmp_path_factory: pytest.TempPathFactory):
    """A local cloud whose Barbican has two stores, software (simple_crypto) and pkcs11 (the
    global default) on a private SoftHSM2 token in its state dir (``sandbox up --with hsm``).
    Its own state dir: the run's ``sandbox`` keeps one simple_crypto store."""
    if not shutil.which("softhsm2-util"):
        pytest.skip("softhsm2 is not installed (scripts/install-system-deps.sh)")
    state = StateDir(tmp_path_factory.mktemp("sandbox-hsm"))
    try:
        yield _bring_up(state, with_services=["hsm"])
    finally:
        manager.down(state)


@pytest.fixture(scope="session")
def hsm_mariadb_sandbox(tmp_path_factory: pytest.TempPathFactory):
    """``hsm_sandbox`` on a private MariaDB server (row locks, 4 Barbican workers)."""
    if not shutil.which("softhsm2-util"):
        pytest.skip("softhsm2 is not installed (scripts/install-system-deps.sh)")
    state = StateDir(tmp_path_factory.mktemp("sandbox-hsm-mariadb"))
    try:
        yield _bring_up(state, db="mariadb", with_services=["hsm"])
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


@pytest.fixture(scope="session")
def cinder_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty Cinder schema created once by ``cinder-manage db sync`` (SQLite)."""
    from keytools.cinder_db import sync_schema

    path = tmp_path_factory.mktemp("cinder-template") / "cinder.sqlite"
    sync_schema(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def nova_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """nova_api + cell0 + two cells made once by nova-manage (api_db sync, cell_v2 map_cell0,
    cell_v2 create_cell, db sync per cell) on SQLite: about 10 s."""
    from keytools.nova_db import create_databases

    d = tmp_path_factory.mktemp("nova-template")
    create_databases(f"sqlite:///{d / 'nova_api.sqlite'}", f"sqlite:///{d / 'cell0.sqlite'}",
                     {"cell1": f"sqlite:///{d / 'cell1.sqlite'}", "cell2": f"sqlite:///{d / 'cell2.sqlite'}"})
    return d


@pytest.fixture
def kt(sandbox: Sandbox):
    """``kt("doctor", "--os-cloud", "sandbox-demo")`` with clouds.yaml of the sandbox."""

    def run(*args: str, env: dict[str, str] | None = None, input: str | None = None) -> Result:
        merged = {"OS_CLIENT_CONFIG_FILE": str(sandbox.clouds_yaml)}
        merged.update(env or {})
        return invoke(list(args), env=merged, input=input)

    return run


NOBODY = 65534


def _runtime_closure() -> list:
    """keytools' installed distribution and every distribution its base install requires."""
    import importlib.metadata as md

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    seen: dict[str, md.Distribution] = {}
    todo = ["keytools"]
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        seen[name] = md.distribution(name)
        for line in seen[name].requires or []:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return list(seen.values())


def _link_or_copy(src: str | Path, dst: str | Path) -> None:
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)  # same file system: instant, and exactly the installed bytes
    except OSError:
        shutil.copy2(src, dst)


def _world_readable_runtime(dest: Path) -> None:
    """Put keytools' packages and its runtime dependencies (what an operator's ``pip install .``
    brings, metadata and entry points included) into ``dest``, which any user can read."""
    import importlib.util

    for dist in _runtime_closure():
        files = dist.files or []
        if dist.metadata["Name"] == "keytools":  # maybe editable: packages from where they are imported
            for package in (dist.read_text("top_level.txt") or "").split():
                spec = importlib.util.find_spec(package)
                assert spec and spec.submodule_search_locations, package
                shutil.copytree(list(spec.submodule_search_locations)[0], dest / package,
                                copy_function=_link_or_copy, ignore=shutil.ignore_patterns("__pycache__"))
            files = [f for f in files if f.parts[0].endswith(".dist-info")]
        for f in files:
            if f.parts[0] == ".." or "__pycache__" in f.parts:  # console scripts; bytecode is rebuilt
                continue
            src = Path(dist.locate_file(f))
            if src.is_file():
                _link_or_copy(src, dest / f)
    for path in [dest, *dest.rglob("*")]:
        if path.is_dir():
            path.chmod(0o755)
        elif not path.stat().st_mode & 0o004:
            path.chmod(0o644)


@pytest.fixture(scope="session")
def as_nobody():
    """``as_nobody("audit", root)`` runs the keytools CLI as user nobody and returns the process.

    nobody cannot enter a checkout under /root or in a ``mktemp -d`` (0700) directory, and so not
    its .venv either: keytools and its runtime dependencies are linked into a world-readable temp
    directory and run from there by the base interpreter, isolated from the checkout (-I -S).
    """
    if os.geteuid() != 0:
        pytest.skip("needs root to run keytools as another user")
    if not shutil.which("setpriv"):
        pytest.skip("setpriv (util-linux) is missing")
    python = getattr(sys, "_base_executable", None) or sys.executable
    runtime = Path(tempfile.mkdtemp(prefix="keytools-nobody-"))  # not pytest's basetemp: it is 0700
    try:
        site_dir, home = runtime / "site", runtime / "home"
        _world_readable_runtime(site_dir)
        home.mkdir()
        os.chown(home, NOBODY, NOBODY)
        runtime.chmod(0o755)
        drop = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", python, "-I", "-S"]
        probe = subprocess.run([*drop, "-c", "import encodings, ssl"], capture_output=True, text=True, cwd="/")
        if probe.returncode != 0:
            pytest.skip(f"the interpreter {python} cannot run as nobody: {probe.stderr.strip()[-200:]}")
        code = (f"import site, sys; site.addsitedir({str(site_dir)!r}); sys.argv[0] = 'keytools'; "
                "from keytools.cli import run; run()")

        def run(*args: str | Path, cwd: str | Path = "/", timeout: float = 120) -> subprocess.CompletedProcess[str]:
            return subprocess.run([*drop, "-c", code, *map(str, args)], capture_output=True, text=True,
                                  cwd=cwd, timeout=timeout, env={**os.environ, "HOME": str(home)})

        where = subprocess.run([*drop, "-c", code.replace("from keytools.cli import run; run()",
                                                          "import keytools; print(keytools.__file__)")],
                               capture_output=True, text=True, cwd="/")
        assert where.stdout.startswith(str(site_dir)), where.stdout + where.stderr  # not the checkout's
        yield run
    finally:
        shutil.rmtree(runtime, ignore_errors=True)

