"""The users of a project, listed from Keystone (effective role assignments), cached per run.

Used for read ACLs "for every member of the project" (``migrate --acl project`` for Cinder
volumes, Glance images' owner project): the list is taken at migration time, so a user added to
the project later is not in the ACL (say so wherever this is offered).
"""

from __future__ import annotations

import threading

from keystoneauth1 import session as ks_session

from keytools.errors import KeytoolsError
from keytools.service_errors import translated


class ProjectMembers:
    def __init__(self, session: ks_session.Session) -> None:
        from keystoneclient.v3 import client as ks_client

        self.keystone = ks_client.Client(session=session, interface="public")
        self._cache: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def __call__(self, project_id: str | None) -> list[str]:
        """Sorted user ids with any role on the project (group members included, ``effective``)."""
        if not project_id:
            return []
        with self._lock:
            if project_id in self._cache:
                return self._cache[project_id]
        with translated("Keystone", f"listing the members of project {project_id}"):
            assignments = self.keystone.role_assignments.list(project=project_id, effective=True)
        users = sorted({a.user["id"] for a in assignments if getattr(a, "user", None)})
        if not users:
            raise KeytoolsError(f"project {project_id} has no members in Keystone",
                                "Check the project id, or use the default ACL (the owning user only)")
        with self._lock:
            self._cache[project_id] = users
        return users
