"""Barbican's simple_crypto plugin: the KEK in barbican.conf encrypts every secret in the database."""

from __future__ import annotations

import base64
import binascii
import stat
from collections.abc import Iterator

from config_checks import public_secrets, secrets
from config_checks.inputs import AuditInput, ServiceConfig
from config_checks.model import Finding, Severity, rule
from config_checks.rules.common import is_true, multi_values
from keytools.oslo_ini import Setting

KEK_SECTION = "simple_crypto_plugin"


def uses_simple_crypto(cfg: ServiceConfig) -> bool:
    """Barbican's defaults are store_crypto + simple_crypto; multiple stores name it per store."""
    if cfg.conf is None:
        return False
    stores = multi_values([s.value for s in cfg.conf.get_all("secretstore", "enabled_secretstore_plugins")]) \
        or ["store_crypto"]
    plugins = multi_values([s.value for s in cfg.conf.get_all("crypto", "enabled_crypto_plugins")]) \
        or ["simple_crypto"]
    if is_true(cfg.get("secretstore", "enable_multiple_secret_stores")):
        return any(opts.get("crypto_plugin") is not None and opts["crypto_plugin"].value.strip() == "simple_crypto"
                   for name, opts in cfg.conf.sections.items() if name.startswith("secretstore:"))
    return "store_crypto" in stores and "simple_crypto" in plugins


def keks(cfg: ServiceConfig) -> list[Setting]:
    return [s for s in cfg.conf.get_all(KEK_SECTION, "kek") if s.value] if cfg.conf else []


@rule("KT401", "barbican-kek-missing", Severity.CRITICAL,
      "Barbican uses simple_crypto but no KEK is configured",
      """Generate a KEK (python3 -c 'from cryptography.fernet import Fernet;
      print(Fernet.generate_key().decode())'), set [simple_crypto_plugin] kek in barbican.conf,
      chmod 0640/0600 the file, and back it up together with the database dump.""")
def kek_missing(audit: AuditInput) -> Iterator[Finding]:
    for cfg in audit.configs("barbican"):
        if uses_simple_crypto(cfg) and not keks(cfg):
            yield kek_missing.finding(cfg.loc(section=KEK_SECTION, option="kek"),
                                      "barbican: simple_crypto enabled without [simple_crypto_plugin] kek",
                                      actual="unset", expected="a Fernet key (urlsafe base64 of 32 bytes)")


def kek_problem(value: str) -> str | None:
    sample = public_secrets.find("barbican_kek", value)
    if sample is not None:
        return public_secrets.describe(sample)
    try:
        raw = base64.urlsafe_b64decode(value.strip().encode("ascii"))
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return "not urlsafe base64"
    if len(raw) != 32:
        return f"{len(raw)} bytes instead of 32"
    return None


@rule("KT402", "barbican-kek-weak", Severity.CRITICAL,
      "Barbican KEK is the public sample value or not a valid 32-byte key",
      """Add a new random KEK first in the kek list (Barbican tries each KEK in order) and keep the
      old one until every project KEK is re-wrapped; never keep the sample value in production.""")
def kek_weak(audit: AuditInput) -> Iterator[Finding]:
    for cfg in audit.configs("barbican"):
        if not uses_simple_crypto(cfg):
            continue
        for s in keks(cfg):
            problem = kek_problem(s.value)
            if problem:
                yield kek_weak.finding(cfg.loc(s), f"barbican: kek is {problem}",
                                       actual=f"{secrets.fingerprint(s.value)} ({problem})",
                                       expected="a random Fernet key")


@rule("KT403", "barbican-kek-readable", Severity.CRITICAL,
      "The file holding Barbican's KEK is world-readable",
      """chmod o-rwx the file (TripleO: 0640 root:barbican): with the KEK and a database dump
      anyone can decrypt every secret.""")
def kek_readable(audit: AuditInput) -> Iterator[Finding]:
    for cfg in audit.configs("barbican"):
        for s in keks(cfg):
            st = audit.stats.get(s.path)
            if st is not None and st.st_mode & stat.S_IROTH:
                mode = f"{stat.S_IMODE(st.st_mode):04o}"
                yield kek_readable.finding(cfg.loc(s), f"barbican: kek readable by everyone (mode {mode})",
                                           actual=mode, expected="0640 or stricter, no 'other' bits")
