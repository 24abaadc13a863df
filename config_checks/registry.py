"""The one place every audit rule is registered. Ids are stable: never reuse or renumber one."""

from __future__ import annotations

from config_checks.model import Rule
from config_checks.rules import (barbican_client, barbican_kek, barbican_p11, glance, keymanager, parsing, permissions,
                                 swift)

RULES: tuple[Rule, ...] = (
    parsing.unreadable,
    parsing.syntax,
    keymanager.fixed_key_present,
    keymanager.backend_not_barbican,
    keymanager.fixed_key_mismatch,
    keymanager.removed_option,
    barbican_client.verify_ssl_off,
    barbican_client.endpoint_inconsistent,
    barbican_client.auth_endpoint_default,
    barbican_client.endpoint_plaintext,
    glance.verification_off,
    glance.rbd_cow,
    swift.encryption_missing,
    swift.pipeline_order,
    swift.encryption_disabled,
    swift.root_secret_inline,
    swift.root_secret_weak,
    barbican_kek.kek_missing,
    barbican_kek.kek_weak,
    barbican_kek.kek_readable,
    barbican_p11.pin_readable,
    barbican_p11.mechanism_rejected,
    barbican_p11.pkek_cache_limit,
    permissions.world_readable,
    permissions.group_readable,
)

BY_ID: dict[str, Rule] = {r.id: r for r in RULES}
if len(BY_ID) != len(RULES) or len({r.name for r in RULES}) != len(RULES):
    raise RuntimeError("config_checks.registry: duplicate rule id or name")


def select(ids: list[str] | None = None, skip: list[str] | None = None) -> tuple[Rule, ...]:
    """Rules by id or name (``--rule``/``--skip-rule``); unknown names raise KeyError with the name."""
    def resolve(key: str) -> Rule:
        for r in RULES:
            if key in (r.id, r.name):
                return r
        raise KeyError(key)

    chosen = tuple(resolve(k) for k in ids) if ids else RULES
    skipped = {resolve(k).id for k in skip or []}
    return tuple(r for r in chosen if r.id not in skipped)
