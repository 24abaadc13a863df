"""The sandbox's servers as small declarative specs, so new ones (cinder-api, glance-api, Swift)
plug in without touching the start/stop logic.

Each spec says how to write its config, how to initialise it once (idempotently), how to run it
(a gunicorn WSGI app bound to 127.0.0.1, or a plain command), where it answers when ready, and what
it registers in the Keystone catalog.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from keytools.errors import ServiceUnavailable
from keytools.sandbox import configs, hsm
from keytools.sandbox.state import SandboxConfig, StateDir

Hook = Callable[[StateDir, SandboxConfig], None]


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    configure: Hook
    wsgi_app: str | None = None  # "module:factory()" for gunicorn
    command: Callable[[StateDir, SandboxConfig], list[str]] | None = None
    initialise: Hook | None = None  # one-time, idempotent (db sync); recorded in cfg.initialized
    health_path: str = "/"
    catalog: tuple[str, str] | None = None  # (service name, service type) in Keystone
    catalog_path: str = ""
    workers: Callable[[SandboxConfig], int] = lambda cfg: 1
    env: Callable[[StateDir, SandboxConfig], dict[str, str]] = lambda state, cfg: {}
    needs: tuple[str, ...] = field(default_factory=tuple)  # python modules that must import
    ports: tuple[str, ...] = ()  # extra port keys beyond `name`
    # Readiness check for servers that do not speak HTTP (memcached): used instead of polling
    # health_path; called as ready(state, cfg, timeout) and raises ServiceUnavailable.
    ready: Callable[[StateDir, SandboxConfig, float], None] | None = None


def gunicorn_argv(spec: ServiceSpec, cfg: SandboxConfig) -> list[str]:
    """gunicorn on loopback; sync workers, so with one worker requests are served one at a time
    (what Barbican on SQLite needs: it fails with 'database is locked' under concurrent writers)."""
    return [sys.executable, "-m", "gunicorn", "--bind", f"{configs.LOOPBACK}:{cfg.ports[spec.name]}",
            "--workers", str(spec.workers(cfg)), "--worker-class", "sync", "--timeout", "300",
            "--graceful-timeout", "3", "--backlog", "256", "--log-level", "warning",
            spec.wsgi_app or ""]


def run_checked(argv: list[str], what: str, env: dict[str, str] | None = None,
                log_path: str | None = None) -> None:
    """Run a set-up command; on failure raise with the tail of its output (never its env)."""
    import os

    full_env = dict(os.environ)
    full_env.update(env or {})
    result = subprocess.run(argv, capture_output=True, text=True, env=full_env)
    if log_path:
        with open(log_path, "a") as log:
            log.write(result.stdout + result.stderr)
    if result.returncode != 0:
        tail = " | ".join((result.stderr or result.stdout).strip().splitlines()[-3:])
        raise ServiceUnavailable(f"{what} failed (exit {result.returncode}): {tail[:500]}")


def _keystone_initialise(state: StateDir, cfg: SandboxConfig) -> None:
    run_checked([sys.executable, "-m", "keytools.sandbox.keystone_manage",
                 str(state.path("keystone", "keystone.conf")),
                 "db_sync", "fernet_setup", "credential_setup", "bootstrap"],
                "keystone-manage db_sync/fernet_setup/credential_setup/bootstrap",
                env={"OS_BOOTSTRAP_PASSWORD": cfg.passwords["admin"],
                     "KEYTOOLS_KEYSTONE_URL": configs.keystone_url(cfg)},
                log_path=str(state.path("logs", "keystone-manage.log")))


KEYSTONE = ServiceSpec(
    name="keystone",
    configure=configs.write_keystone,
    initialise=_keystone_initialise,
    wsgi_app="keytools.sandbox.apps:keystone()",
    health_path="/v3",
    needs=("keystone",),
)

def _barbican_configure(state: StateDir, cfg: SandboxConfig) -> None:
    """barbican.conf; with ``--with hsm`` the SoftHSM2 token first (its PIN goes into the config)
    and the HSM's master keys once the config names them."""
    if hsm.enabled(cfg):
        hsm.ensure_token(state, cfg)
    configs.write_barbican(state, cfg)
    if hsm.enabled(cfg) and "hsm-keys" not in cfg.initialized:
        hsm.ensure_master_keys(state, cfg)
        cfg.initialized.append("hsm-keys")


BARBICAN = ServiceSpec(
    name="barbican",
    configure=_barbican_configure,
    wsgi_app="keytools.sandbox.apps:barbican()",
    health_path="/",
    catalog=("barbican", "key-manager"),
    workers=lambda cfg: cfg.barbican_workers,
    env=hsm.env,  # SOFTHSM2_CONF with --with hsm
    needs=("barbican",),
)

CORE = (KEYSTONE, BARBICAN)

# Optional servers other features add: name -> "module:SPEC", imported only when asked for.
OPTIONAL: dict[str, str] = {
    "cinder": "keytools.sandbox.cinder:SPEC",
    "glance": "keytools.sandbox.glance:SPEC",
    "swift": "keytools.sandbox.swift:SPEC",
}
# Options of the core services rather than servers of their own.
FEATURES = (hsm.FEATURE,)


def optional_specs(name: str) -> list[ServiceSpec]:
    """The spec (or the specs, for a service made of several processes) behind ``name``."""
    module, attr = OPTIONAL[name].split(":")
    found = getattr(importlib.import_module(module), attr)
    return list(found) if isinstance(found, (list, tuple)) else [found]


def specs_for(names: list[str]) -> list[ServiceSpec]:
    """Core services first, then the optional ones in the order given."""
    specs = list(CORE)
    for name in names:
        specs.extend(optional_specs(name))
    return specs
