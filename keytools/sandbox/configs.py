"""Config files of the sandbox's services, written from the SandboxConfig (0600: they hold secrets)."""

from __future__ import annotations

import base64
import os
from pathlib import Path

from keytools import oslo_ini
from keytools.errors import ConfigError
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
    """Render ``{section: {option: value}}`` as an oslo/paste-style ini file; a list value is a
    multi-valued option (one ``key = value`` line each, in order), a key starting with ``#`` is
    written as a comment line."""
    out = []
    for section, options in sections.items():
        out.append(f"[{section}]")
        for key, value in options.items():
            if key.startswith("#"):
                out.append(key)
                continue
            out.extend(f"{key} = {v}" for v in (value if isinstance(value, list | tuple) else [value]))
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
    keks = barbican_keks(conf_dir / "barbican.conf", cfg)
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
        "simple_crypto_plugin": {"kek": keks},
        "keystone_authtoken": authtoken_section(cfg, "barbican"),
        # legacy: the documented creator/observer/audit roles; new: today's defaults (member).
        # Scope is always enforced (oslo.policy 6 removed enforce_scope): tokens here are project-scoped.
        "oslo_policy": {"enforce_new_defaults": "true" if cfg.rbac == "new" else "false"},
        "queue": {"enable": "false"},
    }
    if hsm.enabled(cfg):  # two stores, pkcs11 (a private SoftHSM2 token) the global default
        conf.update(hsm.barbican_sections(cfg))
    atomic_write(conf_dir / "barbican.conf", ini_text(conf), mode=0o600)
    open(home / "healthcheck_disable_never", "a").close()


def barbican_keks(conf_file: Path, cfg: SandboxConfig) -> list[str]:
    """The simple_crypto KEKs to write: those barbican.conf holds now (``keytools barbican kek
    rotate`` may have changed them since sandbox.json recorded one), else the recorded or a new one.

    Never puts a recorded KEK back over the file's: the database's project KEKs are wrapped with
    the file's. A file that cannot be read, or sets no KEK, is refused rather than guessed at.
    """
    if not conf_file.exists():
        return [cfg.passwords.setdefault("barbican_kek", base64.b64encode(os.urandom(32)).decode())]
    hint = ("Put its [simple_crypto_plugin] kek lines back (a .bak beside it, or 'keytools barbican restore "
            "--restore-kek'), or start afresh with 'keytools sandbox down --purge'")
    try:
        settings = oslo_ini.parse_file(conf_file).get_all("simple_crypto_plugin", "kek")
    except ConfigError as exc:
        raise ConfigError(f"{exc.message}; the sandbox will not rewrite it", hint) from None
    keks = [s.value.strip() for s in settings if s.value.strip()]
    if not keks:
        raise ConfigError(f"{conf_file}: [simple_crypto_plugin] kek is not set; the sandbox will not guess "
                          "the KEK of its Barbican", hint)
    cfg.passwords["barbican_kek"] = keks[0]  # the record follows a rotation (the first KEK encrypts)
    return keks
