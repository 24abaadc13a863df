"""Populate the sandbox's Keystone like a real deployment: projects, users, roles, catalog.

Idempotent (find-or-create everywhere): an ``up`` interrupted half-way completes on the next run.
"""

from __future__ import annotations

from dataclasses import dataclass

from keystoneauth1 import loading
from keystoneauth1 import session as ks_session
from keystoneclient.v3 import client as ks_client

from keytools.sandbox.configs import keystone_url
from keytools.sandbox.state import SandboxConfig

PROJECTS = ("admin", "service", "demo")
ROLES = ("admin", "member", "reader", "creator", "observer", "audit", "service")
SERVICE_USERS = ("cinder", "nova", "glance", "swift", "barbican")
USERS = ("admin", *SERVICE_USERS, "demo")


@dataclass(frozen=True)
class Grant:
    user: str
    project: str
    role: str


# Service users get only the 'service' role (token validation). 'cinder' deliberately lacks
# creator in 'service', so the documented missing-role failure can be shown and fixed.
# 'demo' has creator (legacy policy) and member (today's defaults) so it creates secrets in both.
GRANTS = (
    Grant("admin", "admin", "admin"),
    Grant("admin", "service", "admin"),
    Grant("admin", "demo", "admin"),
    *(Grant(user, "service", "service") for user in SERVICE_USERS),
    Grant("demo", "demo", "creator"),
    Grant("demo", "demo", "member"),
)


def admin_session(cfg: SandboxConfig, project: str = "admin") -> ks_session.Session:
    """The sandbox admin, scoped to ``project`` (secrets it stores belong to that project)."""
    plugin = loading.get_plugin_loader("password").load_from_options(
        auth_url=keystone_url(cfg), username="admin", password=cfg.passwords["admin"],
        project_name=project, user_domain_name="Default", project_domain_name="Default")
    return ks_session.Session(auth=plugin)


def _find(manager, name: str, **filters):
    for item in manager.list(name=name, **filters):
        if item.name == name:
            return item
    return None


def populate(cfg: SandboxConfig) -> None:
    """Projects, roles, users and grants (catalog entries come from each ServiceSpec)."""
    keystone = ks_client.Client(session=admin_session(cfg), interface="public")
    domain = keystone.domains.get("default")
    projects = {name: _find(keystone.projects, name, domain=domain) or
                keystone.projects.create(name=name, domain=domain, description=f"sandbox {name}")
                for name in PROJECTS}
    roles = {name: _find(keystone.roles, name) or keystone.roles.create(name=name) for name in ROLES}
    users = {}
    for name in USERS:
        user = _find(keystone.users, name, domain=domain)
        if user is None:
            user = keystone.users.create(name=name, domain=domain, password=cfg.passwords[name],
                                         default_project=projects["service" if name in SERVICE_USERS
                                                                  else name if name in PROJECTS else "demo"])
        users[name] = user
    for grant in GRANTS:
        keystone.roles.grant(roles[grant.role], user=users[grant.user], project=projects[grant.project])


def register_endpoint(keystone, name: str, service_type: str, endpoint_url: str) -> None:
    service = next((s for s in keystone.services.list(type=service_type) if s.name == name), None)
    if service is None:
        service = keystone.services.create(name=name, type=service_type, description=f"sandbox {name}")
    existing = {e.interface: e for e in keystone.endpoints.list(service=service)}
    for interface in ("public", "internal", "admin"):
        endpoint = existing.get(interface)
        if endpoint is None:
            keystone.endpoints.create(service=service, url=endpoint_url, interface=interface,
                                      region="RegionOne")
        elif endpoint.url != endpoint_url:
            keystone.endpoints.update(endpoint, url=endpoint_url)


def clouds_yaml(cfg: SandboxConfig) -> dict:
    """One cloud per user: sandbox-admin, sandbox-cinder, sandbox-demo, ..."""
    clouds = {}
    for user in USERS:
        project = "admin" if user == "admin" else "demo" if user == "demo" else "service"
        clouds[f"sandbox-{user}"] = {
            "auth": {"auth_url": keystone_url(cfg), "username": user, "password": cfg.passwords[user],
                     "project_name": project, "user_domain_name": "Default",
                     "project_domain_name": "Default"},
            "region_name": "RegionOne",
            "identity_api_version": 3,
            "interface": "public",
        }
    return {"clouds": clouds}
