"""The users of a project, listed from Keystone (effective role assignments), cached per run.

Used for read ACLs "for every member of the project" (``migrate --acl project`` for Cinder
volumes and Nova instances, Glance images' owner project): the list is taken at migration time, so
a user added to the project later is not in the ACL (say so wherever this is offered). ``admins()``
lists the users holding the admin role anywhere: Nova runs rebuild, migrate and evacuate with the
admin's own token, so a Nova key they must keep reading names them too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from keystoneauth1 import session as ks_session

from keytools.errors import KeytoolsError, NotFound
from keytools.service_errors import translated


class ProjectMembers:
    def __init__(self, session: ks_session.Session) -> None:
        from keystoneclient.v3 import client as ks_client

        self.keystone = ks_client.Client(session=session, interface="public")
        self._cache: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def __call__(self, project_id: str | None, allow_empty: bool = False) -> list[str]:
        """Sorted user ids with any role on the project (group members included, ``effective``).
        A project with no members (or deleted) is an error unless ``allow_empty`` (the caller falls back)."""
        if not project_id:
            return []
        try:
            users = self._cached(project_id, lambda: self._users(f"listing the members of project {project_id}",
                                                                  project=project_id))
        except NotFound:  # a deleted project: Keystone answers 404
            if not allow_empty:
                raise
            users = self._cached(project_id, list)
        if not users and not allow_empty:
            raise KeytoolsError(f"project {project_id} has no members in Keystone",
                                "Check the project id, or use the default ACL (the owning user only)")
        return users

    def admins(self) -> list[str]:
        """Sorted ids of the users holding the ``admin`` role on any project, domain or the system."""
        def fetch() -> list[str]:
            with translated("Keystone", "looking up the admin role"):
                roles = self.keystone.roles.list(name="admin")
            return sorted({u for r in roles for u in self._users("listing the users with the admin role",
                                                                  role=r.id)})
        return self._cached(" admins", fetch)

    def _users(self, what: str, **query: str) -> list[str]:
        with translated("Keystone", what):
            assignments = self.keystone.role_assignments.list(effective=True, **query)
        return sorted({a.user["id"] for a in assignments if getattr(a, "user", None)})

    def _cached(self, key: str, fetch: Callable[[], list[str]]) -> list[str]:
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        users = fetch()
        with self._lock:
            self._cache[key] = users
        return users
