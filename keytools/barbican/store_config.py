"""Which secret stores a node's barbican.conf configures, read as Barbican reads it.

Barbican's multiple-store mode (``[secretstore] enable_multiple_secret_stores``) names its stores
in ``stores_lookup_suffix``; each ``[secretstore:NAME]`` pairs a store plugin with a crypto plugin,
and one store is the ``global_default`` new secrets land in. Without multiple stores, the crypto
plugins of ``[crypto] enabled_crypto_plugins`` serve and the first one stores. A secret's plugin
at read time is decided only by its ``kek_data.plugin_name``, so every node must keep the plugins
of every secret it may serve enabled.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

from keytools import oslo_ini, redaction

SIMPLE, P11 = "simple_crypto", "p11_crypto"
# kek_data.plugin_name of each crypto plugin (utils.generate_fullname_for(plugin) in Barbican)
PLUGIN_CLASSES = {SIMPLE: "barbican.plugin.crypto.simple_crypto.SimpleCryptoPlugin",
                  P11: "barbican.plugin.crypto.p11_crypto.P11CryptoPlugin"}
CLASS_NAMES = {v: k for k, v in PLUGIN_CLASSES.items()}


def _names(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


@dataclass
class Store:
    name: str
    store_plugin: str | None
    crypto_plugin: str | None
    global_default: bool


@dataclass
class StoreConfig:
    """One node's store settings (never the PIN or the KEK: only whether they are set)."""

    config: str
    multiple_stores: bool
    crypto_plugins: list[str]  # the stores' crypto plugins, or [crypto] enabled_crypto_plugins without stores
    stores: list[Store] = field(default_factory=list)
    simple_kek_set: bool = False
    p11_login_set: bool = False
    p11: dict[str, str] = field(default_factory=dict)  # [p11_crypto_plugin] without login

    @property
    def default_store(self) -> Store | None:
        return next((s for s in self.stores if s.global_default), None)

    @property
    def default_crypto(self) -> str | None:
        """The crypto plugin new secrets are encrypted with."""
        if self.multiple_stores:
            store = self.default_store
            return store.crypto_plugin if store else None
        return self.crypto_plugins[0] if self.crypto_plugins else None

    def serves(self, plugin: str) -> bool:
        """Can this node read a secret whose KEK belongs to ``plugin`` (and is the plugin usable)?"""
        if plugin not in self.crypto_plugins:
            return False
        return self.simple_kek_set if plugin == SIMPLE else self.p11_login_set and bool(self.p11.get("library_path"))

    def store_for(self, plugin: str) -> Store | None:
        return next((s for s in self.stores if s.crypto_plugin == plugin), None)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["default_crypto"] = self.default_crypto
        out["serves"] = {p: self.serves(p) for p in (SIMPLE, P11)}
        return out


def _bool(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def load(path: str | os.PathLike[str]) -> StoreConfig:
    """Parse one node's barbican.conf (and barbican.conf.d); secrets in it are registered for redaction."""
    conf = oslo_ini.parse_with_conf_d(path)
    multiple = _bool(conf.get("secretstore", "enable_multiple_secret_stores"))
    stores = []
    if multiple:  # the stores name the crypto plugins; [crypto] enabled_crypto_plugins is not read
        for suffix in _names(conf.get("secretstore", "stores_lookup_suffix")):
            section = f"secretstore:{suffix}"
            stores.append(Store(suffix, conf.get(section, "secret_store_plugin"), conf.get(section, "crypto_plugin"),
                                _bool(conf.get(section, "global_default"))))
        crypto = [s.crypto_plugin for s in stores if s.crypto_plugin]
    else:  # a MultiStrOpt: one plugin per line ("a, b" on one line is one unknown name to Barbican)
        crypto = [s.value.strip() for s in conf.get_all("crypto", "enabled_crypto_plugins")] or [SIMPLE]
    keks = [s.value.strip() for s in conf.get_all("simple_crypto_plugin", "kek") if s.value.strip()]
    login = conf.get("p11_crypto_plugin", "login")
    for secret in [*keks, login]:
        if secret:
            redaction.register_secret(secret)
    p11 = {k: s.value for k, s in conf.sections.get("p11_crypto_plugin", {}).items() if k != "login"}
    return StoreConfig(str(path), multiple, crypto, stores, bool(keks), bool(login), p11)


HSM_NOTE = ("the PKCS#11 master KEK and HMAC key live in the HSM and are not in this archive: restoring "
            "secrets stored by p11_crypto needs the same HSM token (or the vendor's backup of its keys)")


def hsm_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What a backup's public manifest says about PKCS#11 (labels only, never the PIN), or {}."""
    node = load(path)
    if P11 not in node.crypto_plugins:
        return {}
    return {"pkcs11": {"mkek_label": node.p11.get("mkek_label"), "hmac_label": node.p11.get("hmac_label"),
                       "token_labels": node.p11.get("token_labels"), "keys_in_archive": False, "note": HSM_NOTE}}


def p11_section(path: str | os.PathLike[str]) -> dict[str, str] | None:
    """The [p11_crypto_plugin] settings (PIN included, registered for redaction) of a config that
    enables p11_crypto, for a scratch Barbican that must read secrets through the same HSM; else None."""
    node = load(path)
    if P11 not in node.crypto_plugins:
        return None
    conf = oslo_ini.parse_with_conf_d(path)
    return {k: s.value for k, s in conf.sections.get("p11_crypto_plugin", {}).items()}
