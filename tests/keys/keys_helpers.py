"""A small world of keys for the reconcile/cleanup tests: a fresh project with its own users,
volume keys made by castellan exactly as Cinder makes them (orders), and the service rows
(Cinder schema from cinder-manage, Nova from nova-manage) that point at them."""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from dataclasses import dataclass, field

import sqlalchemy as sa
from barbicanclient import client as barbican_client
from castellan import key_manager as castellan_km
from castellan import options as castellan_options
from keystoneauth1 import loading
from keystoneauth1 import session as ks_session
from keystoneclient.v3 import client as ks_client
from oslo_config import cfg
from oslo_context import context as oslo_context

from keytools.sandbox import configs

PROXY_CONF = """[DEFAULT]
swift_dir = /nonexistent

[pipeline:main]
pipeline = catch_errors proxy-logging kms_keymaster encryption proxy-logging proxy-server

[filter:kms_keymaster]
use = egg:swift#kms_keymaster
auth_endpoint = {auth}
username = swift
password = not-used-here
project_name = service
key_id = {k1}
key_id_2 = {k2}
active_root_secret_id = 2

[filter:encryption]
use = egg:swift#encryption

[filter:catch_errors]
use = egg:swift#catch_errors

[filter:proxy-logging]
use = egg:swift#proxy_logging

[app:proxy-server]
use = egg:swift#proxy
"""


@dataclass
class Person:
    id: str
    name: str
    project: str
    session: ks_session.Session


@dataclass
class World:
    project: str
    other_project: str
    owner: Person  # creator in project
    reader: Person  # member of the other project, reads through an ACL
    made: dict[str, str] = field(default_factory=dict)  # label -> secret id
    orders: dict[str, str] = field(default_factory=dict)  # label -> order id


def person(sandbox, keystone, name_prefix: str, project, roles: list) -> Person:
    password = secrets.token_urlsafe(12)
    user = keystone.users.create(name=f"{name_prefix}-{uuid.uuid4().hex[:6]}", password=password, domain="default",
                                 default_project=project)
    for role in roles:
        keystone.roles.grant(role, user=user, project=project)
    plugin = loading.get_plugin_loader("password").load_from_options(
        auth_url=sandbox.keystone_url, username=user.name, password=password, project_id=project.id,
        user_domain_name="Default")
    return Person(user.id, user.name, project.id, ks_session.Session(auth=plugin))


def make_world(sandbox, admin_session) -> World:
    keystone = ks_client.Client(session=admin_session, interface="public")
    roles = {r.name: r for r in keystone.roles.list()}
    tag = uuid.uuid4().hex[:6]
    p = keystone.projects.create(name=f"kt-keys-{tag}", domain="default")
    q = keystone.projects.create(name=f"kt-keys-other-{tag}", domain="default")
    grant = [roles[n] for n in ("creator", "member") if n in roles]
    keystone.roles.grant(roles["admin"], user=admin_session.get_user_id(), project=p)  # cleanup acts as admin
    owner = person(sandbox, keystone, "kt-owner", p, grant)
    reader = person(sandbox, keystone, "kt-reader", q, grant)
    return World(p.id, q.id, owner, reader)


def castellan(sandbox):
    conf = cfg.ConfigOpts()
    castellan_options.set_defaults(conf, backend="barbican", auth_endpoint=sandbox.keystone_url)
    return castellan_km.API(conf)


def context(p: Person) -> oslo_context.RequestContext:
    return oslo_context.RequestContext(auth_token=p.session.get_token(), project_id=p.project, user_id=p.id)


def barbican(p: Person):
    return barbican_client.Client(session=p.session)


def secret_id(ref: str) -> str:
    return ref.rstrip("/").rsplit("/", 1)[-1]


def volume_key(km, p: Person) -> str:
    """cinder.volume.volume_utils.create_encryption_key: castellan create_key, 'aes', 256 bits."""
    return km.create_key(context(p), algorithm="aes", length=256)


def old_release_key(p: Person) -> tuple[str, str]:
    """What castellan before 5.6 did (and 5.6+ where the user may not delete orders): an order
    left behind. Returns (secret id, order id)."""
    b = barbican(p)
    order = b.orders.create_key(algorithm="aes", bit_length=256)
    ref = order.submit()
    got = b.orders.get(ref)
    return secret_id(got.secret_ref), secret_id(ref)


def store(p: Person, name: str | None = None, secret_type: str = "symmetric", expiration: str | None = None,
          payload: bytes | None = None) -> str:
    b = barbican(p)
    import base64

    data = payload or (b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
                       if secret_type == "certificate" else secrets.token_bytes(32))
    kw: dict = {"payload": base64.b64encode(data).decode(), "payload_content_type": "application/octet-stream",
                "payload_content_encoding": "base64"}
    if secret_type == "symmetric":
        kw.update(algorithm="aes", bit_length=256)
    s = b.secrets.create(name=name, secret_type=secret_type, expiration=expiration, **kw)
    return secret_id(s.store())


def set_acl(p: Person, sid: str, users: list[str], project_access: bool) -> None:
    b = barbican(p)
    ref = f"{p.session.get_endpoint(service_type='key-manager', interface='public').rstrip('/')}/v1/secrets/{sid}"
    acl = b.acls.create(entity_ref=ref, users=users, project_access=project_access)
    acl.submit()


def expiring(seconds: float) -> str:
    return (dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S")


def barbican_url(sandbox) -> str:
    return configs.db_url(sandbox.state, sandbox.config, "barbican")


def insert_volume(db_url: str, key_id: str | None, user: str, project: str, deleted: bool = False,
                  table: str = "volumes") -> str:
    """One Cinder row (schema from cinder-manage) on ``key_id``."""
    from tests.helpers.db_seed import seed

    made = seed(db_url, volumes=1 if table == "volumes" else 0, backups=1 if table == "backups" else 0,
                user_id=user, project_id=project, key_id=key_id, deleted=deleted)
    return (made.volumes or made.backups)[0]


def delete_volume_row(db_url: str, volume_id: str) -> None:
    """Cinder's soft delete of the volume row (deleted = true, deleted_at set)."""
    eng = sa.create_engine(db_url)
    try:
        with eng.begin() as conn:
            t = sa.Table("volumes", sa.MetaData(), autoload_with=conn)
            conn.execute(sa.update(t).where(t.c.id == volume_id).values(deleted=True, status="deleted",
                                                                        deleted_at=dt.datetime.utcnow()))
    finally:
        eng.dispose()


def add_vtpm(cell_url: str, instance_uuid: str, secret: str) -> None:
    """nova's libvirt driver's system metadata row for a vTPM secret."""
    eng = sa.create_engine(cell_url)
    try:
        with eng.begin() as conn:
            t = sa.Table("instance_system_metadata", sa.MetaData(), autoload_with=conn)
            conn.execute(sa.insert(t).values(instance_uuid=instance_uuid, key="vtpm_secret_uuid", value=secret,
                                             deleted=0))
    finally:
        eng.dispose()
