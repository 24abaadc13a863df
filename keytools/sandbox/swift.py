"""A real one-replica Swift in the sandbox: memcached, account/container/object servers, a proxy.

Everything lives under ``<state>/swift``: ``swift.conf`` (hash suffix), rings built once with
``swift-ring-builder`` (one device per ring on 127.0.0.1), ``devices/d1`` (``mount_check = false``),
one config per server (``workers = 0``, ``swift_dir`` in every conf) and ``keymaster.conf`` (0600)
for the proxy's keytools keymaster. The proxy authenticates with Keystone (authtoken +
keystoneauth, tokens cached in memcached) and encrypts at rest with the root secret
``swift-root-secret`` in Barbican: created once by admin in project ``service`` and readable by the
``swift`` service user through a Barbican ACL, which is how a deployment hands Swift its key.
"""

from __future__ import annotations

import getpass
import secrets
import shutil
import socket
import sys
import time
from pathlib import Path

from keytools.errors import ServiceUnavailable, UsageError
from keytools.fileutil import atomic_write, private_dir
from keytools.sandbox import bootstrap, configs, processes
from keytools.sandbox.services import ServiceSpec, run_checked
from keytools.sandbox.state import SandboxConfig, StateDir
from keytools.secret_store import secret_id

ROOT_SECRET_NAME = "swift-root-secret"
PART_POWER = 8
RINGS = {"account": "swift-account", "container": "swift-container", "object": "swift-object"}
# The proxy pipeline an operator would run: keystone auth, then keytools' keymaster right
# before encryption, both just before the final proxy-logging and proxy-server.
PIPELINE = ("catch_errors gatekeeper healthcheck proxy-logging cache listing_formats authtoken "
            "keystoneauth copy slo dlo versioned_writes symlink keymaster encryption proxy-logging "
            "proxy-server")


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def swift_dir(state: StateDir) -> Path:
    return state.path("swift")



def _defaults(state: StateDir, cfg: SandboxConfig, port_key: str, name: str) -> dict[str, object]:
    """[DEFAULT] shared by every Swift server: loopback, one process, no mount checks."""
    return {
        "bind_ip": configs.LOOPBACK,
        "bind_port": cfg.ports[port_key],
        "workers": 0,
        "user": getpass.getuser(),
        "swift_dir": swift_dir(state),
        "devices": swift_dir(state) / "devices",
        "mount_check": "false",
        "log_name": name,
        "log_level": "INFO",
        # Without /dev/log Swift falls back to UDP syslog: keep even that on loopback.
        "log_udp_host": configs.LOOPBACK,
    }


def _write_common(state: StateDir, cfg: SandboxConfig) -> Path:
    home = private_dir(swift_dir(state))
    private_dir(home / "devices" / "d1")
    suffix = cfg.passwords.setdefault("swift_hash_path_suffix", secrets.token_hex(16))
    conf = {"swift-hash": {"swift_hash_path_suffix": suffix},
            "storage-policy:0": {"name": "Policy-0", "default": "yes"}}
    atomic_write(home / "swift.conf", configs.ini_text(conf), mode=0o600)
    return home


# ---- memcached (Debian package) ----

def _memcached_command(state: StateDir, cfg: SandboxConfig) -> list[str]:
    binary = shutil.which("memcached")
    if binary is None:
        raise UsageError("memcached is not installed (the Swift proxy caches tokens and listings in it)",
                         "Install it with scripts/install-system-deps.sh or: apt-get install memcached")
    argv = [binary, "-l", configs.LOOPBACK, "-p", str(cfg.ports["memcached"]), "-U", "0", "-m", "64"]
    return argv + (["-u", "root"] if getpass.getuser() == "root" else [])


def _memcached_ready(state: StateDir, cfg: SandboxConfig, timeout: float) -> None:
    """memcached speaks its own protocol: ready when ``version`` is answered."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((configs.LOOPBACK, cfg.ports["memcached"]), timeout=1) as sock:
                sock.sendall(b"version\r\n")
                if sock.recv(64).startswith(b"VERSION"):
                    return
        except OSError:
            pass
        if processes.running_pid(state, "memcached") is None:
            raise ServiceUnavailable(f"memcached exited during start-up: {processes.log_tail(state, 'memcached')}",
                                     f"See {state.path('logs', 'memcached.log')}")
        time.sleep(0.1)
    raise ServiceUnavailable(f"memcached did not answer on port {cfg.ports['memcached']} within {timeout:.0f} s")


# ---- storage servers ----

def _build_rings(state: StateDir, cfg: SandboxConfig) -> None:
    """One-replica rings, one device each, built once with swift-ring-builder (idempotent)."""
    home = _write_common(state, cfg)
    log = str(state.path("logs", "swift-ring-builder.log"))
    work = home / "rings.tmp"
    shutil.rmtree(work, ignore_errors=True)
    private_dir(work)
    for ring, port_key in RINGS.items():
        builder = str(work / f"{ring}.builder")
        run_checked([_bin("swift-ring-builder"), builder, "create", str(PART_POWER), "1", "0"],
                    f"swift-ring-builder {ring} create", log_path=log)
        run_checked([_bin("swift-ring-builder"), builder, "add",
                     f"r1z1-{configs.LOOPBACK}:{cfg.ports[port_key]}/d1", "100"],
                    f"swift-ring-builder {ring} add", log_path=log)
        _rebalance(Path(builder), ring, log)
    for path in work.iterdir():  # all rings complete: publish them
        path.replace(home / path.name)
    work.rmdir()


def _rebalance(builder: Path, ring: str, log: str) -> None:
    import subprocess

    result = subprocess.run([_bin("swift-ring-builder"), str(builder), "rebalance"],
                            capture_output=True, text=True)
    with open(log, "a") as handle:
        handle.write(result.stdout + result.stderr)
    if result.returncode > 1:  # 1 is swift-ring-builder's "done, with warnings"
        raise ServiceUnavailable(f"swift-ring-builder {ring} rebalance failed: {result.stdout[-300:]}")


def _storage_configure(kind: str):
    def configure(state: StateDir, cfg: SandboxConfig) -> None:
        home = _write_common(state, cfg)
        conf = {
            "DEFAULT": _defaults(state, cfg, RINGS[kind], f"{kind}-server"),
            "pipeline:main": {"pipeline": f"healthcheck {kind}-server"},
            f"app:{kind}-server": {"use": f"egg:swift#{kind}"},
            "filter:healthcheck": {"use": "egg:swift#healthcheck"},
        }
        atomic_write(home / f"{kind}-server.conf", configs.ini_text(conf), mode=0o600)
    return configure


def _storage_command(kind: str):
    def command(state: StateDir, cfg: SandboxConfig) -> list[str]:
        return [_bin(f"swift-{kind}-server"), str(swift_dir(state) / f"{kind}-server.conf"), "--verbose"]
    return command


# ---- the proxy ----

def ensure_root_secret(state: StateDir, cfg: SandboxConfig) -> str:
    """Find or create the proxy's root secret (AES-256, raw) and let the swift user read it."""
    from keystoneclient.v3 import client as ks_client

    from keytools.keymanager import barbican_client

    processes.wait_http(configs.url(cfg, "barbican", "/"), "barbican", state, 60)
    session = bootstrap.admin_session(cfg, project="service")
    client = barbican_client(session, endpoint=configs.url(cfg, "barbican"))
    known = cfg.extra.get("swift_key_id")
    ref = None
    if known:
        ref = f"{configs.url(cfg, 'barbican')}/v1/secrets/{known}"
    else:
        found = [s for s in client.secrets.list(name=ROOT_SECRET_NAME) if s.secret_type == "symmetric"]
        if found:
            ref = found[0].secret_ref
        else:
            ref = client.secrets.create(name=ROOT_SECRET_NAME, payload=secrets.token_bytes(32),
                                        algorithm="aes", bit_length=256, mode="ctr",
                                        secret_type="symmetric").store()
    key_id = secret_id(ref)
    if "swift-key-acl" not in cfg.initialized:
        keystone = ks_client.Client(session=session, interface="public")
        swift_user = next(u for u in keystone.users.list(name="swift") if u.name == "swift")
        acl = client.acls.create(entity_ref=ref, users=[swift_user.id], project_access=True)
        acl.submit()
        cfg.initialized.append("swift-key-acl")
    cfg.extra["swift_key_id"] = key_id
    state.save(cfg)
    return key_id


def keymaster_section(cfg: SandboxConfig, key_id: str) -> dict[str, object]:
    """The keymaster's own config, with the option names of Swift's kms_keymaster."""
    return {
        "auth_endpoint": configs.keystone_url(cfg),
        "username": "swift",
        "password": cfg.passwords["swift"],
        "project_name": "service",
        "user_domain_name": "Default",
        "project_domain_name": "Default",
        "key_id": key_id,
    }


def proxy_sections(state: StateDir, cfg: SandboxConfig, port: int, pipeline: str = PIPELINE,
                   keymaster: dict[str, object] | None = None) -> dict[str, dict[str, object]]:
    """A proxy-server.conf as sections; tests and benchmarks reuse it for extra proxies."""
    sections: dict[str, dict[str, object]] = {
        "DEFAULT": {**_defaults(state, cfg, "swift", "proxy-server"), "bind_port": port},
        "pipeline:main": {"pipeline": pipeline},
        "app:proxy-server": {"use": "egg:swift#proxy", "account_autocreate": "true"},
        "filter:catch_errors": {"use": "egg:swift#catch_errors"},
        "filter:gatekeeper": {"use": "egg:swift#gatekeeper"},
        "filter:healthcheck": {"use": "egg:swift#healthcheck"},
        "filter:proxy-logging": {"use": "egg:swift#proxy_logging"},
        "filter:cache": {"use": "egg:swift#memcache",
                         "memcache_servers": f"{configs.LOOPBACK}:{cfg.ports['memcached']}"},
        "filter:listing_formats": {"use": "egg:swift#listing_formats"},
        "filter:authtoken": {"paste.filter_factory": "keystonemiddleware.auth_token:filter_factory",
                             **configs.authtoken_section(cfg, "swift"),
                             "delay_auth_decision": "true", "cache": "swift.cache",
                             "include_service_catalog": "false"},
        "filter:keystoneauth": {"use": "egg:swift#keystoneauth", "operator_roles": "admin, member",
                                "reseller_prefix": "AUTH_"},
        "filter:copy": {"use": "egg:swift#copy"},
        "filter:slo": {"use": "egg:swift#slo"},
        "filter:dlo": {"use": "egg:swift#dlo"},
        "filter:versioned_writes": {"use": "egg:swift#versioned_writes"},
        "filter:symlink": {"use": "egg:swift#symlink"},
        "filter:keymaster": keymaster or {"use": "egg:keytools#keymaster",
                                          "keymaster_config_path": swift_dir(state) / "keymaster.conf"},
        "filter:encryption": {"use": "egg:swift#encryption"},
    }
    return sections


def _proxy_configure(state: StateDir, cfg: SandboxConfig) -> None:
    home = _write_common(state, cfg)
    key_id = ensure_root_secret(state, cfg)
    atomic_write(home / "keymaster.conf", configs.ini_text({"kms_keymaster": keymaster_section(cfg, key_id)}), mode=0o600)
    atomic_write(home / "proxy-server.conf", configs.ini_text(proxy_sections(state, cfg, cfg.ports["swift"])), mode=0o600)


def _proxy_command(state: StateDir, cfg: SandboxConfig) -> list[str]:
    return [_bin("swift-proxy-server"), str(swift_dir(state) / "proxy-server.conf"), "--verbose"]


MEMCACHED = ServiceSpec(
    name="memcached",
    configure=lambda state, cfg: None,
    command=_memcached_command,
    ready=_memcached_ready,
)

STORAGE = [
    ServiceSpec(
        name=port_key,
        configure=_storage_configure(kind),
        # The account server's one-time step builds all three rings (ports are fixed by then).
        initialise=_build_rings if kind == "account" else None,
        command=_storage_command(kind),
        health_path="/healthcheck",
        needs=("swift",),
    )
    for kind, port_key in RINGS.items()
]

PROXY = ServiceSpec(
    name="swift",
    configure=_proxy_configure,
    command=_proxy_command,
    health_path="/healthcheck",
    catalog=("swift", "object-store"),
    catalog_path="/v1/AUTH_%(tenant_id)s",
    needs=("swift", "keystonemiddleware"),
)

SPEC = [MEMCACHED, *STORAGE, PROXY]
