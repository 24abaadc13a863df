"""A Swift keymaster whose root secrets live in Barbican; drop-in for ``kms_keymaster``.

Pipeline (``proxy-server.conf``)::

    [pipeline:main]
    pipeline = ... keymaster encryption proxy-logging proxy-server

    [filter:keymaster]
    use = egg:keytools#keymaster
    keymaster_config_path = /etc/swift/keymaster.conf   # [kms_keymaster] section, mode 0600

``BarbicanKeyMaster`` subclasses Swift's ``BaseKeyMaster`` and changes only ``_get_root_secret``,
so per-path key derivation and the key ids stored with every object are Swift's own: data written
through Swift's ``keymaster`` or ``kms_keymaster`` with the same root secret reads back here, and
the reverse. Root secrets are fetched once per process (never per request) and validated.

Start-up: Barbican unreachable -> bounded retries with backoff; then refuse to start (``startup =
strict``, the default) or start and answer 503 to every container and object request until the keys
are loaded in the background (``startup = lazy``). Nothing passes through unencrypted, nothing is
served with a partial key set. An unusable key (not AES, < 256 bits, not raw, missing, forbidden)
always refuses to start, naming the option and key id, never the bytes.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from swift.common.middleware.crypto.keymaster import BaseKeyMaster
from swift.common.swob import HTTPServiceUnavailable, Request
from swift.common.utils import get_logger
from swift.common.wsgi import ConfigFileError

from keytools.errors import KeytoolsError, ServiceUnavailable
from swift_middleware import rootsecrets, settings, usagestate

LOG_ROUTE = "keytools_keymaster"


class KeymasterStartupError(ConfigFileError, ValueError):
    """Refusal to start. A ConfigFileError makes swift-*-server print this one line and exit 1
    instead of a traceback; a ValueError is what Swift's own keymasters raise."""


def _refuse(logger: Any, exc: KeytoolsError) -> KeymasterStartupError:
    message = f"keytools keymaster refuses to start: {exc.one_line()}"
    logger.error(message)
    return KeymasterStartupError(message)


class BarbicanKeyMaster(BaseKeyMaster):
    """Swift's keymaster with root secrets from Barbican (the only change: where they come from)."""

    log_route = LOG_ROUTE
    keymaster_opts = settings.KEYMASTER_OPTS
    keymaster_conf_section = settings.CONF_SECTION

    def _get_root_secret(self, conf: dict[str, str]) -> dict[str | None, bytes]:
        try:
            return dict(rootsecrets.load(settings.parse(conf), self.logger).secrets)
        except KeytoolsError as exc:
            raise _refuse(self.logger, exc) from None


def _runtime() -> tuple[int, int]:
    """(pid, eventlet hub) the code runs in; the hub is 0 outside eventlet."""
    try:
        from eventlet import hubs, patcher
    except ImportError:  # pragma: no cover - swift depends on eventlet
        return os.getpid(), 0
    return os.getpid(), id(hubs.get_hub()) if patcher.is_monkey_patched("thread") else 0


def _sleep(seconds: float) -> None:
    """Sleep without blocking the proxy: Swift patches threads and sockets, not ``time``."""
    from eventlet import patcher

    if patcher.is_monkey_patched("thread"):
        import eventlet

        eventlet.sleep(seconds)
    else:
        time.sleep(seconds)


class BackgroundLoader:
    """Keeps fetching the root secrets (capped backoff) until they load; one per process."""

    def __init__(self, keymaster_settings: settings.KeymasterSettings, logger: Any) -> None:
        self.settings = keymaster_settings
        self.logger = logger
        self.result: rootsecrets.RootSecrets | None = None
        self._started_in: tuple[int, int] | None = None
        self._lock = threading.Lock()

    def ensure_running(self) -> None:
        """Start the loader in this process and event loop. Again after a fork (threads do not
        survive it) and after Swift switches eventlet hubs (run_server does, between its two
        pipeline loads: green threads of the old hub never run again)."""
        where = _runtime()
        with self._lock:
            if self.result is not None or self._started_in == where:
                return
            self._started_in = where
        threading.Thread(target=self._run, name="keytools-keymaster-loader", daemon=True).start()

    def _run(self) -> None:
        delay = max(self.settings.startup_backoff, 0.1)
        while self.result is None:
            try:
                result = rootsecrets.fetch(self.settings)
            except ServiceUnavailable as exc:
                self.logger.warning("keymaster: still no root secrets (%s); answering 503, retrying "
                                    "in %.1f s", exc.one_line(), delay)
            except KeytoolsError as exc:
                self.logger.error("keymaster: root secrets unusable (%s); answering 503 until this is "
                                  "fixed, retrying in %.1f s", exc.one_line(), delay)
            except Exception as exc:  # noqa: BLE001 - a dead loader would answer 503 forever
                self.logger.error("keymaster: unexpected %s while loading the root secrets; answering "
                                  "503, retrying in %.1f s", type(exc).__name__, delay)
            else:
                rootsecrets.log_loaded(self.logger, result)
                rootsecrets.remember(self.settings, result)
                self.result = result
                self.logger.info("keymaster: root secrets loaded; serving encrypted requests")
                return
            _sleep(delay)
            delay = min(delay * 2, max(self.settings.startup_backoff_max, 0.1))


class LazyKeyMaster:
    """Stands in for the keymaster until the root secrets load: every container and object
    request gets 503 (never passed on without keys); account, /info and /healthcheck pass."""

    def __init__(self, app: Any, conf: dict[str, str], loader: BackgroundLoader, logger: Any) -> None:
        self.app = app
        self.conf = conf
        self.loader = loader
        self.logger = logger
        self._keymaster: BarbicanKeyMaster | None = None
        loader.ensure_running()

    def __call__(self, env: dict[str, Any], start_response: Any) -> Any:
        if self._keymaster is None and self.loader.result is not None:
            self._keymaster = BarbicanKeyMaster(self.app, self.conf)  # from the cache: no Barbican call
        if self._keymaster is not None:
            return self._keymaster(env, start_response)
        self.loader.ensure_running()
        try:
            Request(env).split_path(3, 4, True)
        except ValueError:
            return self.app(env, start_response)  # no container or object: needs no key
        resp = HTTPServiceUnavailable(body=b"Encryption keys are not loaded yet; retry later.\n",
                                      headers={"Retry-After": "5", "Content-Type": "text/plain"})
        return resp(env, start_response)


_lazy: dict[str, BackgroundLoader] = {}


def make_keymaster(app: Any, conf: dict[str, str]) -> BarbicanKeyMaster | LazyKeyMaster:
    logger = get_logger(conf, log_route=LOG_ROUTE)
    try:
        km_settings = settings.parse(conf)
    except KeytoolsError as exc:
        raise _refuse(logger, exc) from None
    warning = settings.loose_permissions(conf)
    if warning:
        logger.warning("keymaster: %s", warning)
    for stale in usagestate.stale_key_warnings(conf, [k.secret_id for k in km_settings.keys],
                                               km_settings.active_secret_id):
        logger.warning("keymaster: %s", stale)
    if rootsecrets.cached(km_settings) is None:
        loader = _lazy.get(km_settings.cache_key())
        if loader is None:
            try:
                rootsecrets.load(km_settings, logger)
            except ServiceUnavailable as exc:
                if km_settings.startup != "lazy":
                    raise _refuse(logger, exc) from None
                logger.error("keymaster: no root secrets after %d attempts (%s); startup = lazy: "
                             "serving, answering 503 to container and object requests until they "
                             "load", km_settings.startup_retries + 1, exc.one_line())
                loader = _lazy[km_settings.cache_key()] = BackgroundLoader(km_settings, logger)
            except KeytoolsError as exc:
                raise _refuse(logger, exc) from None
        if loader is not None and loader.result is None:
            return LazyKeyMaster(app, conf, loader, logger)
    # The secrets are in this process's cache now: the keymaster itself makes no Barbican call.
    return BarbicanKeyMaster(app, conf)


def filter_factory(global_conf: dict[str, str], **local_conf: str) -> Any:
    """paste.deploy entry point (``egg:keytools#keymaster``)."""
    conf = global_conf.copy()
    conf.update(local_conf)

    def keymaster_filter(app: Any) -> BarbicanKeyMaster | LazyKeyMaster:
        return make_keymaster(app, conf)

    return keymaster_filter
