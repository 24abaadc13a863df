"""What the migration needs from cinder.conf, read and judged the way cinder reads it.

cinder takes ``fixed_key`` from ``[key_manager]`` (deprecated group ``[keymgr]``) and the backend
from ``[key_manager] backend`` (deprecated ``api_class``); the decision whether to migrate at all is
cinder's own (``KeyMigrator.handle_key_migration``), reproduced in ``skip_reason``. The key is
registered for redaction the moment it is read, before anything can log it.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass

from keytools import oslo_ini, redaction
from keytools.errors import ConfigError, UsageError
from keytools.fileutil import read_user_file

VALID_KEY_BITS = (128, 256, 512)
BARBICAN_NAMES = ("barbican", "BarbicanKeyManager")

# cinder's "Not migrating" decisions, by stable id (also the event names of the log lines).
SKIP_CONF_KEY_MANAGER = "not_migrating_confkeymanager_in_use"
SKIP_NO_FIXED_KEY = "not_migrating_fixed_key_not_in_use"
SKIP_UNSUPPORTED_BACKEND = "not_migrating_unsupported_backend"
SKIP_NOTHING_TO_MIGRATE = "not_migrating_no_volumes_or_backups"


@dataclass(frozen=True)
class Settings:
    """Everything a migration run needs, validated; ``fixed_key`` is None when not set."""

    db_url: str
    backend: str  # short form as cinder compares it (last dotted element)
    fixed_key: bytes | None
    config_file: str | None = None
    barbican_endpoint: str | None = None
    barbican_region: str | None = None

    @property
    def key_bits(self) -> int:
        return len(self.fixed_key or b"") * 8

    def skip_reason(self) -> tuple[str, str] | None:
        """cinder's early exits, in cinder's order: (event id, exact log message) or None."""
        if self.backend == "ConfKeyManager":
            return SKIP_CONF_KEY_MANAGER, "Not migrating encryption keys because the ConfKeyManager is still in use."
        if not self.fixed_key:
            return (SKIP_NO_FIXED_KEY,
                    "Not migrating encryption keys because the ConfKeyManager's fixed_key is not in use.")
        if self.backend not in BARBICAN_NAMES:
            return (SKIP_UNSUPPORTED_BACKEND,
                    f"Not migrating encryption keys because migration to the '{self.backend}' key_manager "
                    "backend is not supported.")
        return None


def parse_fixed_key(value: str, where: str) -> bytes:
    """Hex text -> key bytes; refuse what cinder's ConfKeyManager could never have used."""
    text = value.strip()
    redaction.register_secret(text)
    redaction.register_secret(text.lower())
    if not text:
        raise ConfigError(f"{where}: fixed_key is empty", "Set it to the hex key cinder used (64 hex digits for AES-256)")
    if len(text) % 2:
        raise ConfigError(f"{where}: fixed_key has an odd number of hex digits ({len(text)})",
                          "Copy the complete value from cinder.conf")
    try:
        key = binascii.unhexlify(text)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{where}: fixed_key is not hexadecimal",
                          "Copy the exact value of [key_manager] fixed_key from cinder.conf") from None
    redaction.register_secret(key)
    redaction.register_secret(base64.b64encode(key).decode())  # how barbicanclient sends it
    if len(key) * 8 not in VALID_KEY_BITS:
        raise ConfigError(f"{where}: fixed_key is {len(key) * 8} bits, not 128, 256 or 512",
                          "Copy the complete value from cinder.conf") from None
    return key


def read_fixed_key_file(path: str) -> bytes:
    """A file holding the hex key (what 'keytools fixed-key' backs up): one line, hex."""
    data = read_user_file(path, "--fixed-key-file", "Check the path and permissions", ConfigError,
                          missing_hint="Give the file holding the hex fixed_key", path_first=True)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"--fixed-key-file {path}: not a text file", "Put the hex fixed_key on one line") from None
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    if not lines:
        raise ConfigError(f"--fixed-key-file {path}: no key in the file", "Put the hex fixed_key on one line")
    value = lines[0].split("=", 1)[1] if lines[0].startswith("fixed_key") and "=" in lines[0] else lines[0]
    return parse_fixed_key(value, f"--fixed-key-file {path}")


def _short_backend(value: str | None) -> str:
    return (value or "").strip().split(".")[-1]


def load(config_file: str | None = None, db_url: str | None = None, fixed_key_file: str | None = None,
         backend: str | None = None, barbican_endpoint: str | None = None, require_db: bool = True,
         service_conf: str | None = None) -> Settings:
    """Settings from cinder.conf and/or explicit options (explicit options win). Without cinder
    (``require_db=False``) ``db_url`` may stay empty; ``service_conf`` (nova.conf) then supplies
    fixed_key, the backend and [barbican] the same way."""
    cinder_conf = config_file is not None
    if config_file is None and service_conf:
        config_file = service_conf
    conf = None
    if config_file:
        if not os.path.exists(config_file):
            raise ConfigError(f"--config-file {config_file}: no such file", "Give the path of cinder.conf")
        conf = oslo_ini.parse_with_conf_d(config_file)
    key: bytes | None = None
    if fixed_key_file:
        key = read_fixed_key_file(fixed_key_file)
    elif conf is not None:
        setting = conf.setting("key_manager", "fixed_key") or conf.setting("keymgr", "fixed_key")
        if setting is not None and setting.value.strip():
            key = parse_fixed_key(setting.value, f"{setting.path}:{setting.line} [{setting.section}] fixed_key")
    if backend is None and conf is not None:
        backend = conf.get("key_manager", "backend") or conf.get("key_manager", "api_class") \
            or conf.get("keymgr", "api_class")
        if backend is None:
            # castellan's default backend is barbican; cinder sets no other default
            backend = "barbican"
    if db_url is None and conf is not None and cinder_conf:
        db_url = conf.get("database", "connection") or conf.get("DEFAULT", "sql_connection")
    if not db_url and not require_db:
        db_url = ""
    elif not db_url:
        where = f"{config_file} [database] connection" if config_file else "--db-url"
        raise UsageError(f"no Cinder database given ({where} is not set)",
                         "Pass --config-file cinder.conf or --db-url mysql+pymysql://user:pw@host/cinder")
    if db_url:
        _register_db_password(db_url)
    endpoint = barbican_endpoint or (conf.get("barbican", "barbican_endpoint") if conf is not None else None)
    region = conf.get("barbican", "barbican_region_name") if conf is not None else None
    return Settings(db_url=db_url, backend=_short_backend(backend or "barbican"), fixed_key=key,
                    config_file=config_file if cinder_conf else None, barbican_endpoint=endpoint or None, barbican_region=region or None)


def _register_db_password(db_url: str) -> None:
    try:
        import sqlalchemy as sa

        redaction.register_secret(sa.engine.make_url(db_url).password)
    except Exception:  # noqa: BLE001 - a malformed URL is reported by the db module
        return
