"""The check before any change: Barbican answers and these credentials may create secrets.

A 403 stops the run before the first row with cinder's own error line and the documented remedy;
``--grant-creator`` grants the missing role with admin credentials and checks again.
"""

from __future__ import annotations

import logging

from keytools import auth, rbac
from keytools.errors import Forbidden
from keytools.logs import log_event
from keytools.service_errors import SECRET_FORBIDDEN
from migrate import journal as jr
from migrate.barbican import Barbican
from migrate.engine import LOG, MSG_ERROR


def probe(barbican: Barbican) -> rbac.CreateCheck:
    """Reach Barbican with these credentials (what creating cinder's client does: keystone auth,
    catalog, version discovery) and learn whether they may create secrets."""
    return barbican.call(lambda: rbac.check_create(barbican.session, endpoint=barbican.endpoint),
                         "checking secret-creation rights")


def ensure_can_create(barbican: Barbican, journal: jr.Journal, grant_creator: bool, admin_cloud: str | None,
                      check: rbac.CreateCheck | None = None) -> None:
    """Barbican reachable and the credentials may create secrets, before any change."""
    check = check or probe(barbican)
    if check.allowed:
        return
    role = check.missing_role or rbac.CREATE_ROLE[rbac.LEGACY]
    if grant_creator and admin_cloud:
        admin = auth.session_from_cloud(admin_cloud)
        rbac.grant_role(admin, check.user, check.project, role)
        journal.record("granted", user=check.user, project=check.project, role=role)
        log_event(LOG, logging.INFO, f"Granted role {role} to {check.user} in project {check.project}",
                  "granted_role", user=check.user, project=check.project, role=role)
        barbican.session.invalidate()  # the next token carries the new role
        if rbac.can_create_secrets(barbican.session, barbican.endpoint):
            return
        raise Forbidden(f"{check.user} still may not create secrets after the {role} role was granted",
                        "Check Barbican's policy ([oslo_policy] enforce_new_defaults) with 'keytools doctor'")
    LOG.error(MSG_ERROR, SECRET_FORBIDDEN, extra={"keytools_event": {"event": "item_error", "preflight": True,
                                                                   "error": SECRET_FORBIDDEN}})
    remedy = rbac.creator_remedy(check.user, check.project, role)
    note = "" if check.policy else (f" (under Barbican's new policy, enforce_new_defaults = True, the role is "
                                    f"'{rbac.CREATE_ROLE[rbac.NEW]}')")
    raise Forbidden(f"Error migrating encryption key: {SECRET_FORBIDDEN} (user {check.user}, project "
                    f"{check.project}; nothing was changed)",
                    f"Run '{remedy}'{note}, or rerun with --grant-creator --admin-cloud NAME")
