"""Which options hold secrets, and how a secret is shown: "set", its length and a short hash.

The hash prefix lets operators compare values across files and nodes (fixed_key in cinder.conf
vs nova.conf) without the value ever leaving the machine. Values are masked by position: a rule
that shows an option's value shows ``shown(option, value)``, never the raw value. Config values
are deliberately NOT registered with ``keytools.redaction``: a substring mask of
``send_service_user_token = True`` would blank every "True" of the report and break JSON.
"""

from __future__ import annotations

import binascii
import functools
import hashlib
import re
from urllib.parse import urlsplit

from keytools import redaction
from keytools.oslo_ini import Setting

# Options whose value is a key (shown with a hash prefix so values can be compared).
KEY_OPTIONS = frozenset({"fixed_key", "kek", "encryption_root_secret"})
# The secret word ends the name (admin_password, memcache_secret_key, s3_store_secret_key,
# application_credential_secret): ``password_length``, ``quota_secrets``, ``chap_password_len``,
# ``enabled_secretstore_plugins`` or ``rbd_secret_uuid`` describe secrets but do not hold one.
_SECRET_NAME = re.compile(r"(password|passwd|passphrase|secret|_key|_keys|^kek|token|token_id)$",
                          re.IGNORECASE)
# barbican's [p11_crypto_plugin] login is the HSM PIN
_SECRET_EXTRA = frozenset({"login"})
_NOT_SECRET = frozenset({"key_id", "ssl_key_file", "key_file", "cert_file", "keyfile",
                         "encryption_key_id", "active_root_secret_id", "secret_id",
                         "memcache_security_strategy", "api_key_file", "send_service_user_token",
                         "service_token_roles_required", "hmac_keys_file"})
# Values no secret option really holds: flags and placeholders (``send_service_user_token = True``
# is a switch, not a token). Such a value does not make its file "hold a secret".
_FLAG_VALUES = frozenset({"true", "false", "yes", "no", "on", "off", "none", "null", "<none>"})
_URL_OPTIONS = frozenset({"connection", "sql_connection", "transport_url", "slave_connection", "backend_url",
                          "backend_argument", "memcache_servers"})


@functools.lru_cache(maxsize=4096)
def is_secret_option(option: str) -> bool:
    name = option.lower()
    if name in _NOT_SECRET or name.endswith("_path") or name.endswith("_file"):
        return False
    return (name in KEY_OPTIONS or name in _SECRET_EXTRA or name.startswith("encryption_root_secret")
            or bool(_SECRET_NAME.search(name)))


def url_password(value: str) -> str | None:
    """The password inside ``mysql+pymysql://user:pw@host/db`` or ``rabbit://u:pw@h:5672/``."""
    for part in value.split(","):
        try:
            pw = urlsplit(part.strip()).password
        except ValueError:
            pw = None
        if pw:
            return pw
    return None


def secret_value(option: str, value: str) -> str | None:
    """The secret part of ``option = value`` (the whole value, a URL's password) or None."""
    if is_secret_option(option):
        return value or None
    if option.lower() in _URL_OPTIONS and "@" in value:
        return url_password(value)
    return None


def holds_secret(option: str, value: str) -> bool:
    """Whether ``option = value`` puts a secret in its file (for the file-permission rules)."""
    secret = secret_value(option, value)
    return bool(secret) and secret.strip().lower() not in _FLAG_VALUES


def mask_url(value: str) -> str:
    """``rabbit://u:pw@h/`` -> ``rabbit://u:***@h/`` (each comma-separated URL)."""
    out = []
    for part in value.split(","):
        pw = url_password(part)
        if pw:
            head, sep, rest = part.partition("://")
            userinfo, at, host = rest.rpartition("@")
            user = userinfo.split(":", 1)[0]
            part = f"{head}{sep}{user}:{redaction.MASK}{at}{host}" if at else part
        out.append(part)
    return ",".join(out)


def shown(option: str, value: str) -> str:
    """How a rule shows ``option``'s value in a finding: secrets as ``fingerprint``, URLs with
    their password masked, anything else as is. The one place values are masked by position."""
    if is_secret_option(option) and value:
        return fingerprint(value, as_hex_key=option.lower() == "fixed_key")
    if "@" in value and url_password(value):
        return mask_url(value)
    return value


def key_bytes(value: str) -> bytes:
    """fixed_key is hex (cinder/nova unhexlify it): compare the bytes, so case does not matter."""
    try:
        return binascii.unhexlify(value.strip())
    except (binascii.Error, ValueError):
        return value.strip().encode("utf-8")


def digest(value: str, as_hex_key: bool = False) -> str:
    data = key_bytes(value) if as_hex_key else value.encode("utf-8")
    return "sha256:" + hashlib.sha256(data).hexdigest()[:8]


def fingerprint(value: str, as_hex_key: bool = False) -> str:
    """``set, 64 chars, sha256:1a2b3c4d`` — never the value itself."""
    return f"set, {len(value)} chars, {digest(value, as_hex_key)}"


def show(setting: Setting) -> str:
    """``shown`` for a parsed setting (the value at its position in a finding)."""
    return shown(setting.option, setting.value)
