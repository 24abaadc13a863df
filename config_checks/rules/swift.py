"""Swift at-rest encryption: the proxy pipeline, disable_encryption and the keymaster root secret."""

from __future__ import annotations

import base64
import binascii
import string
from collections.abc import Iterator

from config_checks import public_secrets, secrets
from config_checks.inputs import AuditInput, ServiceConfig
from config_checks.model import Finding, Severity, rule
from config_checks.rules.common import is_true
from keytools.oslo_ini import Setting

EXPECTED_TAIL = "<keymaster> encryption proxy-logging proxy-server"
_B64 = set(string.ascii_letters + string.digits + "+/=\r\n")


def pipeline(cfg: ServiceConfig) -> tuple[Setting | None, list[str]]:
    s = cfg.setting("pipeline:main", "pipeline")
    return s, (s.value.split() if s else [])


def filter_kind(cfg: ServiceConfig, name: str) -> str:
    """What a pipeline element is, from its section's ``use = egg:swift#...``."""
    use = (cfg.get(f"filter:{name}", "use") or cfg.get(f"app:{name}", "use") or "").strip().lower()
    entry = use.rsplit("#", 1)[-1] if "#" in use else name.lower()
    if entry.endswith("keymaster"):
        return "keymaster"
    if entry == "encryption":
        return "encryption"
    if entry in ("proxy_logging", "proxy-logging"):
        return "proxy_logging"
    return entry


@rule("KT301", "swift-encryption-missing", Severity.MEDIUM,
      "Swift proxy pipeline has no at-rest encryption (keymaster + encryption)",
      f"""Enable encryption (TripleO: SwiftEncryptionEnabled: true) so the pipeline ends with
      '{EXPECTED_TAIL}' and the root secret comes from Barbican (kms_keymaster). Once data is
      written encrypted, encryption cannot be turned off again.""")
def encryption_missing(audit: AuditInput) -> Iterator[Finding]:
    for cfg in audit.configs("swift_proxy"):
        s, names = pipeline(cfg)
        if s is None:
            if cfg.conf is not None:
                yield encryption_missing.finding(cfg.loc(section="pipeline:main", option="pipeline"),
                                                 "swift proxy: no [pipeline:main] pipeline",
                                                 actual="unset", expected=EXPECTED_TAIL)
            continue
        kinds = [filter_kind(cfg, n) for n in names]
        has_km, has_enc = "keymaster" in kinds, "encryption" in kinds
        if has_enc and not has_km:
            yield encryption_missing.finding(cfg.loc(s), "swift proxy: encryption without a keymaster "
                                             "(the proxy will not start)", actual=secrets.show(s),
                                             expected=EXPECTED_TAIL, severity=Severity.HIGH)
        elif not has_enc:
            yield encryption_missing.finding(cfg.loc(s), "swift proxy: pipeline has no encryption middleware",
                                             actual=secrets.show(s), expected=f"... {EXPECTED_TAIL}")


@rule("KT302", "swift-pipeline-order", Severity.HIGH,
      "Swift keymaster/encryption are in the wrong place in the pipeline",
      f"""Order the end of [pipeline:main] pipeline as '{EXPECTED_TAIL}': the keymaster right
      before encryption, both right before the final proxy-logging and proxy-server; anything
      between them sees (or stores) plaintext.""")
def pipeline_order(audit: AuditInput) -> Iterator[Finding]:
    for cfg in audit.configs("swift_proxy"):
        s, names = pipeline(cfg)
        kinds = [filter_kind(cfg, n) for n in names]
        if s is None or "keymaster" not in kinds or "encryption" not in kinds:
            continue
        km, enc = kinds.index("keymaster"), kinds.index("encryption")
        ok = km + 1 == enc and enc == len(kinds) - 3 and kinds[-2] == "proxy_logging"
        if not ok:
            yield pipeline_order.finding(cfg.loc(s), "swift proxy: keymaster/encryption misplaced in the pipeline",
                                         actual=" ".join(names[max(0, min(km, enc) - 1):]),
                                         expected=f"... {EXPECTED_TAIL}")


@rule("KT303", "swift-encryption-disabled", Severity.HIGH,
      "Swift encryption middleware has disable_encryption = true",
      """Remove disable_encryption (or set it false): new objects are stored in plaintext while it
      is on, and existing encrypted objects still need the same root secret to be read.""")
def encryption_disabled(audit: AuditInput) -> Iterator[Finding]:
    for cfg in audit.configs("swift_proxy"):
        _, names = pipeline(cfg)
        for name in names:
            if filter_kind(cfg, name) != "encryption":
                continue
            s = cfg.setting(f"filter:{name}", "disable_encryption")
            if s is not None and is_true(s.value):
                yield encryption_disabled.finding(cfg.loc(s), "swift proxy: encryption disabled for new data",
                                                  actual=secrets.show(s), expected="false")


def _root_secrets(cfg: ServiceConfig) -> Iterator[Setting]:
    if cfg.conf is None:
        return
    for section, options in cfg.conf.sections.items():
        if cfg.service == "swift_proxy" and not section.startswith("filter:"):
            continue
        for option, s in options.items():
            if option.startswith("encryption_root_secret"):
                yield s


@rule("KT304", "swift-root-secret-inline", Severity.MEDIUM,
      "Swift encryption root secret is written in proxy-server.conf",
      """Keep the root secret out of proxy-server.conf: store it in Barbican and use kms_keymaster
      (TripleO default), or at least move it to a 0600 file named by keymaster_config_path.""")
def root_secret_inline(audit: AuditInput) -> Iterator[Finding]:
    for cfg in audit.configs("swift_proxy"):
        for s in _root_secrets(cfg):
            yield root_secret_inline.finding(cfg.loc(s), f"swift proxy: [{s.section}] {s.option} is inline",
                                             actual=secrets.fingerprint(s.value),
                                             expected="kms_keymaster (Barbican) or keymaster_config_path")


def root_secret_problem(value: str) -> str | None:
    """A published sample value, or Swift's own test (strict base64, at least 32 decoded bytes)
    without importing Swift."""
    sample = public_secrets.find("swift_root_secret", value)
    if sample is not None:
        return public_secrets.describe(sample)
    if not value or any(c not in _B64 for c in value.strip()):
        return "not base64"
    try:
        raw = base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        return "not base64"
    if len(raw) < 32:
        return f"only {len(raw)} bytes"
    return None


@rule("KT305", "swift-root-secret-weak", Severity.HIGH,
      "Swift encryption root secret is a public sample or not base64 of at least 32 bytes",
      """Generate a new root secret with 'openssl rand -base64 32' (or an AES-256 key in Barbican).
      Swift refuses a shorter secret at start-up; do not replace a secret that already encrypted
      data: add it under a new id (encryption_root_secret_<id>) and set active_root_secret_id.""")
def root_secret_weak(audit: AuditInput) -> Iterator[Finding]:
    for cfg in audit.configs("swift_proxy", "swift_keymaster"):
        for s in _root_secrets(cfg):
            problem = root_secret_problem(s.value)
            if problem:
                yield root_secret_weak.finding(cfg.loc(s), f"swift: [{s.section}] {s.option} is {problem}",
                                               actual=f"{secrets.fingerprint(s.value)} ({problem})",
                                               expected="base64 of >= 32 random bytes")
