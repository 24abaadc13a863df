"""Build the fixed_key inventory's sources from command-line options, one per service.

A service whose options are missing is *blind* (it blocks ``fixed-key retire``), never zero. Glance
is read through its API with ``--glance-cloud`` admin credentials (``SOURCE_BUILDERS["glance"]``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from keytools import redaction
from keytools.cinder_db import CinderReferences
from keytools.errors import KeytoolsError, ProblemsFound, UsageError
from keytools.fixed_key_refs import SERVICES, Blind, Inventory, ReferenceSource, sort_key, take
from keytools.nova_db import NovaReferences, load_settings

Options = dict[str, Any]


def _cinder(kw: Options) -> ReferenceSource | Blind:
    if not kw.get("db_url"):
        return Blind("cinder", "no Cinder database given (--db-url or KEYTOOLS_CINDER_DB_URL)")
    return CinderReferences(kw["db_url"])


def _nova(kw: Options) -> ReferenceSource | Blind:
    if not (kw.get("nova_config_file") or kw.get("nova_api_db_url") or kw.get("nova_db_url")):
        return Blind("nova", "no Nova database given (--nova-config-file, --nova-api-db-url or --nova-db-url)")
    try:
        settings = load_settings(kw.get("nova_config_file"), kw.get("nova_api_db_url"),
                                 tuple(kw.get("nova_db_url") or ()))
    except KeytoolsError as exc:
        return Blind("nova", exc.message, type(exc))
    return NovaReferences(settings)


def _glance(kw: Options) -> ReferenceSource | Blind:
    if not kw.get("glance_cloud"):
        return Blind("glance", "Glance images were not checked (no --glance-cloud: admin credentials for Glance)")
    from keytools import auth
    from keytools.glance_images import GlanceImages, GlanceReferences

    try:
        session = auth.session_from_cloud(kw["glance_cloud"])
    except KeytoolsError as exc:
        return Blind("glance", exc.message, type(exc))
    return GlanceReferences(GlanceImages(session, kw.get("glance_endpoint")))


SOURCE_BUILDERS: dict[str, Callable[[Options], ReferenceSource | Blind]] = {
    "cinder": _cinder, "nova": _nova, "glance": _glance}


def parse_services(values: Iterable[str], option: str = "--ignore-service") -> list[str]:
    names = [n.strip().lower() for v in values for n in v.split(",") if n.strip()]
    unknown = [n for n in names if n not in SERVICES]
    if unknown:
        raise UsageError(f"{option} {', '.join(unknown)}: unknown service", f"Choose from {', '.join(SERVICES)}")
    return sorted(set(names))


def inventory(kw: Options, services: Sequence[str] = SERVICES, ignore: Iterable[str] = ()) -> Inventory:
    """Look at every service (blind ones are listed with the reason); ignored ones are not asked."""
    ignored = set(ignore)
    for url in (kw.get("db_url"), kw.get("nova_api_db_url"), *(kw.get("nova_db_url") or ())):
        if url:
            redaction.register_secret(_password(url))
    sources = {s: SOURCE_BUILDERS[s](kw) for s in services if s not in ignored}
    inv = take(sources, ignored)
    inv.references.sort(key=sort_key)
    return inv


def failure(inv: Inventory) -> KeytoolsError | None:
    """The error ``fixed-key inventory`` ends with after its report, or None: ProblemsFound (exit 1)
    when something references the all-zeros id or a service was not seen (and not ignored)."""
    if inv.total:
        return ProblemsFound(f"{inv.total} reference(s) to the all-zeros key id "
                             f"({', '.join(f'{s} {n}' for s, n in inv.totals().items())})",
                             "Migrate them first with 'keytools migrate run', then rerun")
    if inv.blocking_blind:
        return ProblemsFound(f"not seen: {'; '.join(f'{b.service}: {b.reason}' for b in inv.blocking_blind)}",
                             "Give the missing options, or --ignore-service SERVICE if it never used fixed_key")
    return None


def _password(url: str) -> str | None:
    try:
        import sqlalchemy as sa

        return sa.engine.make_url(url.partition("=")[2] if "=" in url.split("://")[0] else url).password
    except Exception:  # noqa: BLE001
        return None
