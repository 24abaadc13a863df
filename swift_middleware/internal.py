"""Swift's own ``InternalClient`` built from a proxy's config, for key-usage and re-encryption.

Both pipelines keep the proxy's ``[app:proxy-server]`` (rings, timeouts, policies) and the options
of the filters they keep, in the proxy's order, and drop everything that would change what they
see or write: gatekeeper (it strips sysmeta; InternalClient refuses it), auth, quotas, rate limits,
versioned_writes (a rewrite must not add a history entry) and anything else not listed here.

- ``raw``: no keymaster, no encryption: sysmeta and container listings exactly as stored, so the
  crypto metadata (which root secret) is visible and nothing is decrypted.
- ``encrypting``: copy, slo, dlo, symlink, the keymaster and encryption: a server-side copy onto
  itself decrypts with whichever root secret the object names and encrypts with the active one.

The keymaster is the proxy's own: keytools', Swift's ``kms_keymaster`` or Swift's ``keymaster``
(proxykeys reads their root secrets the way each of them does).
"""

from __future__ import annotations


from dataclasses import dataclass
from typing import Any

from keytools.errors import ConfigError, KeytoolsError, ServiceUnavailable
from swift_middleware import check as check_mod
from swift_middleware import proxykeys

USER_AGENT = "keytools-swift-rotation"
RAW_KEEP = ("egg:swift#catch_errors", "egg:swift#memcache", "egg:swift#proxy_logging",
            "egg:swift#listing_formats")
ENCRYPTING_KEEP = (*RAW_KEEP, "egg:swift#copy", "egg:swift#slo", "egg:swift#dlo", "egg:swift#symlink",
                   *proxykeys.KINDS, check_mod.ENCRYPTION)


@dataclass
class ProxySetup:
    """What the rotation commands need from a proxy-server.conf."""

    path: str
    sections: dict[str, Any]
    pipeline: list[str]
    keymaster_filter: str
    keymaster_conf: dict[str, str]
    keys: proxykeys.ProxyKeys


def load_proxy(path: str) -> ProxySetup:
    """Read and validate ``path``: it must run Swift's encryption with keytools' keymaster, Swift's
    ``kms_keymaster`` or Swift's ``keymaster``."""
    sections = check_mod.read_proxy_conf(path)
    pipeline = check_mod.pipeline_of(path, sections)
    uses = [check_mod.entry_point(sections.get(f"filter:{n}") or sections.get(f"app:{n}") or {})
            for n in pipeline]
    if check_mod.ENCRYPTION not in uses:
        raise ConfigError(f"{path}: the pipeline has no encryption filter (egg:swift#encryption)",
                          "Point --proxy-config at the proxy-server.conf of a proxy that encrypts")
    km = next(((n, proxykeys.KINDS[u]) for n, u in zip(pipeline, uses) if u in proxykeys.KINDS), None)
    if km is None:
        raise ConfigError(f"{path}: no keymaster (egg:keytools#keymaster, egg:swift#kms_keymaster or "
                          "egg:swift#keymaster) in the pipeline",
                          "Run 'keytools swift check' on it for the way there")
    name, kind = km
    conf = check_mod.filter_conf(path, sections, name)
    return ProxySetup(path, sections, pipeline, name, conf, proxykeys.read(conf, name, kind))


def _section_text(name: str, options: dict[str, Any]) -> str:
    lines = [f"[{name}]"]
    for key, value in options.items():
        if key.startswith("__") or key == "here":
            continue
        text = str(value).replace("%", "%%").replace("\n", "\n ")
        lines.append(f"{key} = {text}")
    return "\n".join(lines) + "\n"


def pipeline_text(setup: ProxySetup, keep: tuple[str, ...]) -> tuple[str, list[str]]:
    """An InternalClient config (text) keeping the filters whose entry point is in ``keep``."""
    sections = setup.sections
    kept = [n for n in setup.pipeline[:-1]
            if check_mod.entry_point(sections.get(f"filter:{n}", {})) in keep]
    # a filter may appear twice (proxy-logging): paste needs one section per name, which is fine
    app = setup.pipeline[-1]
    parts = [_section_text("DEFAULT", dict(sections.get("DEFAULT", {})))]
    parts.append(_section_text("pipeline:main", {"pipeline": " ".join([*kept, app])}))
    parts.append(_section_text(f"app:{app}", sections.get(f"app:{app}", {})))
    for name in dict.fromkeys(kept):
        parts.append(_section_text(f"filter:{name}", sections.get(f"filter:{name}", {})))
    return "\n".join(parts), [*kept, app]


def make_client(setup: ProxySetup, encrypting: bool, request_tries: int = 3) -> Any:
    """An InternalClient on the raw or the encrypting pipeline (keys loaded once, from Barbican)."""
    from swift.common.internal_client import InternalClient
    from swift.common.wsgi import ConfigString

    if encrypting:
        # Load the root secrets ourselves first: a failure keeps its exit code (4 unreachable,
        # 5 forbidden, 2 unusable) instead of becoming the keymaster's refusal to start.
        setup.keys.load()
    text, _names = pipeline_text(setup, ENCRYPTING_KEEP if encrypting else RAW_KEEP)
    try:
        _use_swift_dir(setup)
        return InternalClient(ConfigString(text), USER_AGENT, request_tries)
    except KeytoolsError:
        raise
    except (OSError, ValueError, LookupError, ImportError) as exc:
        raise ConfigError(f"{setup.path}: cannot build an internal client from its pipeline: "
                          f"{' '.join(str(exc).split())[:300]}", "Check the file with "
                          "'keytools swift check'") from None


def _use_swift_dir(setup: ProxySetup) -> None:
    """swift.conf (hash path suffix, policies) from the proxy's swift_dir, as swift-proxy-server."""
    from swift.common import utils

    app = setup.sections.get(f"app:{setup.pipeline[-1]}", {})
    swift_dir = app.get("swift_dir") or setup.sections.get("DEFAULT", {}).get("swift_dir")
    if swift_dir:
        utils.set_swift_dir(swift_dir)  # validates swift.conf and reloads the policies


def unreachable(setup: ProxySetup, what: str, status: int | str) -> ServiceUnavailable:
    return ServiceUnavailable(f"Swift answered {status} for {what} (through {setup.path}'s rings)",
                              "Check that the account, container and object servers are running "
                              "and reachable from this proxy node")
