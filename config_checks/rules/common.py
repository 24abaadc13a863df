"""Small helpers shared by the rule modules (value parsing the way the services do it)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

BARBICAN_BACKENDS = frozenset({"barbican", "castellan.key_manager.barbican_key_manager.barbicankeymanager"})
_TRUE = frozenset({"true", "1", "yes", "on", "t", "y"})
_FALSE = frozenset({"false", "0", "no", "off", "f", "n"})


def is_true(value: str | None) -> bool:
    """swift's config_true_value / oslo BoolOpt truth."""
    return value is not None and value.strip().lower() in _TRUE


def is_false(value: str | None) -> bool:
    return value is not None and value.strip().lower() in _FALSE


def is_barbican(backend: str) -> bool:
    return backend.strip().lower() in BARBICAN_BACKENDS


def multi_values(values: list[str]) -> list[str]:
    """MultiStrOpt values; tolerate comma-separated lists too."""
    out: list[str] = []
    for v in values:
        out.extend(x.strip() for x in v.split(",") if x.strip())
    return out


# Jinja/Ansible ``{{ keystone_url }}``, Puppet/Hiera ``%{hiera('x')}``, ERB ``<%= @x %>``: a value
# a config-management tool fills in later, not one to compare.
_PLACEHOLDER = re.compile(r"\{\{.*?\}\}|%\{[^}]*\}|<%.*?%>|\{%.*?%\}")


def is_placeholder(value: str | None) -> bool:
    """The value still holds a template placeholder (an unrendered template)."""
    return value is not None and bool(_PLACEHOLDER.search(value))


def url_host(url: str) -> str | None:
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    return parts.hostname


def is_loopback(host: str | None) -> bool:
    return host in ("localhost", "127.0.0.1", "::1") or bool(host and host.startswith("127."))
