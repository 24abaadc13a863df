"""ConfKeyManager leftovers: fixed_key, a non-Barbican backend, diverging keys, removed options."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from config_checks import secrets
from config_checks.inputs import KEY_MANAGER_CONSUMERS, NOVA_SERVICES, AuditInput, ServiceConfig
from config_checks.model import Finding, Severity, rule
from config_checks.rules.common import is_barbican
from keytools.oslo_ini import Setting

FIXED_KEY_SECTIONS = ("key_manager", "keymgr")
BARBICAN_CLASS = "castellan.key_manager.barbican_key_manager.BarbicanKeyManager"


def fixed_key_settings(cfg: ServiceConfig) -> list[Setting]:
    """Every fixed_key in [key_manager] and the deprecated [keymgr] of one service config."""
    return [s for s in (cfg.setting(sec, "fixed_key") for sec in FIXED_KEY_SECTIONS) if s is not None]


def effective_fixed_key(cfg: ServiceConfig) -> Setting | None:
    """What the service uses: [key_manager] wins over the deprecated [keymgr] group."""
    found = fixed_key_settings(cfg)
    return found[0] if found else None


@rule("KT101", "fixed-key-present", Severity.HIGH,
      "fixed_key (ConfKeyManager's single shared key) is set",
      """After migrating every all-zeros key to Barbican (no volume, snapshot or backup left on
      00000000-0000-0000-0000-000000000000), back the value up and remove it on every node:
      keytools fixed-key retire ROOT --backup-dir DIR --db-url CINDER_DB.""")
def fixed_key_present(audit: AuditInput) -> Iterator[Finding]:
    for cfg in audit.configs():
        for s in fixed_key_settings(cfg):
            if not s.value:
                continue
            yield fixed_key_present.finding(
                cfg.loc(s), f"{cfg.service}: fixed_key is set in [{s.section}]",
                actual=secrets.fingerprint(s.value, as_hex_key=True), expected="unset (keys live in Barbican)")


def _backend(cfg: ServiceConfig) -> Setting | None:
    return cfg.setting("key_manager", "backend") or cfg.setting("key_manager", "api_class")


@rule("KT102", "key-manager-not-barbican", Severity.HIGH,
      "Key manager backend is not Barbican",
      f"""Set [key_manager] backend = barbican (or {BARBICAN_CLASS}) after deploying Barbican, then
      migrate the ConfKeyManager keys (keytools migrate).""")
def backend_not_barbican(audit: AuditInput) -> Iterator[Finding]:
    for cfg in audit.configs(*KEY_MANAGER_CONSUMERS):
        s = _backend(cfg)
        if s is not None and not is_barbican(s.value):
            yield backend_not_barbican.finding(
                cfg.loc(s), f"{cfg.service}: [key_manager] {s.option} = {secrets.show(s)}",
                actual=secrets.show(s), expected=f"barbican or {BARBICAN_CLASS}")


@rule("KT103", "fixed-key-mismatch", Severity.CRITICAL,
      "fixed_key differs between services or nodes",
      """Volumes encrypted by one service cannot be opened by another: find the value that was used
      when the volumes were created (keep a copy of every value), make cinder and nova agree, then
      migrate. Values are compared by hash and never printed.""")
def fixed_key_mismatch(audit: AuditInput) -> Iterator[Finding]:
    seen: list[tuple[ServiceConfig, Setting, str]] = []
    for cfg in audit.configs("cinder", *NOVA_SERVICES):
        s = effective_fixed_key(cfg)
        if s is not None and s.value:
            seen.append((cfg, s, secrets.digest(s.value, as_hex_key=True)))
    counts = Counter(d for _, _, d in seen)
    if len(counts) < 2:
        return
    reference = counts.most_common(1)[0][0]
    ref_places = [f"{c.service}@{c.node}" for c, _, d in seen if d == reference]
    for cfg, s, d in seen:
        if d == reference:
            continue
        same_node = any(c.node == cfg.node and dd != d for c, _, dd in seen)
        scope = "on the same node and across nodes" if same_node else "across nodes"
        yield fixed_key_mismatch.finding(
            cfg.loc(s), f"{cfg.service}: fixed_key differs from {', '.join(ref_places[:4])}"
            f"{' ...' if len(ref_places) > 4 else ''} ({scope}; {len(counts)} distinct values)",
            actual=d, expected=f"{reference} (as in {len(ref_places)} file(s))")


REMOVED = {("keymgr", "api_class"): "[key_manager] backend", ("keymgr", "encryption_api_url"): "[barbican] barbican_endpoint",
           ("keymgr", "encryption_auth_url"): "[barbican] auth_endpoint"}


@rule("KT104", "removed-option", Severity.MEDIUM,
      "Removed key-manager option is still set (the service ignores it)",
      """Delete the option and set its replacement: [keymgr] api_class -> [key_manager] backend,
      encryption_api_url -> [barbican] barbican_endpoint, encryption_auth_url -> [barbican]
      auth_endpoint.""")
def removed_option(audit: AuditInput) -> Iterator[Finding]:
    for cfg in audit.configs(*KEY_MANAGER_CONSUMERS):
        for (section, option), replacement in REMOVED.items():
            s = cfg.setting(section, option)
            if s is not None:
                yield removed_option.finding(cfg.loc(s), f"{cfg.service}: [{section}] {option} was removed; "
                                             f"use {replacement}", actual=f"[{section}] {option} = {secrets.show(s)}",
                                             expected=f"unset; {replacement} instead")
        s = cfg.setting("key_manager", "api_class")
        if s is not None:
            yield removed_option.finding(cfg.loc(s), f"{cfg.service}: [key_manager] api_class is deprecated",
                                         actual=f"api_class = {secrets.show(s)}", expected="[key_manager] backend",
                                         severity=Severity.LOW)
