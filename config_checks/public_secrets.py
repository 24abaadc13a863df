"""Secrets published upstream (sample configs, install guides, SAIO, test suites): weak by definition.

The cited list lives in ``data/public_secrets.json`` (value, sha256, source repository and path) so
that adding a newly found sample is a data change, not a code change.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources


@dataclass(frozen=True)
class PublicSecret:
    kind: str  # barbican_kek | swift_root_secret
    value: str
    sources: tuple[str, ...]  # "repo:path"


@functools.lru_cache(maxsize=1)
def load() -> tuple[PublicSecret, ...]:
    text = resources.files("config_checks").joinpath("data/public_secrets.json").read_text(encoding="utf-8")
    return tuple(PublicSecret(e["kind"], e["value"], tuple(f"{s['repo']}:{s['path']}" for s in e["sources"]))
                 for e in json.loads(text)["secrets"])


def find(kind: str, value: str) -> PublicSecret | None:
    """The published secret ``value`` is (compared as written, surrounding blanks ignored)."""
    wanted = value.strip()
    return next((s for s in load() if s.kind == kind and s.value == wanted), None)


def describe(secret: PublicSecret) -> str:
    """``the public sample value from openstack/swift:doc/saio/...`` (first source)."""
    return f"the public sample value from {secret.sources[0]}"
