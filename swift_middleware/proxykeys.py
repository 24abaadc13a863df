"""Which root secrets a proxy's keymaster has, read the way that keymaster reads them.

The rotation commands (key-usage, reencrypt, retire-key) work with three keymasters:

- keytools' keymaster and Swift's ``kms_keymaster``: ``key_id`` / ``key_id_<id>`` (Barbican secret
  UUIDs) and ``active_root_secret_id`` in the filter section or in ``keymaster_config_path``
  (section ``[kms_keymaster]``); the secrets come from Barbican with the keymaster's credentials
  (Swift's ``kms_keymaster`` through castellan, as upstream loads them: Swift's own class).
- Swift's ``keymaster``: ``encryption_root_secret`` / ``encryption_root_secret_<id>`` (base64,
  inline) and ``active_root_secret_id`` in the filter section or in ``keymaster_config_path``
  (section ``[keymaster]``), read by Swift's own ``KeyMaster``. Inline values are secrets: they are
  never shown, only their option names and fingerprints.

Swift's classes are the oracle: their config-file rules (``_load_keymaster_config_file``: the
section, the options that must not also sit in the filter) and their ``_get_root_secret``.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from keytools import redaction
from keytools.errors import ConfigError, KeytoolsError
from swift_middleware import rootsecrets, settings

KEYTOOLS = "keytools"
KMS = "kms_keymaster"
INLINE = "keymaster"
# Entry points (``use =`` or ``paste.filter_factory =``) -> kind.
KINDS = {
    "egg:keytools#keymaster": KEYTOOLS,
    "swift_middleware.keymaster:filter_factory": KEYTOOLS,
    "egg:swift#kms_keymaster": KMS,
    "swift.common.middleware.crypto.kms_keymaster:filter_factory": KMS,
    "egg:swift#keymaster": INLINE,
    "swift.common.middleware.crypto.keymaster:filter_factory": INLINE,
}
# The option family holding the root secrets, per kind.
KEY_OPTION = {KEYTOOLS: "key_id", KMS: "key_id", INLINE: "encryption_root_secret"}


@dataclass(frozen=True)
class RootKey:
    """One configured root secret: Swift's secret id (None: the unsuffixed option), the option,
    and the Barbican secret UUID (None for an inline secret, whose value is never kept here)."""

    secret_id: str | None
    option: str
    key_id: str | None


@dataclass(frozen=True)
class ProxyKeys:
    """The root secrets one keymaster filter is configured with, and where they are configured."""

    kind: str
    where: str  # for messages: file and section
    file: str  # the file holding the key options (keymaster_config_path or proxy-server.conf)
    section: str  # their section in that file
    keys: tuple[RootKey, ...]
    active_secret_id: str | None
    conf: dict[str, str] = field(repr=False)  # the filter's conf, as paste hands it to the factory
    barbican: settings.KeymasterSettings | None = field(default=None, repr=False)

    @property
    def option_prefix(self) -> str:
        return KEY_OPTION[self.kind]

    @property
    def inline(self) -> bool:
        return self.kind == INLINE

    def key(self, secret_id: str | None) -> RootKey:
        return next(k for k in self.keys if k.secret_id == secret_id)

    def load(self) -> dict[str | None, bytes]:
        """The root secrets, loaded as this keymaster loads them (once per process for ours).

        A failure keeps its exit code: 4 unreachable, 5 credentials refused, 2 unusable key."""
        if self.kind == KEYTOOLS:
            assert self.barbican is not None
            return dict(rootsecrets.load(self.barbican).secrets)
        from swift.common.middleware.crypto.keymaster import KeyMaster
        from swift.common.middleware.crypto.kms_keymaster import KmsKeyMaster

        cls = KmsKeyMaster if self.kind == KMS else KeyMaster
        return _swift_keymaster(cls, self.conf, self.where, self.barbican)._root_secrets


def _swift_keymaster(cls: type, conf: dict[str, str], where: str,
                     barbican: settings.KeymasterSettings | None = None) -> Any:
    """An instance of Swift's own keymaster class (it loads its root secrets in __init__)."""
    try:
        keymaster = cls(None, dict(conf))
    except KeytoolsError:
        raise
    except ValueError as exc:  # Swift's own refusals name the option, never the value
        raise ConfigError(f"{where}: {' '.join(str(exc).split())}",
                          "Fix the keymaster configuration (Swift refuses it as well)") from None
    except Exception as exc:  # castellan / keystoneauth, classified by type and status
        if barbican is None:
            raise
        raise rootsecrets.classify(exc, None, barbican) from None
    for secret in keymaster._root_secrets.values():
        redaction.register_secret(secret)
        redaction.register_secret(base64.b64encode(secret).decode())
    return keymaster


def _location(conf: dict[str, str], name: str, section: str) -> tuple[str, str]:
    path = conf.get("keymaster_config_path")
    if path:
        return str(path), section
    return str(conf.get("__file__", "proxy-server.conf")), f"filter:{name}"


def _inline_conf(conf: dict[str, str], where: str) -> dict[str, str]:
    """The options Swift's KeyMaster reads: its own config-file rule (clashing options refused)."""
    from swift.common.middleware.crypto.keymaster import KeyMaster

    reader = KeyMaster.__new__(KeyMaster)
    reader.keymaster_config_path = conf.get("keymaster_config_path")
    try:
        return dict(reader._load_keymaster_config_file(conf))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{where}: {' '.join(str(exc).split())}",
                          "Fix the keymaster configuration (Swift refuses it as well)") from None


def read(conf: dict[str, str], name: str, kind: str) -> ProxyKeys:
    """The keys of keymaster filter ``name`` (of ``kind``), validated; nothing is fetched from
    Barbican (Swift's ``keymaster`` decodes its inline secrets: that is its validation)."""
    if kind in (KEYTOOLS, KMS):
        km = settings.parse(conf)
        file, section = _location(conf, name, settings.CONF_SECTION)
        keys = tuple(RootKey(k.secret_id, k.option, k.key_id) for k in km.keys)
        return ProxyKeys(kind, km.where, file, section, keys, km.active_secret_id, dict(conf), km)
    from swift.common.middleware.crypto.keymaster import KeyMaster
    from swift.common.utils import load_multikey_opts

    file, section = _location(conf, name, KeyMaster.keymaster_conf_section)
    where = f"{file} [{section}]"
    keymaster = _swift_keymaster(KeyMaster, conf, where)  # Swift validates; no network
    try:
        found = load_multikey_opts(_inline_conf(conf, where), KEY_OPTION[INLINE], allow_none_key=True)
    except ValueError as exc:  # pragma: no cover - KeyMaster refused it already
        raise ConfigError(f"{where}: {exc}", "Fix the keymaster configuration") from None
    keys = tuple(RootKey(sid, opt, None) for opt, sid, _value in found)
    active = keymaster.active_secret_id
    return ProxyKeys(INLINE, where, file, section, keys, active, dict(conf))


def describe(key: RootKey) -> str:
    """How a key is named in messages: the option and its Barbican id, never an inline value."""
    return f"{key.option} = {key.key_id}" if key.key_id else key.option

