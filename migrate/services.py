"""Which services a ``keytools migrate`` command covers and how each one's ``Consumer`` is built.

The plug-in point for a service: add its name to ``SERVICES`` (keytools.fixed_key_refs), a
predicate to ``CONFIGURED`` (were its options given?) and a builder to ``BUILDERS``
(options -> Consumer). ``--service a,b`` picks some; the default is every configured one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from keytools.errors import UsageError
from keytools.fixed_key_refs import SERVICES
from keytools.nova_db import NovaCells, load_settings
from migrate.consumer import CinderConsumer, Consumer, Readers
from migrate.db import CinderDB
from migrate.nova import NovaConsumer

Options = dict[str, Any]


def _cinder_configured(kw: Options) -> bool:
    return bool(kw.get("config_file") or kw.get("db_url"))


def _nova_configured(kw: Options) -> bool:
    return bool(kw.get("nova_config_file") or kw.get("nova_api_db_url") or kw.get("nova_db_url"))


def _glance_configured(kw: Options) -> bool:
    return bool(kw.get("glance_cloud"))


def _cinder(kw: Options, settings: Any, readers: Readers | None) -> Consumer:
    return CinderConsumer(CinderDB(settings.db_url), readers)


def _nova(kw: Options, settings: Any, readers: Readers | None) -> Consumer:
    nova = load_settings(kw.get("nova_config_file"), kw.get("nova_api_db_url"), tuple(kw.get("nova_db_url") or ()))
    return NovaConsumer(NovaCells(nova), readers)


def _glance(kw: Options, settings: Any, readers: Readers | None) -> Consumer:
    from keytools import auth
    from keytools.glance_images import GlanceImages
    from keytools.keystone_members import ProjectMembers
    from migrate.glance import GlanceConsumer

    session = auth.session_from_cloud(kw["glance_cloud"])
    return GlanceConsumer(GlanceImages(session, kw.get("glance_endpoint")), ProjectMembers(session))


CONFIGURED: dict[str, Callable[[Options], bool]] = {"cinder": _cinder_configured, "nova": _nova_configured,
                                                    "glance": _glance_configured}
BUILDERS: dict[str, Callable[[Options, Any, Readers | None], Consumer]] = {"cinder": _cinder, "nova": _nova,
                                                                           "glance": _glance}


def parse(value: str | None) -> list[str] | None:
    """``--service cinder,nova`` -> ['cinder', 'nova'] (None: every configured one)."""
    if not value:
        return None
    names = [v.strip().lower() for v in value.split(",") if v.strip()]
    unknown = [n for n in names if n not in SERVICES]
    if unknown:
        raise UsageError(f"--service {value}: unknown service {', '.join(unknown)}",
                         f"Choose from {', '.join(SERVICES)}")
    not_built = [n for n in names if n not in BUILDERS]
    if not_built:
        raise UsageError(f"--service {', '.join(not_built)}: not supported by this keytools yet",
                         f"Choose from {', '.join(BUILDERS)}")
    return list(dict.fromkeys(names))


def selected(kw: Options) -> list[str]:
    """The services to cover; an explicitly named one must be configured (one-line error)."""
    wanted = parse(kw.get("service"))
    if wanted is None:
        found = [s for s in BUILDERS if CONFIGURED[s](kw)]
        if not found:
            raise UsageError("no service given",
                             "Pass --config-file cinder.conf / --db-url (Cinder) and/or --nova-config-file / "
                             "--nova-api-db-url / --nova-db-url (Nova) and/or --glance-cloud NAME (Glance)")
        return found
    for name in wanted:
        if not CONFIGURED[name](kw):
            hint = {"cinder": "Pass --config-file cinder.conf or --db-url",
                    "nova": "Pass --nova-config-file nova.conf, --nova-api-db-url or --nova-db-url",
                    "glance": "Pass --glance-cloud NAME (clouds.yaml cloud with the admin role: Glance and "
                              "Keystone are read as admin)"}.get(
                        name, f"Pass the {name} options")
            raise UsageError(f"--service {name}: no {name} source given", hint)
    return wanted


def build(name: str, kw: Options, settings: Any, readers: Readers | None = None) -> Consumer:
    return BUILDERS[name](kw, settings, readers)
