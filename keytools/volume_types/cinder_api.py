"""python-cinderclient on the run's keystoneauth session, and the few Cinder calls volume types need.

Every call goes through ``service_errors.translated`` so a policy refusal, an unreachable Cinder or
a missing catalog entry becomes one line with its remedy, never a traceback.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from keystoneauth1 import session as ks_session

from keytools.errors import Forbidden, KeytoolsError, NotFound
from keytools.service_errors import translate

# 3.64 shows encryption_key_id in volume details (used to tell which key manager made the keys).
MICROVERSION = "3.64"
SERVICE_TYPE = "volumev3"

ADMIN_HINT = ("Cinder's default policy lets only admins manage volume types and read encryption specs; "
              "use admin credentials (in the sandbox: --os-cloud sandbox-admin)")


def client(session: ks_session.Session, interface: str = "public", region: str | None = None) -> Any:
    from cinderclient import client as cinder_client

    return cinder_client.Client(MICROVERSION, session=session, service_type=SERVICE_TYPE,
                                interface=interface, region_name=region)


@contextlib.contextmanager
def calling(what: str, admin_only: bool = False) -> Iterator[None]:
    """Translate cinderclient/keystoneauth errors; a 403 on an admin call names the role."""
    try:
        yield
    except KeytoolsError:
        raise
    except Exception as exc:
        err = translate(exc, "Cinder", what)
        if isinstance(err, Forbidden) and admin_only:
            raise Forbidden(err.message, ADMIN_HINT) from exc
        raise err from exc


@dataclass(frozen=True)
class TypeRecord:
    """A volume type with its encryption object (None when unencrypted)."""

    id: str
    name: str
    description: str | None
    is_public: bool
    encryption: dict[str, Any] | None
    extra_specs: dict[str, str] = field(default_factory=dict)


def list_types(cinder: Any, with_encryption: bool = True) -> list[TypeRecord]:
    """Every type the caller sees (admins: public and private), with its encryption object
    (one GET per type: Cinder has no call listing all encryption specs)."""
    with calling("listing volume types"):
        try:
            types = cinder.volume_types.list(is_public=None)  # admins: private types too
        except Exception as exc:
            if getattr(exc, "code", None) != 400:
                raise
            # Non-admins may not filter on is_public: they see the public types (and their own).
            types = cinder.volume_types._list("/types", "volume_types")
    return [TypeRecord(t.id, t.name, getattr(t, "description", None), bool(t.is_public),
                       encryption_of(cinder, t.id) if with_encryption else None,
                       dict(getattr(t, "extra_specs", None) or {})) for t in types]


def encryption_of(cinder: Any, type_id: str) -> dict[str, Any] | None:
    with calling("reading a volume type's encryption spec", admin_only=True):
        data = cinder.volume_encryption_types.get(type_id).to_dict()
    return data if data.get("volume_type_id") else None


def find_type(cinder: Any, name: str) -> TypeRecord | None:
    """The type called ``name`` (names are unique in Cinder), with its encryption object."""
    for record in list_types(cinder, with_encryption=False):
        if record.name == name:
            return TypeRecord(record.id, record.name, record.description, record.is_public,
                              encryption_of(cinder, record.id), record.extra_specs)
    return None


def project_id(session: ks_session.Session, project: str) -> str:
    """A project's id from its name or id (Cinder's type access API wants the id)."""
    from keystoneclient.v3 import client as ks_client

    keystone = ks_client.Client(session=session, interface="public")
    with calling(f"looking up project {project!r}"):
        try:
            return keystone.projects.get(project).id
        except Exception:  # noqa: BLE001 - not an id (or not visible): try it as a name
            matches = [p for p in keystone.projects.list(name=project) if p.name == project]
    if not matches:
        raise NotFound(f"--project {project!r}: no such Keystone project", "Give a project name or id")
    return matches[0].id


def type_access(cinder: Any, type_id: str) -> set[str]:
    with calling("reading volume type access", admin_only=True):
        return {a.project_id for a in cinder.volume_type_access.list(type_id)}
