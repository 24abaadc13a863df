"""Each service's KeySource from command-line options: one builder per service, one option set.

A service whose options are missing is NOT SEEN (with the option to give), never "no references".
Used by ``fixed-key inventory``/``retire`` (cinder, nova, glance), ``fixed-key exposure`` and
``keys reconcile``/``cleanup`` (also swift and barbican).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import click

from keytools import redaction
from keytools.errors import KeytoolsError, UsageError
from keytools.key_refs.model import KeySource, NotSeen

Options = dict[str, Any]
ALL_SERVICES = ("cinder", "nova", "glance", "swift", "barbican")


def _cinder(kw: Options) -> KeySource | NotSeen:
    if not kw.get("db_url"):
        return NotSeen("cinder", "no Cinder database given (--db-url or KEYTOOLS_CINDER_DB_URL)")
    from keytools.key_refs.cinder import CinderKeySource

    return CinderKeySource(kw["db_url"])


def _nova(kw: Options) -> KeySource | NotSeen:
    if not (kw.get("nova_config_file") or kw.get("nova_api_db_url") or kw.get("nova_db_url")):
        return NotSeen("nova", "no Nova database given (--nova-config-file, --nova-api-db-url or --nova-db-url)")
    from keytools.key_refs.nova import NovaKeySource
    from keytools.nova_db import load_settings

    try:
        settings = load_settings(kw.get("nova_config_file"), kw.get("nova_api_db_url"),
                                 tuple(kw.get("nova_db_url") or ()))
    except KeytoolsError as exc:
        return NotSeen("nova", exc.message, type(exc))
    return NovaKeySource(settings)


def _glance(kw: Options) -> KeySource | NotSeen:
    if not kw.get("glance_cloud"):
        return NotSeen("glance", "Glance images were not checked (no --glance-cloud: admin credentials for Glance)")
    from keytools import auth
    from keytools.glance_images import GlanceImages
    from keytools.key_refs.glance import GlanceKeySource

    try:
        session = auth.session_from_cloud(kw["glance_cloud"])
    except KeytoolsError as exc:
        return NotSeen("glance", exc.message, type(exc))
    return GlanceKeySource(GlanceImages(session, kw.get("glance_endpoint")))


def _swift(kw: Options) -> KeySource | NotSeen:
    if not kw.get("swift_proxy_config"):
        return NotSeen("swift", "no Swift proxy config given (--swift-proxy-config, once per proxy)")
    from keytools.key_refs.swift import SwiftKeySource

    return SwiftKeySource(kw["swift_proxy_config"])


def _barbican(kw: Options) -> KeySource | NotSeen:
    if not kw.get("barbican_db_url"):  # resolved from --barbican-db-url or barbican.conf by the caller
        return NotSeen("barbican", "Barbican's consumer registrations were not read (no Barbican database)")
    from keytools.key_refs.barbican import BarbicanConsumers

    try:
        return BarbicanConsumers(kw["barbican_db_url"])
    except KeytoolsError as exc:
        return NotSeen("barbican", exc.message, type(exc))


BUILDERS: dict[str, Callable[[Options], KeySource | NotSeen]] = {
    "cinder": _cinder, "nova": _nova, "glance": _glance, "swift": _swift, "barbican": _barbican}


def register_passwords(kw: Options) -> None:
    """Mask the database passwords of the options in every log line and error."""
    for url in (kw.get("db_url"), kw.get("nova_api_db_url"), kw.get("barbican_db_url"),
                *(kw.get("nova_db_url") or ())):
        if url:
            redaction.register_secret(_password(url))


def sources(kw: Options, services: Sequence[str], ignore: Iterable[str] = ()) -> dict[str, KeySource | NotSeen]:
    """The sources of ``services`` (ignored ones are not built: they are not asked at all)."""
    register_passwords(kw)
    ignored = set(ignore)
    return {s: BUILDERS[s](kw) for s in services if s not in ignored}


def parse_services(values: Iterable[str], known: Sequence[str], option: str = "--ignore-service") -> list[str]:
    names = [n.strip().lower() for v in values for n in v.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UsageError(f"{option} {', '.join(unknown)}: unknown service", f"Choose from {', '.join(known)}")
    return sorted(set(names))


def service_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Where Cinder, Nova and Glance references are read (Cinder DB, Nova cells, Glance API)."""
    opts = [
        click.option("--db-url", envvar="KEYTOOLS_CINDER_DB_URL", metavar="URL",
                     help="Cinder's database (SQLAlchemy URL, also KEYTOOLS_CINDER_DB_URL)."),
        click.option("--nova-config-file", type=click.Path(dir_okay=False), metavar="NOVA_CONF",
                     help="nova.conf: [api_database] connection (cells from cell_mappings) and [database] "
                          "connection (templated cell URLs; alone: that one cell)."),
        click.option("--nova-api-db-url", envvar="KEYTOOLS_NOVA_API_DB_URL", metavar="URL",
                     help="nova_api database (cells from cell_mappings; also KEYTOOLS_NOVA_API_DB_URL)."),
        click.option("--nova-db-url", multiple=True, metavar="[CELL=]URL",
                     help="A Nova cell database instead of cell_mappings (repeatable)."),
        click.option("--glance-cloud", envvar="KEYTOOLS_GLANCE_CLOUD", metavar="NAME",
                     help="clouds.yaml cloud with the admin role: Glance images of every project are read "
                          "through the API (also KEYTOOLS_GLANCE_CLOUD)."),
        click.option("--glance-endpoint", metavar="URL", help="Glance URL (default: the service catalog)."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def swift_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--swift-proxy-config", multiple=True, type=click.Path(dir_okay=False),
                        metavar="PROXY_CONF", help="A Swift proxy-server.conf whose keymaster names root secrets "
                                                   "in Barbican (repeatable: one per proxy config).")(f)


def _password(url: str) -> str | None:
    try:
        import sqlalchemy as sa

        return sa.engine.make_url(url.partition("=")[2] if "=" in url.split("://")[0] else url).password
    except Exception:  # noqa: BLE001
        return None
