"""Real Keystone projects and users and real Glance images for the Glance migration tests.

Images are created through glance-api with each user's own token (so the owner is their project),
as cinder's upload-to-image leaves them: ``cinder_encryption_key_id`` plus
``cinder_encryption_key_deletion_policy = on_image_deletion``.
"""

from __future__ import annotations

import io
import json
import secrets
import uuid
from dataclasses import dataclass, field

from keystoneauth1 import loading
from keystoneauth1 import session as ks_session
from keystoneclient.v3 import client as ks_client

from keytools.cinder_db import FIXED_KEY_ID

PATCH = "application/openstack-images-v2.1-json-patch"


@dataclass
class Person:
    name: str
    id: str
    project_id: str
    session: ks_session.Session


@dataclass
class Tenants:
    """Two fresh projects: 'alpha' with two members, 'beta' with one."""

    alpha: str
    beta: str
    a1: Person
    a2: Person
    b1: Person
    cleanup: list = field(default_factory=list)


def user_session(keystone_url: str, name: str, password: str, project_id: str) -> ks_session.Session:
    plugin = loading.get_plugin_loader("password").load_from_options(
        auth_url=keystone_url, username=name, password=password, project_id=project_id,
        user_domain_name="Default")
    return ks_session.Session(auth=plugin)


def make_tenants(sandbox, admin_session) -> Tenants:
    keystone = ks_client.Client(session=admin_session, interface="public")
    member = next(r for r in keystone.roles.list(name="member") if r.name == "member")
    tag = uuid.uuid4().hex[:6]
    projects = {}
    for p in ("alpha", "beta"):
        projects[p] = keystone.projects.create(name=f"kt-{p}-{tag}", domain="default")
    people = {}
    for uname, p in (("a1", "alpha"), ("a2", "alpha"), ("b1", "beta")):
        password = secrets.token_urlsafe(12)
        user = keystone.users.create(name=f"kt-{uname}-{tag}", password=password, domain="default",
                                     default_project=projects[p])
        keystone.roles.grant(member, user=user, project=projects[p])
        people[uname] = Person(user.name, user.id, projects[p].id,
                               user_session(sandbox.keystone_url, user.name, password, projects[p].id))
    return Tenants(projects["alpha"].id, projects["beta"].id, people["a1"], people["a2"], people["b1"])


def _glance(session: ks_session.Session) -> str:
    return session.get_endpoint(service_type="image", interface="public").rstrip("/")


def create_image(session: ks_session.Session, name: str, key_id: str | None = FIXED_KEY_ID,
                 upload: bool = False, **extra: object) -> str:
    """An image as cinder's upload-to-image makes it (key property + deletion policy)."""
    body: dict[str, object] = {"name": name, "disk_format": "raw", "container_format": "bare", **extra}
    if key_id is not None:
        body["cinder_encryption_key_id"] = key_id
        body["cinder_encryption_key_deletion_policy"] = "on_image_deletion"
    base = _glance(session)
    resp = session.post(f"{base}/v2/images", json=body)
    image_id = resp.json()["id"]
    if upload:
        session.put(f"{base}/v2/images/{image_id}/file", data=io.BytesIO(b"x" * 1024),
                    headers={"Content-Type": "application/octet-stream"})
    return image_id


def deactivate(admin_session: ks_session.Session, image_id: str) -> None:
    admin_session.post(f"{_glance(admin_session)}/v2/images/{image_id}/actions/deactivate")


def get_image(session: ks_session.Session, image_id: str) -> dict:
    return session.get(f"{_glance(session)}/v2/images/{image_id}").json()


def set_key(session: ks_session.Session, image_id: str, key_id: str) -> None:
    session.patch(f"{_glance(session)}/v2/images/{image_id}", headers={"Content-Type": PATCH},
                  data=json.dumps([{"op": "replace", "path": "/cinder_encryption_key_id", "value": key_id}]))


def delete_image(session: ks_session.Session, image_id: str) -> None:
    session.delete(f"{_glance(session)}/v2/images/{image_id}", raise_exc=False)
