"""``sandbox up/down/status/env``: bring the local cloud to a known state, idempotently.

``up`` is safe to rerun at any point: every step is find-or-create or recorded in sandbox.json only
once it completed, so a half-initialised state dir is repaired by running ``up`` again.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml

from keytools.errors import ConfigError, UsageError
from keytools.fileutil import atomic_write
from keytools.sandbox import bootstrap, configs, hsm, mariadb, processes
from keytools.sandbox.services import FEATURES, OPTIONAL, ServiceSpec, gunicorn_argv, specs_for
from keytools.sandbox.state import SandboxConfig, StateDir

PORT_KEYS = ("keystone", "barbican", "cinder", "glance", "swift", "mariadb", "memcached",
             "swift-account", "swift-container", "swift-object")


@dataclass
class ServiceStatus:
    name: str
    pid: int | None
    port: int | None
    url: str | None
    healthy: bool

    def as_dict(self) -> dict[str, Any]:
        return {"service": self.name, "pid": self.pid, "port": self.port, "url": self.url,
                "healthy": self.healthy}


@contextlib.contextmanager
def _locked(state: StateDir) -> Iterator[None]:
    """One ``up``/``down`` at a time per state dir."""
    state.ensure()
    with open(state.path(".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _check_packages(specs: list[ServiceSpec]) -> None:
    missing = [m for spec in specs for m in (*spec.needs, "gunicorn") if importlib.util.find_spec(m) is None]
    if missing:
        raise UsageError(f"sandbox server packages missing: {', '.join(sorted(set(missing)))}",
                         "Install them with: pip install 'keytools[sandbox]'")


def _assign_ports(cfg: SandboxConfig, port_base: int | None) -> None:
    if port_base is not None:
        if not 1024 <= port_base <= 65535 - len(PORT_KEYS):
            raise UsageError(f"--port-base {port_base} is out of range", "Use a port from 1024 to 65000")
        wanted = {key: port_base + i for i, key in enumerate(PORT_KEYS)}
        if cfg.ports and cfg.ports != wanted and cfg.initialized:
            raise UsageError("this state dir was set up with other ports",
                             "Run 'keytools sandbox down --purge' first, or drop --port-base")
        cfg.ports = wanted
        return
    missing = [k for k in PORT_KEYS if k not in cfg.ports]
    if missing:
        cfg.ports.update(dict(zip(missing, processes.free_ports(len(missing)), strict=True)))


def _passwords(cfg: SandboxConfig) -> None:
    for user in (*bootstrap.USERS, "mariadb"):
        cfg.passwords.setdefault(user, secrets.token_urlsafe(18))


def _settle_options(cfg: SandboxConfig, db: str | None, rbac: str | None, with_services: list[str]) -> None:
    if cfg.initialized:
        if db and db != cfg.db:
            raise UsageError(f"this state dir runs --db {cfg.db}, not {db}",
                             "Run 'keytools sandbox down --purge' to start afresh, or use another --state-dir")
    elif db:
        cfg.db = db
    if rbac and rbac != cfg.rbac:
        cfg.rbac = rbac  # a policy switch only needs barbican restarted with the new config
        cfg.extra["restart"] = ["barbican"]
    cfg.barbican_workers = 4 if cfg.db == "mariadb" else 1
    for name in with_services:
        if name not in OPTIONAL and name not in FEATURES:
            raise UsageError(f"unknown service {name!r}", f"Choose from {', '.join((*OPTIONAL, *FEATURES))}")
        if name not in cfg.services:
            cfg.services.append(name)
            if name == hsm.FEATURE:  # Barbican restarts with two stores on the SoftHSM2 token
                cfg.extra["restart"] = ["barbican"]


def up(state: StateDir, port_base: int | None = None, db: str | None = None, rbac: str | None = None,
       with_services: list[str] | None = None, timeout: float = 90.0) -> list[ServiceStatus]:
    """Start everything not running; return the status of every service."""
    if db not in (None, "sqlite", "mariadb"):
        raise UsageError(f"--db {db} is not supported", "Use sqlite or mariadb")
    with _locked(state):
        cfg = state.load()
        _settle_options(cfg, db, rbac, list(with_services or []))
        _assign_ports(cfg, port_base)
        _passwords(cfg)
        specs = specs_for([s for s in cfg.services if s in OPTIONAL])
        _check_packages(specs)
        state.save(cfg)
        for name in cfg.extra.pop("restart", []):
            processes.stop(state, name)
        # Every port is checked before anything changes: a busy port fails fast and cleanly.
        for spec in specs:
            if processes.running_pid(state, spec.name) is None:
                processes.require_free(cfg.ports[spec.name], spec.name)
        if cfg.db == "mariadb":
            mariadb.start(state, cfg)
        for spec in specs:
            spec.configure(state, cfg)
            state.save(cfg)
            if spec.initialise and spec.name not in cfg.initialized:
                spec.initialise(state, cfg)
                cfg.initialized.append(spec.name)
                state.save(cfg)
            if processes.running_pid(state, spec.name) is None:
                _start(state, cfg, spec)
            if spec.name == "keystone":
                processes.wait_http(configs.url(cfg, "keystone", "/v3"), "keystone", state, timeout)
                if "keystone-bootstrap" not in cfg.initialized:
                    bootstrap.populate(cfg)
                    cfg.initialized.append("keystone-bootstrap")
                    state.save(cfg)
        keystone = None
        for spec in specs:
            if spec.catalog:
                keystone = keystone or _keystone_admin(cfg)
                name, service_type = spec.catalog
                bootstrap.register_endpoint(keystone, name, service_type,
                                            configs.url(cfg, spec.name, spec.catalog_path))
            if spec.ready:
                spec.ready(state, cfg, timeout)
            else:
                processes.wait_http(configs.url(cfg, spec.name, spec.health_path), spec.name, state, timeout)
        atomic_write(state.clouds_yaml, yaml.safe_dump(bootstrap.clouds_yaml(cfg), sort_keys=False), mode=0o600)
        state.save(cfg)
        return status(state)


def _keystone_admin(cfg: SandboxConfig):
    """One admin keystone client for all catalog registrations of an ``up``."""
    from keystoneclient.v3 import client as ks_client

    return ks_client.Client(session=bootstrap.admin_session(cfg), interface="public")


def _start(state: StateDir, cfg: SandboxConfig, spec: ServiceSpec) -> None:
    """Launch ``spec`` (its port was checked free before anything changed)."""
    argv = gunicorn_argv(spec, cfg) if spec.wsgi_app else spec.command(state, cfg)  # type: ignore[misc]
    processes.start(state, spec.name, argv, env=spec.env(state, cfg))


def down(state: StateDir, purge: bool = False) -> list[str]:
    """Stop exactly the processes this state dir started; ``purge`` also deletes the state dir."""
    if not state.root.exists():
        return []
    stopped = []
    with _locked(state):
        for pidfile in sorted(state.path("run").glob("*.pid"), key=lambda p: p.stem == "mariadb"):
            if processes.stop(state, pidfile.stem):
                stopped.append(pidfile.stem)
    if purge:
        if not state.config_file.exists() and any(p.name not in (".lock", "logs", "run")
                                                  for p in state.root.iterdir()):
            raise ConfigError(f"{state.root} does not look like a sandbox state dir; not deleting it")
        shutil.rmtree(state.root)
    return stopped


def status(state: StateDir) -> list[ServiceStatus]:
    cfg = state.load()
    names = [spec.name for spec in specs_for([s for s in cfg.services if s in OPTIONAL])]
    if cfg.db == "mariadb":
        names.insert(0, "mariadb")
    result = []
    for name in names:
        pid = processes.running_pid(state, name)
        port = cfg.ports.get(name)
        url = configs.url(cfg, name) if port and name != "mariadb" else None
        healthy = bool(pid) and bool(port) and not processes.port_is_free(port)
        result.append(ServiceStatus(name, pid, port, url, healthy))
    return result


def env_lines(state: StateDir) -> list[str]:
    if not state.clouds_yaml.exists():
        raise UsageError(f"no sandbox in {state.root}", "Run 'keytools sandbox up' first")
    lines = [f"export OS_CLIENT_CONFIG_FILE={state.clouds_yaml}"]
    if hsm.enabled(state.load()):
        lines.append(f"export SOFTHSM2_CONF={hsm.conf_path(state)}")
    return [*lines,
            "# then: openstack secret list --os-cloud sandbox-demo   /   keytools doctor --os-cloud sandbox-demo"]

