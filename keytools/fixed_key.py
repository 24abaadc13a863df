"""fixed_key's bytes from a config file or a key file, refused where cinder could never have used them.

``migrate`` (its secrets hold these bytes) and ``fixed-key exposure`` (which secrets still hold
them) read the key here. The key is registered for redaction the moment it is read, in every form
it may be printed or sent in, before anything can log it.
"""

from __future__ import annotations

import base64
import binascii

from keytools import oslo_ini, redaction
from keytools.errors import ConfigError
from keytools.fileutil import read_user_file

VALID_KEY_BITS = (128, 256, 512)


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


def from_config(path: str) -> bytes | None:
    """``[key_manager] fixed_key`` (or the deprecated ``[keymgr]``) of a cinder.conf/nova.conf
    (with its conf.d), None when not set."""
    conf = oslo_ini.parse_with_conf_d(path)
    setting = conf.setting("key_manager", "fixed_key") or conf.setting("keymgr", "fixed_key")
    if setting is None or not setting.value.strip():
        return None
    return parse_fixed_key(setting.value, f"{setting.path}:{setting.line} [{setting.section}] fixed_key")
