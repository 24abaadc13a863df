"""Glance images that still name ConfKeyManager's key: ``cinder_encryption_key_id`` = all zeros.

cinder's upload-to-image of an encrypted volume clones the volume's key into that image property
(cinder/api/contrib/volume_actions.py, volume_utils.clone_encryption_key); under ConfKeyManager
the clone is the all-zeros id. Cinder reads the key with the user's token whenever a volume is
created from the image, so these images depend on fixed_key exactly like the volumes do.

Listing is done as admin over the Glance v2 API, every project: ``visibility=all`` (an admin
sees every image with it) plus ``community`` and ``shared`` with ``member_status=all`` in case a
policy makes the admin a regular user, each once with ``os_hidden=false`` and once ``true``
(Glance hides hidden images unless asked), paginated with ``marker``; all statuses Glance keeps
(active, queued, deactivated, ...). Deleted images are gone from the API, as Glance means it.
Glance has no conditional update (its JSON patch knows only add/remove/replace, no ``test``), so
:meth:`GlanceImages.swap_key` re-reads the image right before its PATCH and once after it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from keystoneauth1 import session as ks_session

from keytools.cinder_db import FIXED_KEY_ID
from keytools.errors import Forbidden, KeytoolsError, NotFound
from keytools.service_errors import translate

KEY_PROPERTY = "cinder_encryption_key_id"
POLICY_PROPERTY = "cinder_encryption_key_deletion_policy"
PATCH_TYPE = "application/openstack-images-v2.1-json-patch"
PAGE = 200
# (visibility, extra query) passes; an admin's visibility=all already returns everything.
PASSES: tuple[dict[str, str], ...] = ({"visibility": "all"}, {"visibility": "community"},
                                      {"visibility": "shared", "member_status": "all"})


@dataclass(frozen=True)
class ImageRef:
    """One image whose ``cinder_encryption_key_id`` is the all-zeros id."""

    id: str
    name: str | None
    owner: str | None  # the project that owns the image
    status: str
    visibility: str
    os_hidden: bool
    deletion_policy: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_api(cls, doc: dict[str, Any]) -> ImageRef:
        return cls(id=doc["id"], name=doc.get("name"), owner=doc.get("owner"), status=doc.get("status", ""),
                   visibility=doc.get("visibility", ""), os_hidden=bool(doc.get("os_hidden", False)),
                   deletion_policy=doc.get(POLICY_PROPERTY))


@dataclass(frozen=True)
class SwapResult:
    """What a compare-and-swap of the image property found: ``won`` or the id it saw instead."""

    won: bool
    current: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class GlanceImages:
    """Glance v2 over one admin keystoneauth session (endpoint from the catalog or given)."""

    def __init__(self, session: ks_session.Session, endpoint: str | None = None, region: str | None = None,
                 interface: str = "public") -> None:
        self.session = session
        self._endpoint = endpoint.rstrip("/") if endpoint else None
        self.region = region
        self.interface = interface

    @property
    def endpoint(self) -> str:
        if self._endpoint is None:
            try:
                url = self.session.get_endpoint(service_type="image", interface=self.interface,
                                                region_name=self.region)
            except Exception as exc:  # noqa: BLE001 - keystoneauth's connect/auth errors
                raise translate(exc, "Glance", "finding the image endpoint") from exc
            if not url:
                raise translate(_endpoint_not_found(), "Glance", "finding the image endpoint")
            self._endpoint = url.rstrip("/")
        return self._endpoint

    def describe(self) -> str:
        return self.endpoint

    def _request(self, method: str, path: str, what: str, **kw: Any) -> Any:
        url = f"{self.endpoint}{path}"
        try:
            resp = self.session.request(url, method, raise_exc=False, **kw)
        except Exception as exc:  # noqa: BLE001 - connection refused, timeouts, auth
            raise translate(exc, "Glance", what) from exc
        if resp.status_code == 404:
            raise NotFound(f"Glance: not found while {what}")
        if resp.status_code == 403:
            raise Forbidden(f"Glance refused the request while {what} (403)",
                            "Use credentials with the admin role (--admin-cloud)")
        if resp.status_code >= 400:
            err = _HTTPError(resp.status_code, resp.text[:200])
            raise translate(err, "Glance", what)
        return resp.json() if resp.content else None

    # ---- admin check -----------------------------------------------------------------------------

    def check_admin(self) -> None:
        """Only an admin sees every project's images; a member would silently see its own only.

        Glance's ``context_is_admin`` is ``role:admin`` by default, so the token must carry it."""
        try:
            access = self.session.auth.get_access(self.session)
        except Exception as exc:  # noqa: BLE001
            raise translate(exc, "Keystone", "authenticating for Glance") from exc
        if "admin" not in (access.role_names or []):
            raise Forbidden(f"user {access.username} (project {access.project_name}) has no admin role: Glance "
                            "would list only that project's images; nothing was changed",
                            "Use admin credentials (--admin-cloud NAME or --os-cloud of an admin)")
        self._request("GET", "/v2/images?limit=1", "listing images")  # reachable, and answers

    # ---- listing ----------------------------------------------------------------------------------

    def _pages(self, query: dict[str, str]) -> Iterator[dict[str, Any]]:
        params = dict(query, limit=str(PAGE), sort_key="id", sort_dir="asc")
        path = "/v2/images?" + "&".join(f"{k}={v}" for k, v in sorted(params.items()))
        marker = None
        while True:
            page = self._request("GET", path + (f"&marker={marker}" if marker else ""), "listing images")
            images = page.get("images", []) if isinstance(page, dict) else []
            yield from images
            if not images or "next" not in page:
                return
            marker = images[-1]["id"]

    def all_images(self, filters: dict[str, str] | None = None) -> Iterator[dict[str, Any]]:
        """Every image (all projects, hidden or not, any status) matching ``filters`` (property =
        value, Glance's own filtering), each once, as the API's document."""
        seen: set[str] = set()
        for hidden in ("false", "true"):
            for extra in PASSES:
                for doc in self._pages({**extra, "os_hidden": hidden, **(filters or {})}):
                    if doc["id"] not in seen:
                        seen.add(doc["id"])
                        yield doc

    def fixed_key_images(self, key_id: str = FIXED_KEY_ID) -> Iterator[ImageRef]:
        """Every image (all projects, hidden or not, any status) whose key property is ``key_id``."""
        for doc in self.all_images({KEY_PROPERTY: key_id}):
            if doc.get(KEY_PROPERTY) == key_id:  # exact, like cinder
                yield ImageRef.from_api(doc)

    def get(self, image_id: str) -> dict[str, Any]:
        doc = self._request("GET", f"/v2/images/{image_id}", f"reading image {image_id}")
        return doc if isinstance(doc, dict) else {}

    def key_of(self, image_id: str) -> str | None:
        """The image's current key property; None if the image is gone (or has none)."""
        try:
            return self.get(image_id).get(KEY_PROPERTY)
        except NotFound:
            return None

    def swap_key(self, image_id: str, new_id: str, expected: str = FIXED_KEY_ID) -> SwapResult:
        """Point the image at ``new_id`` only if it is still on ``expected``: re-read, PATCH, re-read."""
        current = self.key_of(image_id)
        if current != expected:
            return SwapResult(False, current)
        patch = [{"op": "replace", "path": f"/{KEY_PROPERTY}", "value": new_id}]
        self._request("PATCH", f"/v2/images/{image_id}", f"updating image {image_id}",
                      data=json.dumps(patch), headers={"Content-Type": PATCH_TYPE})
        after = self.key_of(image_id)
        return SwapResult(after == new_id, after)


class _HTTPError(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"HTTP {status}: {' '.join(text.split())}")
        self.status_code = status


def _endpoint_not_found() -> Exception:
    from keystoneauth1 import exceptions as ksa_exc

    return ksa_exc.EndpointNotFound("image")


def count_by_project(images: Iterable[ImageRef]) -> dict[str | None, int]:
    """Images on the all-zeros id per owner project."""
    counts: dict[str | None, int] = {}
    for image in images:
        counts[image.owner] = counts.get(image.owner, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: kv[0] or ""))


__all__ = ["GlanceImages", "ImageRef", "SwapResult", "KEY_PROPERTY", "count_by_project",
           "KeytoolsError"]
