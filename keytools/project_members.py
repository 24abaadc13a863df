"""Who is a member of a project, from Keystone, at the moment of asking.

A Barbican read ACL names users, not projects, so "everyone in the image's owner project may read
the key" has to be spelled out as the user ids holding any role on the project now: direct and
through groups (``role_assignments?effective&scope.project.id=``, which expands groups and
inherited roles). Someone who joins the project later is not in the ACL: ``migrate verify``
reports such members.
"""

from __future__ import annotations

from keystoneauth1 import session as ks_session

from keytools.errors import Forbidden
from keytools.service_errors import translate


class ProjectMembers:
    """Cached member lookups over one admin session (one Keystone call per project)."""

    def __init__(self, session: ks_session.Session) -> None:
        self.session = session
        self._cache: dict[str, list[str]] = {}

    def users(self, project_id: str) -> list[str]:
        """Sorted user ids with an effective role on ``project_id``."""
        if project_id not in self._cache:
            self._cache[project_id] = self._fetch(project_id)
        return self._cache[project_id]

    def _fetch(self, project_id: str) -> list[str]:
        from keystoneclient.v3 import client as ks_client

        what = f"listing the members of project {project_id}"
        try:
            keystone = ks_client.Client(session=self.session, interface="public")
            assignments = keystone.role_assignments.list(project=project_id, effective=True)
        except Exception as exc:  # noqa: BLE001 - keystoneauth/keystoneclient errors
            err = translate(exc, "Keystone", what)
            if isinstance(err, Forbidden):
                raise Forbidden(err.message, "Use credentials with the admin role (--admin-cloud NAME)") from exc
            raise err from exc
        return sorted({a.user["id"] for a in assignments if getattr(a, "user", None)})
