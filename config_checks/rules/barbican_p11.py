"""Barbican's PKCS#11 plugin (p11_crypto): the HSM PIN in barbican.conf, mechanisms Barbican or the
HSM refuses, and the project-KEK cache that lives as session objects in the HSM."""

from __future__ import annotations

import stat
from collections.abc import Iterator

from config_checks.inputs import AuditInput, ServiceConfig
from config_checks.model import Finding, Severity, rule
from config_checks.rules.common import is_true, multi_values

P11_SECTION = "p11_crypto_plugin"
# What barbican.plugin.crypto.pkcs11.PKCS11 accepts in Barbican 23.0.0 (_ENCRYPTION_MECHANISMS,
# _HMAC_MECHANISMS, _KEY_WRAP_MECHANISMS); it raises "Invalid ... mechanism" otherwise, and
# p11_crypto then stays unloaded.
ENCRYPTION = ("CKM_AES_CBC", "CKM_AES_GCM", "VENDOR_SAFENET_CKM_AES_GCM")
HMAC = ("CKM_SHA256_HMAC", "CKM_AES_MAC")
KEY_WRAP = ("CKM_AES_CBC_PAD", "CKM_AES_KEY_WRAP_PAD", "CKM_AES_KEY_WRAP_KWP")
# Barbican's defaults that SoftHSM 2.6 answers with an error (verified: docs/barbican-hsm.md).
SOFTHSM_REJECTS = {
    "key_wrap_mechanism": ("CKM_AES_CBC_PAD", "CKR_MECHANISM_INVALID", "CKM_AES_KEY_WRAP_PAD"),
    "key_wrap_generate_iv": ("True", "CKR_ARGUMENTS_BAD", "False"),
    "hmac_key_type": ("CKK_AES", "CKR_KEY_TYPE_INCONSISTENT", "CKK_GENERIC_SECRET"),
}
DEFAULTS = {"key_wrap_mechanism": "CKM_AES_CBC_PAD", "key_wrap_generate_iv": "True", "hmac_key_type": "CKK_AES",
            "encryption_mechanism": "CKM_AES_CBC", "hmac_mechanism": "CKM_SHA256_HMAC", "pkek_cache_limit": "100"}
CACHE_HIGH = 10000


def uses_p11(cfg: ServiceConfig) -> bool:
    """As Barbican decides: the stores' crypto plugins with multiple stores, else [crypto]."""
    if cfg.conf is None:
        return False
    if is_true(cfg.get("secretstore", "enable_multiple_secret_stores")):
        return any(opts.get("crypto_plugin") is not None and opts["crypto_plugin"].value.strip() == "p11_crypto"
                   for name, opts in cfg.conf.sections.items() if name.startswith("secretstore:"))
    return "p11_crypto" in multi_values([s.value for s in cfg.conf.get_all("crypto", "enabled_crypto_plugins")])


def _loc(cfg: ServiceConfig, option: str):  # noqa: ANN202 - a Location
    setting = cfg.conf.setting(P11_SECTION, option) if cfg.conf else None
    return cfg.loc(setting) if setting else cfg.loc(section=P11_SECTION, option=option)


def _value(cfg: ServiceConfig, option: str) -> str:
    found = cfg.get(P11_SECTION, option)
    return (found if found is not None else DEFAULTS.get(option, "")).strip()


@rule("KT404", "barbican-p11-pin-readable", Severity.CRITICAL,
      "The file holding Barbican's HSM PIN ([p11_crypto_plugin] login) is readable by other users",
      """chmod o-rwx the file (0640 root:barbican): the PIN lets anyone on the host use the HSM's keys
      through the token, i.e. unwrap every project KEK.""")
def pin_readable(audit: AuditInput) -> Iterator[Finding]:
    for cfg in audit.configs("barbican"):
        login = cfg.conf.setting(P11_SECTION, "login") if cfg.conf else None
        if login is None or not login.value:
            continue
        st = audit.stats.get(login.path)
        if st is not None and st.st_mode & stat.S_IROTH:
            mode = f"{stat.S_IMODE(st.st_mode):04o}"
            yield pin_readable.finding(cfg.loc(login), f"barbican: HSM PIN readable by everyone (mode {mode})",
                                       actual=mode, expected="0640 or stricter, no 'other' bits")


@rule("KT405", "barbican-p11-mechanism-rejected", Severity.HIGH,
      "A [p11_crypto_plugin] mechanism Barbican or the HSM refuses",
      """Barbican accepts only the mechanisms its pkcs11 module lists, and leaves p11_crypto unloaded
      otherwise. SoftHSM 2.6 refuses Barbican's defaults: set key_wrap_mechanism =
      CKM_AES_KEY_WRAP_PAD, key_wrap_generate_iv = False, hmac_key_type = CKK_GENERIC_SECRET and
      hmac_keygen_mechanism = CKM_GENERIC_SECRET_KEY_GEN there (SoftHSM's needs, not production advice).""")
def mechanism_rejected(audit: AuditInput) -> Iterator[Finding]:
    for cfg in audit.configs("barbican"):
        if not uses_p11(cfg):
            continue
        for option, allowed in (("encryption_mechanism", ENCRYPTION), ("hmac_mechanism", HMAC),
                                ("key_wrap_mechanism", KEY_WRAP)):
            value = _value(cfg, option)
            if value not in allowed:
                yield mechanism_rejected.finding(_loc(cfg, option),
                                                 f"barbican: {option} {value} is not one Barbican accepts",
                                                 actual=value, expected=" | ".join(allowed))
        if "softhsm" not in _value(cfg, "library_path").lower():
            continue
        for option, (bad, error, good) in SOFTHSM_REJECTS.items():
            value = _value(cfg, option)
            if value.lower() == bad.lower():
                yield mechanism_rejected.finding(_loc(cfg, option),
                                                 f"barbican: SoftHSM answers {option} = {value} with {error}",
                                                 actual=value, expected=good)


@rule("KT406", "barbican-p11-pkek-cache-limit", Severity.MEDIUM,
      "[p11_crypto_plugin] pkek_cache_limit below 1 or very large",
      """Below 1, Barbican's project-KEK cache evicts from an empty cache and every secret operation
      fails (KeyError); very large, every cached project KEK stays a session object in the HSM, whose
      object count is limited. Keep the default (100) or size it to the active projects.""")
def pkek_cache_limit(audit: AuditInput) -> Iterator[Finding]:
    for cfg in audit.configs("barbican"):
        if not uses_p11(cfg):
            continue
        value = _value(cfg, "pkek_cache_limit")
        try:
            limit = int(value)
        except ValueError:
            limit = -1
        if limit < 1 or limit > CACHE_HIGH:
            yield pkek_cache_limit.finding(_loc(cfg, "pkek_cache_limit"),
                                           f"barbican: pkek_cache_limit = {value}", actual=value,
                                           expected=f"1..{CACHE_HIGH} (default 100)")
