"""Root secrets from Barbican: one keystoneauth session, castellan's interface, strict validation.

Loading happens once per process (``load`` caches by configuration), never per request. Every key
must be a symmetric AES key of at least 256 bits whose payload is raw bytes of exactly that length
(a base64 string stored as the payload is refused). Failures name the option and the key id, never
the bytes; transient failures (unreachable, timeouts, 5xx) are retried with bounded backoff.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from keytools import redaction, service_errors
from keytools.errors import (AuthenticationFailed, ConfigError, Forbidden, KeytoolsError,
                             ServiceUnavailable)
from swift_middleware.settings import SECRET_OPTIONS, KeymasterSettings, KeyRef

MIN_BITS = 256
Sleep = Callable[[float], None]


class RootSecretRefused(ConfigError):
    """A configured key is unusable as a Swift root secret (wrong type, algorithm, length, format)."""


@dataclass(frozen=True)
class LoadedKey:
    """What may be shown about a loaded root secret: never the bytes."""

    option: str
    secret_id: str | None
    key_id: str
    algorithm: str
    bit_length: int
    fingerprint: str
    active: bool

    def as_dict(self) -> dict[str, Any]:
        return {"option": self.option, "secret_id": self.secret_id, "key_id": self.key_id,
                "algorithm": self.algorithm, "bit_length": self.bit_length,
                "fingerprint": self.fingerprint, "active": self.active}


@dataclass(frozen=True)
class RootSecrets:
    secrets: dict[str | None, bytes]
    keys: tuple[LoadedKey, ...]


def fingerprint(secret: bytes) -> str:
    """A short, one-way fingerprint to compare keys across hosts and tools
    (``base64 -d <<<"$B64" | sha256sum | cut -c1-12``)."""
    return "sha256:" + hashlib.sha256(secret).hexdigest()[:12]


def make_session(settings: KeymasterSettings) -> Any:
    """One keystoneauth session with the keymaster's credentials (password or app credential)."""
    from keystoneauth1 import loading
    from keystoneauth1 import session as ks_session

    for name in SECRET_OPTIONS:
        redaction.register_secret(settings.auth_options.get(name))
    try:
        plugin = loading.get_plugin_loader(settings.auth_type).load_from_options(
            auth_url=settings.auth_url, **settings.auth_options)
    except Exception as exc:  # keystoneauth's MissingRequiredOptions and friends
        raise ConfigError(f"{settings.where}: incomplete credentials: {exc}",
                          "Set username, password, project_name and the domain names") from None
    return ks_session.Session(auth=plugin, verify=settings.verify, timeout=settings.timeout)


def key_manager(settings: KeymasterSettings, session: Any) -> Any:
    """castellan's KeyManager interface on ``session`` (Barbican endpoint explicit or from the catalog)."""
    from keytools.keymanager import SessionBarbicanKeyManager, barbican_endpoint

    endpoint = settings.barbican_endpoint or barbican_endpoint(
        session, settings.barbican_interface, settings.barbican_region)
    return SessionBarbicanKeyManager(session, endpoint.rstrip("/"))


def classify(exc: BaseException, ref: KeyRef | None, settings: KeymasterSettings) -> KeytoolsError:
    """Turn a client failure into ours, by type and status; ServiceUnavailable means 'worth retrying'."""
    if isinstance(exc, KeytoolsError):
        return exc
    what = f"{ref.option} = {ref.key_id}" if ref else "the keymaster credentials"
    text = " ".join(redaction.redact(str(exc)).split()) or type(exc).__name__
    text = text.split(": HTTPConnectionPool(")[0][:300]  # keystoneauth repeats urllib3's whole story
    if service_errors.is_unauthorized(exc):
        return AuthenticationFailed(f"Keystone refused the keymaster credentials in {settings.where}",
                                    "Check username, password, project and domain names")
    if service_errors.is_endpoint_missing(exc):
        return ConfigError(f"{settings.where}: no key-manager endpoint in the service catalog",
                           "Set barbican_endpoint, or barbican_region_name/barbican_endpoint_type")
    if service_errors.is_not_found(exc):
        return ConfigError(f"{settings.where}: {what}: Barbican has no such secret",
                           "Check the id with 'openstack secret get'")
    if service_errors.is_forbidden(exc):
        return Forbidden(f"{settings.where}: {what}: Barbican refused to return the secret to the "
                         "keymaster user",
                         "Give that user read access (an ACL: 'openstack acl user add --user <id> "
                         "<secret href>') or a reader role in the secret's project")
    if service_errors.is_transient(exc):
        return ServiceUnavailable(f"cannot load {what} from Barbican: {text}",
                                  "Check that Keystone and Barbican are reachable from the proxy")
    return ConfigError(f"{settings.where}: {what}: {text}")


def validate(ref: KeyRef, key: Any, settings: KeymasterSettings) -> bytes:
    """The raw bytes of ``key`` if it is usable as a root secret; else refuse naming ``ref``."""
    from castellan.common.objects.symmetric_key import SymmetricKey

    where = f"{settings.where}: {ref.option} = {ref.key_id}"
    fix = "Store a 256-bit AES key ('keytools swift new-key') and point the option at it"
    if not isinstance(key, SymmetricKey):
        raise RootSecretRefused(f"{where} is a {type(key).__name__} secret, not a symmetric key", fix)
    algorithm = (key.algorithm or "").upper()
    if algorithm != "AES":
        raise RootSecretRefused(f"{where} is a {key.algorithm or 'no-algorithm'} key; a Swift root "
                                "secret must be AES", fix)
    if key.format != "RAW":
        raise RootSecretRefused(f"{where} is in {key.format} format, not raw", fix)
    secret = key.get_encoded()
    if isinstance(secret, str):
        secret = secret.encode("utf-8")
    redaction.register_secret(secret)
    bits = key.bit_length or 0
    if bits < MIN_BITS:
        raise RootSecretRefused(f"{where} is AES with {bits} bits; a Swift root secret needs at least "
                                f"{MIN_BITS}", fix)
    if len(secret) * 8 != bits:
        raise RootSecretRefused(f"{where} says {bits} bits but its payload is {len(secret)} bytes: "
                                "not raw key bytes (a base64 or hex string stored as the payload?)",
                                "Store the raw bytes (payload-content-encoding base64 of the key)")
    return secret


def fetch(settings: KeymasterSettings, manager: Any = None) -> RootSecrets:
    """Every configured key, over one session; raises on the first failure (never a partial set)."""
    from keytools.keymanager import SESSION_CONTEXT

    secrets: dict[str | None, bytes] = {}
    loaded = []
    ref: KeyRef | None = None
    try:
        manager = manager or key_manager(settings, make_session(settings))
        for ref in settings.keys:
            secret = validate(ref, manager.get(SESSION_CONTEXT, ref.key_id), settings)
            secrets[ref.secret_id] = secret
            loaded.append(LoadedKey(ref.option, ref.secret_id, ref.key_id, "AES", len(secret) * 8,
                                    fingerprint(secret), ref.secret_id == settings.active_secret_id))
    except Exception as exc:
        raise classify(exc, ref, settings) from None
    return RootSecrets(secrets, tuple(loaded))


def fetch_with_retries(settings: KeymasterSettings, logger: Any, attempts: int | None = None,
                       sleep: Sleep = time.sleep) -> RootSecrets:
    """``fetch`` with bounded exponential backoff on transient failures only."""
    retries = settings.startup_retries if attempts is None else attempts
    delay = settings.startup_backoff
    for attempt in range(retries + 1):
        try:
            return fetch(settings)
        except ServiceUnavailable as exc:
            if attempt >= retries:
                raise
            logger.warning("keymaster: %s (attempt %d of %d); retrying in %.1f s",
                           exc.one_line(), attempt + 1, retries + 1, delay)
            sleep(delay)
            delay = min(max(delay * 2, 0.1), settings.startup_backoff_max)
    raise AssertionError("unreachable")  # pragma: no cover


def log_loaded(logger: Any, result: RootSecrets) -> None:
    for key in result.keys:
        logger.info("keymaster: loaded root secret %s = %s (secret id %s%s): AES-%d, fingerprint %s",
                    key.option, key.key_id, key.secret_id or "-", ", active" if key.active else "",
                    key.bit_length, key.fingerprint)


# ---- once per process ----

_lock = threading.Lock()
_loaded: dict[str, RootSecrets] = {}


def cached(settings: KeymasterSettings) -> RootSecrets | None:
    return _loaded.get(settings.cache_key())


def remember(settings: KeymasterSettings, result: RootSecrets) -> None:
    with _lock:
        _loaded[settings.cache_key()] = result


def load(settings: KeymasterSettings, logger: Any = None) -> RootSecrets:
    """The root secrets for ``settings``, fetched once per process (Swift loads its pipeline twice
    at start: once to validate the config, once to serve; forked workers inherit the result)."""
    logger = logger or logging.getLogger(__name__)
    found = cached(settings)
    if found is not None:
        return found
    result = fetch_with_retries(settings, logger)
    log_loaded(logger, result)
    remember(settings, result)
    return result


def forget_all() -> None:
    """Drop the per-process cache (tests)."""
    with _lock:
        _loaded.clear()
