"""Config files holding secrets (fixed_key, passwords, root secrets, URLs with passwords) must not be
readable by everyone."""

from __future__ import annotations

import stat
from collections.abc import Iterator

from config_checks.inputs import AuditInput, ServiceConfig
from config_checks.model import Finding, Rule, Severity, rule


def secret_options(cfg: ServiceConfig) -> dict[str, list[str]]:
    """file -> ['[section] option', ...] for every secret-bearing option (the KEK has its own rule)."""
    out: dict[str, list[str]] = {}
    for path, names in cfg.secret_options.items():
        rest = [n for n in names if n != "[simple_crypto_plugin] kek"]
        if rest:
            out[path] = rest
    return out


def _check(audit: AuditInput, bit: int, who: str, rule_obj: Rule) -> Iterator[Finding]:
    for cfg in audit.configs():
        for path, names in secret_options(cfg).items():
            st = audit.stats.get(path)
            if st is None or not st.st_mode & bit:
                continue
            mode = f"{stat.S_IMODE(st.st_mode):04o}"
            shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            yield rule_obj.finding(cfg.loc(path=path), f"{cfg.service}: readable by {who} (mode {mode}) and holds "
                                   f"{shown}", actual=mode, expected="0640 or stricter" if who == "everyone"
                                   else "0600 (owner only)")


@rule("KT501", "secrets-world-readable", Severity.HIGH,
      "Config file holding secrets is readable by everyone",
      """chmod o-rwx the file (TripleO keeps service configs 0640 root:<service>); rotate any
      password that may have been read.""")
def world_readable(audit: AuditInput) -> Iterator[Finding]:
    yield from _check(audit, stat.S_IROTH, "everyone", world_readable)


@rule("KT502", "secrets-group-readable", Severity.INFO,
      "Config file holding secrets is readable by its group",
      """Usually intended (0640 root:<service> lets the service read its file); make sure the group
      is the service's own and holds no other users.""")
def group_readable(audit: AuditInput) -> Iterator[Finding]:
    yield from _check(audit, stat.S_IRGRP, "its group", group_readable)
