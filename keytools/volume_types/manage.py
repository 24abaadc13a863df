"""Create (or update) an encrypted volume type idempotently.

Cinder needs two calls for an encrypted type: the type, then its encryption spec. The type is
created with a scoped extra spec ``keytools:encryption=pending`` in the same POST (the scheduler
ignores scoped keys other than ``capabilities:``), and the marker is removed once the encryption
spec is in place. So a rerun after a crash at any point converges: a type carrying the marker is
ours to finish, and a type without it is somebody else's and never silently changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from keytools.errors import Conflict, StateError, UsageError
from keytools.volume_types import cinder_api
from keytools.volume_types.spec import EncryptionSpec, from_cinder

PENDING_KEY = "keytools:encryption"
PENDING_VALUE = "pending"

CREATED, UNCHANGED, UPDATED = "created", "unchanged", "updated"


@dataclass(frozen=True)
class Request:
    name: str
    spec: EncryptionSpec
    description: str | None = None  # None: leave as is / none for a new type
    is_public: bool = True
    project_id: str | None = None  # private types: project granted access

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise UsageError("NAME is empty", "Give the volume type a name, or use --template 256")
        if len(self.name) > 255:
            raise UsageError(f"NAME is {len(self.name)} characters long; Cinder allows 255")
        if self.project_id and self.is_public:
            raise UsageError("--project only applies to a private type", "Add --private")


@dataclass
class Outcome:
    action: str
    type_id: str
    name: str
    spec: EncryptionSpec
    is_public: bool
    changes: list[str] = field(default_factory=list)

    def as_row(self) -> dict[str, Any]:
        return {"name": self.name, "id": self.type_id, "action": self.action, **self.spec.as_body(),
                "public": self.is_public, "changes": self.changes}


def ensure(cinder: Any, request: Request, update: bool = False, _retry: bool = True) -> Outcome:
    """Make the type exist with ``request``'s definition; see the module docstring for reruns."""
    existing = cinder_api.find_type(cinder, request.name)
    if existing is None:
        try:
            type_id = _create_type(cinder, request)
        except _AlreadyExists:
            if not _retry:
                raise Conflict(f"volume type {request.name!r} keeps appearing and disappearing",
                               "Another tool is changing it; retry later") from None
            return ensure(cinder, request, update, _retry=False)  # a concurrent run created it
        _finish(cinder, type_id, request, has_encryption=False)
        return Outcome(CREATED, type_id, request.name, request.spec, request.is_public)

    ours_pending = existing.extra_specs.get(PENDING_KEY) == PENDING_VALUE
    current = from_cinder(existing.encryption)[0] if existing.encryption else None
    diffs = _differences(existing, current, request)
    if current is None and ours_pending and not _type_field_diffs(existing, request):
        # An earlier run stopped between the two calls: finish it.
        _finish(cinder, existing.id, request, has_encryption=False)
        return Outcome(CREATED, existing.id, request.name, request.spec, request.is_public,
                       ["completed an interrupted create"])
    if not diffs:
        if ours_pending:
            _finish(cinder, existing.id, request, has_encryption=True)
        added = _grant(cinder, existing.id, request)
        return Outcome(UPDATED if added else UNCHANGED, existing.id, request.name, request.spec,
                       existing.is_public, added)
    if not update:
        raise Conflict(f"volume type {request.name!r} exists with a different definition: {'; '.join(diffs)}",
                       "Rerun with --update to change it (refused while volumes use the type), "
                       "or choose another name")
    _apply_update(cinder, existing.id, current, request)
    _finish(cinder, existing.id, request, has_encryption=True)
    return Outcome(UPDATED, existing.id, request.name, request.spec, request.is_public, diffs)


def _differences(existing: cinder_api.TypeRecord, current: EncryptionSpec | None, request: Request) -> list[str]:
    diffs = ["not encrypted"] if current is None else request.spec.differences(current)
    return diffs + _type_field_diffs(existing, request)


def _type_field_diffs(existing: cinder_api.TypeRecord, request: Request) -> list[str]:
    diffs = []
    if existing.is_public != request.is_public:
        have, want = ("public", "private") if existing.is_public else ("private", "public")
        diffs.append(f"visibility {have} (wanted {want})")
    if request.description is not None and (existing.description or "") != request.description:
        diffs.append(f"description {existing.description!r} (wanted {request.description!r})")
    return diffs


def _create_type(cinder: Any, request: Request) -> str:
    body = {"volume_type": {"name": request.name, "description": request.description,
                            "os-volume-type-access:is_public": request.is_public,
                            "extra_specs": {PENDING_KEY: PENDING_VALUE}}}
    with cinder_api.calling(f"creating volume type {request.name!r}", admin_only=True):
        try:
            return cinder.volume_types._create("/types", body, "volume_type").id
        except Exception as exc:
            if getattr(exc, "code", None) != 409:
                raise
    raise _AlreadyExists()


class _AlreadyExists(Exception):
    """The type was created by someone else between our lookup and our POST."""


def _finish(cinder: Any, type_id: str, request: Request, has_encryption: bool) -> None:
    """Encryption spec, project access, then drop the pending marker (last: it means 'incomplete')."""
    if not has_encryption:
        _set_encryption(cinder, type_id, request, create=True)
    _grant(cinder, type_id, request)
    with cinder_api.calling(f"finishing volume type {request.name!r}", admin_only=True):
        volume_type = cinder.volume_types.get(type_id)
        if PENDING_KEY in (volume_type.extra_specs or {}):
            try:
                volume_type.unset_keys([PENDING_KEY])
            except Exception as exc:
                if getattr(exc, "code", None) != 404:  # 404: a concurrent run removed it first
                    raise


def _set_encryption(cinder: Any, type_id: str, request: Request, create: bool) -> None:
    what = f"{'setting' if create else 'updating'} the encryption spec of {request.name!r}"
    with cinder_api.calling(what, admin_only=True):
        try:
            if create:
                cinder.volume_encryption_types.create(type_id, request.spec.as_body())
            else:
                cinder.volume_encryption_types.update(type_id, request.spec.as_body())
        except Exception as exc:
            if getattr(exc, "code", None) != 400:
                raise
            if create and cinder_api.encryption_of(cinder, type_id):  # by state: a concurrent run set it
                _same_encryption_or_conflict(cinder, type_id, request)
                return
            # Cinder's only sign of "volumes use this type" is the 400's text: its volume list
            # cannot filter by type (resource_filters.json), so there is no state to read instead.
            reason = " ".join(str(getattr(exc, "message", "") or "").split())
            if "in use" in reason.lower():
                raise StateError(f"volume type {request.name!r} is in use; Cinder says: {reason}",
                                 "Cinder never changes the encryption of a type volumes use: create a "
                                 "new type and retype the volumes, or delete them first") from None
            raise


def _same_encryption_or_conflict(cinder: Any, type_id: str, request: Request) -> None:
    current = cinder_api.encryption_of(cinder, type_id)
    spec = from_cinder(current)[0] if current else None
    if spec != request.spec:
        diffs = request.spec.differences(spec) if spec else ["not encrypted"]
        raise Conflict(f"volume type {request.name!r} got a different encryption spec meanwhile: "
                       f"{'; '.join(diffs)}", "Another run is changing it; rerun to see its state")


def _apply_update(cinder: Any, type_id: str, current: EncryptionSpec | None, request: Request) -> None:
    """Encryption first (Cinder may refuse it: then nothing else changed), then the type's fields."""
    if current != request.spec:
        _set_encryption(cinder, type_id, request, create=current is None)
    fields: dict[str, Any] = {"is_public": request.is_public}
    if request.description is not None:
        fields["description"] = request.description
    with cinder_api.calling(f"updating volume type {request.name!r}", admin_only=True):
        cinder.volume_types.update(type_id, **fields)


def _grant(cinder: Any, type_id: str, request: Request) -> list[str]:
    """Give ``request.project_id`` access to a private type (additive, idempotent)."""
    if request.is_public or not request.project_id:
        return []
    if request.project_id in cinder_api.type_access(cinder, type_id):
        return []
    with cinder_api.calling(f"granting project access to {request.name!r}", admin_only=True):
        cinder.volume_type_access.add_project_access(type_id, request.project_id)
    return [f"access granted to project {request.project_id}"]
