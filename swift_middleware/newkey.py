"""``keytools swift new-key``: a new root secret in Barbican and the config lines to roll it out.

Rotation is two-stage because every proxy must be able to read with the new key before any proxy
writes with it: (1) add ``key_id_<n>`` on every proxy and restart them; (2) set
``active_root_secret_id = <n>`` on every proxy and restart them. Old objects keep naming the secret
id they were written with, so old ``key_id*`` lines must stay.

``--migrate-from-inline`` turns the plain ``keymaster``'s ``encryption_root_secret[_<id>]`` values
into Barbican secrets holding the same bytes (same secret ids), so existing data stays readable after
switching ``use =`` to ``egg:keytools#keymaster``. It finds an earlier run's secret by name and
fingerprint, so a rerun converges instead of storing duplicates.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from keytools import redaction, secret_store
from keytools.errors import ConfigError, ServiceUnavailable, UsageError
from keytools.service_errors import translated
from swift_middleware import check, rootsecrets, settings, swiftconf

ORDER_TIMEOUT = 60.0


@dataclass
class NewKey:
    option: str
    secret_id: str | None
    key_id: str
    secret_ref: str
    bit_length: int
    fingerprint: str
    reused: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"option": self.option, "secret_id": self.secret_id, "key_id": self.key_id,
                "secret_ref": self.secret_ref, "bit_length": self.bit_length,
                "fingerprint": self.fingerprint, "reused": self.reused}


def existing_secret_ids(proxy_conf: str) -> tuple[list[str | None], str | None]:
    """The secret ids a proxy's keytools/kms keymaster already has, and its active one."""
    sections = check.read_proxy_conf(proxy_conf)
    for name in check.pipeline_of(proxy_conf, sections):
        conf = check.filter_conf(proxy_conf, sections, name)
        if check.entry_point(conf) in (*check.OURS, "egg:swift#kms_keymaster"):
            values, where = settings.effective_conf(conf)
            ids = [secret_id for _, secret_id, _ in settings.key_options(values, where)]
            return ids, values.get("active_root_secret_id") or None
    raise ConfigError(f"{proxy_conf}: no keytools or kms keymaster in the pipeline",
                      "Point --proxy-conf at a proxy using use = egg:keytools#keymaster")


def next_secret_id(existing: list[str | None]) -> str:
    numbers = [int(i) for i in existing if i and i.isdigit()]
    return str(max(numbers, default=1) + 1)


def _grant(client: Any, session: Any, ref: str, users: list[str]) -> None:
    if not users:
        return
    from keystoneclient.v3 import client as ks_client

    keystone = ks_client.Client(session=session, interface="public")
    ids = []
    for user in users:
        found = [u for u in keystone.users.list(name=user) if u.name == user]
        ids.append(found[0].id if found else user)
    acl = client.acls.create(entity_ref=ref, users=ids, project_access=True)
    acl.submit()


def order_key(session: Any, name: str, option: str, secret_id: str, acl_users: list[str]) -> NewKey:
    """The documented ``openstack secret order create --type key --algorithm aes --bit-length 256
    --mode ctr``; waits for the order and returns the new secret."""
    from keytools.keymanager import barbican_client

    with translated("Barbican", "ordering the key"):
        client = barbican_client(session)
        order_ref = client.orders.create_key(name=name, algorithm="aes", bit_length=256,
                                             mode="ctr").submit()
        deadline = time.monotonic() + ORDER_TIMEOUT
        while True:
            order = client.orders.get(order_ref)
            if order.status == "ACTIVE":
                break
            if order.status == "ERROR":
                raise ServiceUnavailable(f"Barbican order {order_ref} failed: "
                                         f"{order.error_status_code} {order.error_reason}")
            if time.monotonic() > deadline:
                raise ServiceUnavailable(f"Barbican order {order_ref} still {order.status} after "
                                         f"{ORDER_TIMEOUT:.0f} s", "Check Barbican's worker")
            time.sleep(0.2)
        ref = order.secret_ref
        payload = client.secrets.get(ref).payload
        redaction.register_secret(payload)
        _grant(client, session, ref, acl_users)
    return NewKey(option, secret_id, secret_store.secret_id(ref), ref, len(payload) * 8, rootsecrets.fingerprint(payload))


def inline_secrets(proxy_conf: str) -> tuple[dict[str | None, bytes], str | None, str]:
    """The plain keymaster's root secrets (decoded, validated as Swift does), its active id and
    the filter name."""
    from swift.common.utils import load_multikey_opts, strict_b64decode

    sections = check.read_proxy_conf(proxy_conf)
    for name in check.pipeline_of(proxy_conf, sections):
        conf = check.filter_conf(proxy_conf, sections, name)
        if check.entry_point(conf) != "egg:swift#keymaster":
            continue
        where = f"{proxy_conf} [filter:{name}]"
        if conf.get("keymaster_config_path"):
            where = f"{conf['keymaster_config_path']} [keymaster]"
            conf = swiftconf.read(conf["keymaster_config_path"], "keymaster", what="keymaster_config_path")
        found: dict[str | None, bytes] = {}
        try:
            options = load_multikey_opts(conf, "encryption_root_secret", allow_none_key=True)
        except ValueError as exc:  # Swift's own message: its keymaster refuses to start on it too
            raise ConfigError(f"{where}: {exc}", "Name it encryption_root_secret or "
                              "encryption_root_secret_<secret id>") from None
        for option, secret_id, value in options:
            redaction.register_secret(value)
            try:
                raw = strict_b64decode(value, allow_line_breaks=True)
            except ValueError:
                raw = b""
            if len(raw) < 32:
                raise ConfigError(f"{where}: {option} is not a base64 encoding of at least 32 bytes",
                                  "Swift itself refuses this value; fix it before migrating")
            redaction.register_secret(raw)
            found[secret_id] = raw
        if not found:
            raise ConfigError(f"{where}: no encryption_root_secret is set", "Nothing to migrate")
        return found, conf.get("active_root_secret_id") or None, name
    raise ConfigError(f"{proxy_conf}: no filter with use = egg:swift#keymaster in the pipeline",
                      "--migrate-from-inline moves the plain keymaster's inline secret to Barbican")


def store_inline(session: Any, secrets_by_id: dict[str | None, bytes], name: str,
                 acl_users: list[str]) -> list[NewKey]:
    """Store each inline secret with the same bytes (reusing an earlier run's secret by name and
    fingerprint)."""
    from keytools.keymanager import barbican_client

    result = []
    with translated("Barbican", "storing the root secret"):
        client = barbican_client(session)
        for secret_id, raw in sorted(secrets_by_id.items(), key=lambda kv: kv[0] or ""):
            secret_name = f"{name}-{secret_id}" if secret_id else name
            option = f"key_id_{secret_id}" if secret_id else "key_id"
            wanted = rootsecrets.fingerprint(raw)
            stored = secret_store.store_once(
                client, secret_name, "symmetric", lambda payload, wanted=wanted: rootsecrets.fingerprint(payload) == wanted,
                payload=raw, algorithm="aes", bit_length=len(raw) * 8, mode="ctr")
            _grant(client, session, stored.ref, acl_users)
            result.append(NewKey(option, secret_id, stored.id, stored.ref, len(raw) * 8, wanted, stored.reused))
    return result


def rotation_lines(key: NewKey) -> list[str]:
    sid = key.secret_id
    return [
        "# Stage 1, on EVERY proxy (then restart them all): let them read with the new key",
        f"{key.option} = {key.key_id}",
        "# Stage 2, once stage 1 is everywhere (then restart them all): write with it",
        f"active_root_secret_id = {sid}",
        "# Keep every older key_id* line: existing objects name the secret id they were written with.",
    ]


def migration_lines(keys: list[NewKey], active: str | None) -> list[str]:
    lines = ["# In [filter:<keymaster>] (or its keymaster_config_path file, section [kms_keymaster]):",
             "use = egg:keytools#keymaster",
             "# remove every encryption_root_secret* line, add the keymaster credentials",
             "# (auth_endpoint, username, password, project_name, user_domain_name, "
             "project_domain_name) and:"]
    lines += [f"{k.option} = {k.key_id}" for k in keys]
    if active:
        lines.append(f"active_root_secret_id = {active}")
    return lines


def validate_secret_id(secret_id: str) -> str:
    if not secret_id or not all(c.isalnum() or c in "-_" for c in secret_id):
        raise UsageError(f"--secret-id {secret_id!r} is not a valid id",
                         "Use letters, digits, '-' or '_', e.g. 2")
    return secret_id
