"""Config files of the sandbox's services, written from the SandboxConfig (0600: they hold secrets)."""

from __future__ import annotations

import base64
import os

from keytools.fileutil import atomic_write, private_dir
from keytools.sandbox import hsm
from keytools.sandbox.state import SandboxConfig, StateDir

LOOPBACK = "127.0.0.1"


def url(cfg: SandboxConfig, service: str, path: str = "") -> str:
    return f"http://{LOOPBACK}:{cfg.ports[service]}{path}"


def keystone_url(cfg: SandboxConfig) -> str:
    return url(cfg, "keystone", "/v3")


def db_url(state: StateDir, cfg: SandboxConfig, name: str) -> str:
    if cfg.db == "mariadb":
        pw = cfg.passwords["mariadb"]
        return f"mysql+pymysql://keytools:{pw}@{LOOPBACK}:{cfg.ports['mariadb']}/{name}?charset=utf8mb4"
    return f"sqlite:///{state.path(name, name + '.db')}"


def ini_text(sections: dict[str, dict[str, object]]) -> str:
    """Render ``{section: {option: value}}`` as an oslo/paste-style ini file (a key starting with
    ``#`` is written as a comment line)."""
    out = []
    for section, options in sections.items():
        out.append(f"[{section}]")
        out.extend(key if key.startswith("#") else f"{key} = {value}" for key, value in options.items())
        out.append("")
    return "\n".join(out)


def authtoken_section(cfg: SandboxConfig, user: str) -> dict[str, object]:
    """A service's [keystone_authtoken]: the service user in project 'service'."""
    return {
        "www_authenticate_uri": keystone_url(cfg),
        "auth_url": keystone_url(cfg),
        "auth_type": "password",
        "username": user,
        "password": cfg.passwords[user],
        "project_name": "service",
        "user_domain_name": "Default",
        "project_domain_name": "Default",
        "region_name": "RegionOne",
    }


def write_keystone(state: StateDir, cfg: SandboxConfig) -> None:
    home = private_dir(state.path("keystone"))
    conf = {
        "DEFAULT": {"debug": "false", "use_stderr": "true"},
        "database": {"connection": db_url(state, cfg, "keystone")},
        "token": {"provider": "fernet", "expiration": 7200},
        "fernet_tokens": {"key_repository": home / "fernet-keys"},
        "fernet_receipts": {"key_repository": home / "fernet-keys"},
        "credential": {"key_repository": home / "credential-keys"},
        # A throwaway cloud: cheap password hashing makes user creation and auth fast.
        "identity": {"password_hash_rounds": 4},
        # One keystone process: an in-memory cache saves ~200 SQL queries per token validation.
        "cache": {"enabled": "true", "backend": "dogpile.cache.memory"},
    }
    atomic_write(home / "keystone.conf", ini_text(conf), mode=0o600)


def write_barbican(state: StateDir, cfg: SandboxConfig) -> None:
    home = private_dir(state.path("barbican"))
    conf_dir = private_dir(home / ".barbican")
    kek = cfg.passwords.setdefault("barbican_kek", base64.b64encode(os.urandom(32)).decode())
    conf = {
        "DEFAULT": {
            "host_href": url(cfg, "barbican"),
            "db_auto_create": "true",
            "debug": "false",
            "use_stderr": "true",
        },
        "database": {"connection": db_url(state, cfg, "barbican")},
        "secretstore": {"enabled_secretstore_plugins": "store_crypto"},
        "crypto": {"enabled_crypto_plugins": "simple_crypto"},
        "simple_crypto_plugin": {"kek": kek},
        "keystone_authtoken": authtoken_section(cfg, "barbican"),
        # legacy: the documented creator/observer/audit roles; new: today's defaults (member).
        "oslo_policy": {"enforce_new_defaults": "true" if cfg.rbac == "new" else "false",
                        "enforce_scope": "true" if cfg.rbac == "new" else "false"},
        "queue": {"enable": "false"},
    }
    if hsm.enabled(cfg):  # two stores, pkcs11 (a private SoftHSM2 token) the global default
        conf.update(hsm.barbican_sections(cfg))
    atomic_write(conf_dir / "barbican.conf", ini_text(conf), mode=0o600)
    open(home / "healthcheck_disable_never", "a").close()
