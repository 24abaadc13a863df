"""Barbican's own code in this process: its config, crypto plugins and repositories, on one node's
barbican.conf, for moving secrets between crypto plugins.

Barbican parses ``barbican.common.config.CONF`` at import time from its default search path; its
repositories read the database URL from that object. ``load`` re-parses the same object from the
given file (and its barbican.conf.d), and gives the repositories an engine on that config's
database (Barbican keeps one per process), so a process can load several nodes one after another.

The PKCS#11 library object is made here rather than by the plugin, with the same arguments as
``P11CryptoPlugin._create_pkcs11``, so that a wrong PIN is recognised by its PKCS#11 return code
(never retried: real HSMs lock the token after a few failures) and the master keys are looked up
the way ``barbican-manage hsm check_mkek/check_hmac`` do before the plugin caches them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keytools.barbican.store_config import P11, SIMPLE
from keytools.errors import AuthenticationFailed, StateError, UsageError

_FFI: Any = None
PIN_ERRORS = {"CKR_PIN_INCORRECT", "CKR_PIN_INVALID", "CKR_PIN_LEN_RANGE", "CKR_PIN_EXPIRED", "CKR_PIN_LOCKED"}


class WrongPin(AuthenticationFailed):
    """The token refused the PIN (exit 5); nothing retries it."""


@dataclass
class Runtime:
    path: str
    conf: Any  # oslo_config.cfg.ConfigOpts (barbican.common.config.CONF)
    simple: Any | None = None  # SimpleCryptoPlugin
    p11: Any | None = None  # P11CryptoPlugin

    def plugin(self, name: str) -> Any:
        found = self.simple if name == SIMPLE else self.p11
        if found is None:
            raise StateError(f"{self.path}: the {name} plugin is not loaded", "Enable it in barbican.conf")
        return found

    def close(self) -> None:
        if self.p11 is not None:
            with contextlib.suppress(Exception):
                self.p11.pkcs11.finalize()
            self.p11 = None


def load(path: str | os.PathLike[str]) -> Runtime:
    """Barbican's CONF from ``path``; its repositories pointed at that config's database."""
    if not logging.getLogger("keytools").isEnabledFor(logging.DEBUG):
        for name in ("barbican", "alembic", "oslo_db"):  # their INFO lines (some at import) are not ours
            logging.getLogger(name).setLevel(logging.ERROR)
    from oslo_config import cfg

    process_conf = cfg.CONF
    try:
        from barbican.common import config
        from barbican.model import repositories
        from barbican.plugin.crypto import p11_crypto, simple_crypto
    finally:
        # Importing barbican.common.config makes Barbican's parsed CONF the process-wide cfg.CONF;
        # Barbican's modules keep their own handles, so give the process its own back (else
        # castellan, keystonemiddleware or Swift's kms_keymaster in this process cannot register
        # their options: "arguments already parsed").
        cfg.CONF = process_conf

    conf = config.CONF
    conf_d = Path(f"{path}.d")
    files = [str(path), *(str(p) for p in sorted(conf_d.glob("*.conf")))] if conf_d.is_dir() else [str(path)]
    for group, opts in (*simple_crypto.list_opts(), *p11_crypto.list_opts()):
        with contextlib.suppress(Exception):  # already registered by an earlier load
            conf.register_group(group)
        conf.register_opts(opts, group)
    conf(args=[], project="barbican", prog="keytools", default_config_files=files, default_config_dirs=[])
    conf.set_override("db_auto_create", False)  # never create or upgrade the schema from here
    # Barbican keeps one engine per process (repositories._ENGINE, made once by oslo.db's global
    # enginefacade from the first config seen): hand it this config's engine instead.
    from oslo_db.sqlalchemy import engines

    if repositories._ENGINE is not None:
        repositories._ENGINE.dispose()
    repositories._ENGINE = engines.create_engine(conf.database.connection)
    repositories.setup_database_engine_and_factory()
    return Runtime(str(path), conf)


def load_simple(rt: Runtime) -> None:
    from barbican.plugin.crypto import simple_crypto

    if not rt.conf.simple_crypto_plugin.kek:
        raise StateError(f"{rt.path}: [simple_crypto_plugin] kek is not set",
                         "The secrets still on simple_crypto need it: put the KEK back and rerun")
    rt.simple = simple_crypto.SimpleCryptoPlugin(rt.conf)


def _pkcs11_library(plugin_conf: Any) -> Any:
    """``pkcs11.PKCS11`` as P11CryptoPlugin makes it, whose login raises ``WrongPin`` on a PIN error."""
    from barbican.plugin.crypto import pkcs11

    class CheckedLogin(pkcs11.PKCS11):
        def _login(self, password: bytes, session: Any) -> None:
            rv = self.lib.C_Login(session, pkcs11.CKU_USER, password, len(password))
            code = pkcs11.ERROR_CODES.get(rv)
            if code in PIN_ERRORS:
                raise WrongPin(f"the HSM token refused the PIN in [p11_crypto_plugin] login ({code}); "
                               "not retried", "Fix the PIN in barbican.conf (a real HSM locks the token "
                               "after a few failed logins)")
            self._check_error(rv)

    global _FFI
    if _FFI is None:  # cffi parses Barbican's PKCS#11 declarations once per process
        _FFI = pkcs11.build_ffi()
    seed = None
    if plugin_conf.seed_file:
        with open(plugin_conf.seed_file, "rb") as handle:
            seed = handle.read(plugin_conf.seed_length)
    return CheckedLogin(
        library_path=plugin_conf.library_path, login_passphrase=plugin_conf.login,
        token_serial_number=plugin_conf.token_serial_number, token_labels=plugin_conf.token_labels,
        slot_id=plugin_conf.slot_id, rw_session=plugin_conf.rw_session, seed_random_buffer=seed,
        encryption_mechanism=plugin_conf.encryption_mechanism,
        encryption_gen_iv=plugin_conf.aes_gcm_generate_iv,
        always_set_cka_sensitive=plugin_conf.always_set_cka_sensitive,
        hmac_mechanism=plugin_conf.hmac_mechanism, key_wrap_mechanism=plugin_conf.key_wrap_mechanism,
        key_wrap_gen_iv=plugin_conf.key_wrap_generate_iv, os_locking_ok=plugin_conf.os_locking_ok, ffi=_FFI)


def _open_token(plugin_conf: Any, attempts: int = 8) -> Any:
    """The library, logged in once. Finding the token (before any login) is retried briefly: a
    SoftHSM token directory that another process is writing can be missing from the slot list for
    a moment ("Token Labels not found"). The login itself is never repeated."""
    from barbican.common import exception

    for attempt in range(attempts):
        try:
            return _pkcs11_library(plugin_conf)
        except (exception.P11CryptoTokenException, ValueError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


def load_p11(rt: Runtime) -> None:
    """Log in once, check the MKEK and HMAC key (as check_mkek/check_hmac), then the plugin."""
    from barbican.common import exception
    from barbican.plugin.crypto import p11_crypto

    plugin_conf = rt.conf.p11_crypto_plugin
    if not plugin_conf.library_path:
        raise StateError(f"{rt.path}: [p11_crypto_plugin] library_path is not set", "Configure the p11_crypto plugin")
    if not os.path.exists(plugin_conf.library_path):
        raise UsageError(f"{rt.path}: [p11_crypto_plugin] library_path {plugin_conf.library_path}: no such file",
                         "Install the HSM's PKCS#11 library or fix the path")
    if not plugin_conf.login:
        raise UsageError(f"{rt.path}: [p11_crypto_plugin] login (the PIN) is not set", "Set it in barbican.conf")
    try:
        library = _open_token(plugin_conf)
    except WrongPin:
        raise
    except (exception.PKCS11Exception, ValueError, OSError) as exc:
        raise StateError(f"{rt.path}: the PKCS#11 token cannot be used: {type(exc).__name__}: {exc}",
                         "Check library_path, token_labels/slot_id and the mechanisms in [p11_crypto_plugin]") from None
    session = library.get_session()
    try:
        missing = [f"{what} key {label!r}" for what, key_type, label in (
            ("MKEK", "CKK_AES", plugin_conf.mkek_label),
            ("HMAC", plugin_conf.hmac_key_type, plugin_conf.hmac_label))
            if not label or not library.get_key_handle(key_type, label, session)]
    finally:
        library.return_session(session)
    if missing:
        with contextlib.suppress(Exception):
            library.finalize()
        raise StateError(f"the HSM token has no {' and no '.join(missing)} (barbican-manage hsm check_mkek/check_hmac)",
                         "Generate them once: barbican-manage hsm gen_mkek and barbican-manage hsm gen_hmac")
    rt.p11 = p11_crypto.P11CryptoPlugin(rt.conf, pkcs11=library)


def fresh_p11(rt: Runtime) -> Runtime:
    """A second P11CryptoPlugin on the same logged-in token, with empty caches (no project KEK,
    no master key handle carried over) and no simple_crypto: for reading back what was written.
    The token is not finalised and opened again: one login per run."""
    from barbican.plugin.crypto import p11_crypto

    library = rt.plugin(P11).pkcs11
    return Runtime(rt.path, rt.conf, simple=None, p11=p11_crypto.P11CryptoPlugin(rt.conf, pkcs11=library))


PLUGIN_LOADERS = {SIMPLE: load_simple, P11: load_p11}
