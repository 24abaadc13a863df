"""castellan's [barbican] section in cinder/nova/glance: TLS verification and endpoints."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from config_checks import secrets
from config_checks.inputs import KEY_MANAGER_CONSUMERS, NOVA_SERVICES, AuditInput, ServiceConfig
from config_checks.model import Finding, Severity, rule
from config_checks.rules.common import is_barbican, is_false, is_loopback, is_placeholder, is_true, url_host

CASTELLAN_AUTH_DEFAULT = "http://localhost/identity/v3"


def barbican_deployed(audit: AuditInput) -> bool:
    """Some audited node runs Barbican (its barbican.conf is in the trees)."""
    return any(c.conf is not None for c in audit.configs("barbican"))


def calls_castellan(cfg: ServiceConfig) -> bool:
    """Whether this service's code opens castellan's key manager at all: cinder (volume keys),
    glance-api (signature verification at upload, cinder key deletion: glance/api/v2/images.py),
    nova-compute (volumes, ephemeral encryption, vTPM, signatures) and nova-api only with
    [ephemeral_storage_encryption] enabled (nova/compute/api.py); never nova-metadata."""
    if cfg.service in NOVA_SERVICES:
        return cfg.is_compute or is_true(cfg.get("ephemeral_storage_encryption", "enabled"))
    return cfg.service in ("cinder", "glance_api")


def uses_barbican(cfg: ServiceConfig, deployed: bool = True) -> bool:
    """The service really talks to Barbican through castellan: it calls castellan, castellan's
    backend is Barbican (the default for cinder, nova and glance alike), and the config says so
    (backend named, a [barbican] section) or Barbican is deployed in the audited cloud."""
    if cfg.conf is None or not calls_castellan(cfg):
        return False
    backend = cfg.get("key_manager", "backend") or cfg.get("key_manager", "api_class")
    if backend is not None:
        return is_barbican(backend)
    return cfg.conf.has_section("barbican") or deployed


def barbican_users(audit: AuditInput) -> list[ServiceConfig]:
    deployed = barbican_deployed(audit)
    return [c for c in audit.configs(*KEY_MANAGER_CONSUMERS) if uses_barbican(c, deployed)]


@rule("KT105", "barbican-verify-ssl-off", Severity.HIGH,
      "TLS certificate verification to Barbican is disabled",
      """Set [barbican] verify_ssl = true and, for a private CA, verify_ssl_path = /path/to/ca.pem:
      without it anyone on the path can read every volume key.""")
def verify_ssl_off(audit: AuditInput) -> Iterator[Finding]:
    for cfg in barbican_users(audit):
        s = cfg.setting("barbican", "verify_ssl")
        if s is not None and is_false(s.value):
            yield verify_ssl_off.finding(cfg.loc(s), f"{cfg.service}: [barbican] verify_ssl = {secrets.show(s)}",
                                         actual=secrets.show(s), expected="true")


@rule("KT106", "barbican-endpoint-inconsistent", Severity.MEDIUM,
      "Barbican endpoint settings differ between services or from Keystone's",
      """Use the same [barbican] barbican_endpoint, auth_endpoint and barbican_endpoint_type in
      cinder, nova and glance on every node, and point auth_endpoint at the Keystone the service
      authenticates against ([keystone_authtoken] www_authenticate_uri/auth_url).""")
def endpoint_inconsistent(audit: AuditInput) -> Iterator[Finding]:
    users = barbican_users(audit)
    for option in ("barbican_endpoint", "auth_endpoint", "barbican_endpoint_type"):
        values = [(c, s) for c in users if (s := c.setting("barbican", option)) is not None
                  and not is_placeholder(s.value)]
        counts = Counter(s.value.rstrip("/") for _, s in values)
        if len(counts) < 2:
            continue
        reference, n = counts.most_common(1)[0]
        for cfg, s in values:
            if s.value.rstrip("/") != reference:
                yield endpoint_inconsistent.finding(
                    cfg.loc(s), f"{cfg.service}: [barbican] {option} differs from {n} other file(s)",
                    actual=secrets.show(s), expected=secrets.shown(option, reference))
    for cfg in users:
        s = cfg.setting("barbican", "auth_endpoint")
        keystone = cfg.get("keystone_authtoken", "www_authenticate_uri") or cfg.get("keystone_authtoken", "auth_url")
        if s is None or keystone is None or is_placeholder(s.value) or is_placeholder(keystone):
            continue
        if url_host(s.value) != url_host(keystone):
            yield endpoint_inconsistent.finding(
                cfg.loc(s), f"{cfg.service}: [barbican] auth_endpoint host differs from [keystone_authtoken]'s",
                actual=secrets.show(s), expected=f"a URL on {url_host(keystone)} (as {secrets.shown('auth_url', keystone)})",
                severity=Severity.LOW)


@rule("KT107", "barbican-auth-endpoint-default", Severity.MEDIUM,
      "castellan will look for Keystone at its built-in default URL",
      f"""Set [barbican] auth_endpoint to the Keystone URL (e.g. https://keystone.example:5000/v3);
      castellan's default {CASTELLAN_AUTH_DEFAULT} exists only in devstack.""")
def auth_endpoint_default(audit: AuditInput) -> Iterator[Finding]:
    for cfg in barbican_users(audit):
        s = cfg.setting("barbican", "auth_endpoint") or cfg.setting("key_manager", "auth_url")
        if s is None:
            yield auth_endpoint_default.finding(cfg.loc(section="barbican", option="auth_endpoint"),
                                                f"{cfg.service}: [barbican] auth_endpoint is not set",
                                                actual=f"unset ({CASTELLAN_AUTH_DEFAULT})", expected="Keystone's URL")
        elif s.value.rstrip("/") == CASTELLAN_AUTH_DEFAULT:
            yield auth_endpoint_default.finding(cfg.loc(s), f"{cfg.service}: auth_endpoint is castellan's default",
                                                actual=secrets.show(s), expected="Keystone's URL")


@rule("KT108", "barbican-endpoint-plaintext", Severity.LOW,
      "Barbican or Keystone is reached over plain HTTP",
      """Use https:// URLs for [barbican] barbican_endpoint and auth_endpoint (keys and tokens
      travel on these connections).""")
def endpoint_plaintext(audit: AuditInput) -> Iterator[Finding]:
    for cfg in barbican_users(audit):
        for option in ("barbican_endpoint", "auth_endpoint"):
            s = cfg.setting("barbican", option)
            if s is not None and not is_placeholder(s.value) and s.value.lower().startswith("http://") and not is_loopback(url_host(s.value)):
                yield endpoint_plaintext.finding(cfg.loc(s), f"{cfg.service}: [barbican] {option} uses http://",
                                                 actual=secrets.show(s), expected="an https:// URL")
