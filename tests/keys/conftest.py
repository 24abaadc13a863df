"""The keys tests' world: a fresh project per test module with castellan-made volume keys, the
Cinder/Nova rows, Glance images and a Swift proxy config that reference them (see test_keys_reconcile)."""

from __future__ import annotations

import shutil
import time
import uuid

import sqlalchemy as sa

import pytest

from keytools.cinder_db import sync_schema
from keytools.nova_db import create_databases
from tests.helpers.db_seed import seed_instances
from tests.keys import keys_helpers as kh
from tests.migrate import glance_helpers as gh


@pytest.fixture(scope="session")
def schemas(tmp_path_factory):
    """Cinder and Nova (api, cell0, cell1) schemas made once by cinder-manage and nova-manage."""
    tmp = tmp_path_factory.mktemp("keys-schemas")
    sync_schema(f"sqlite:///{tmp / 'cinder.sqlite'}")
    nova = {n: f"sqlite:///{tmp / f'nova_{n}.sqlite'}" for n in ("api", "cell0", "cell1")}
    create_databases(nova["api"], nova["cell0"], {"cell1": nova["cell1"]})
    return tmp


def _copy(schemas, tmp):
    """Fresh copies for one world; cell_mappings keep pointing at the template, so rewrite them."""
    for f in schemas.iterdir():
        shutil.copyfile(f, tmp / f.name)
    eng = sa.create_engine(f"sqlite:///{tmp / 'nova_api.sqlite'}")
    with eng.begin() as conn:
        for name in ("cell0", "cell1"):
            conn.execute(sa.text("UPDATE cell_mappings SET database_connection = :new WHERE database_connection = :old"),
                         {"new": f"sqlite:///{tmp / f'nova_{name}.sqlite'}",
                          "old": f"sqlite:///{schemas / f'nova_{name}.sqlite'}"})
    eng.dispose()
    return f"sqlite:///{tmp / 'cinder.sqlite'}", {n: f"sqlite:///{tmp / f'nova_{n}.sqlite'}"
                                                  for n in ("api", "cell0", "cell1")}


@pytest.fixture(scope="module")
def world(sandbox_with, admin_session, tmp_path_factory, schemas):
    cloud = sandbox_with("glance")
    w = kh.make_world(cloud, admin_session)
    w.missing_vol, w.missing_img = str(uuid.uuid4()), str(uuid.uuid4())  # never in Barbican
    tmp = tmp_path_factory.mktemp("keys-world")
    cinder, nova = _copy(schemas, tmp)
    km = kh.castellan(cloud)
    o, r, m = w.owner, w.reader, w.made
    # Volume keys as Cinder makes them (castellan orders; under the legacy policy the user may
    # not delete the order, so castellan leaves it).
    m["live"] = kh.volume_key(km, o)
    kh.insert_volume(cinder, m["live"], o.id, w.project)
    m["gone"] = kh.volume_key(km, o)
    gone_vol = kh.insert_volume(cinder, m["gone"], o.id, w.project)
    kh.delete_volume_row(cinder, gone_vol)  # Cinder's delete: row soft-deleted, then its key
    km.delete(kh.context(o), m["gone"])
    m["handdel"] = kh.store(o)
    kh.insert_volume(cinder, m["handdel"], o.id, w.project)
    kh.barbican(o).secrets.delete(f"{o.session.get_endpoint(service_type='key-manager')}/v1/secrets/{m['handdel']}")
    m["expired"] = kh.store(o, expiration=kh.expiring(3))
    kh.insert_volume(cinder, m["expired"], o.id, w.project)
    m["lostacl"] = kh.store(o)
    kh.set_acl(o, m["lostacl"], [o.id], project_access=False)  # the reader's user id is no longer in it
    kh.insert_volume(cinder, m["lostacl"], r.id, w.other_project, table="backups")
    kh.insert_volume(cinder, w.missing_vol, o.id, w.project)
    # Glance: a signed image's certificate in Barbican, an image on a key that does not exist.
    m["cert"] = kh.store(o, secret_type="certificate")
    w.made_images = {"signed": gh.create_image(o.session, "kt-signed", key_id=None,
                                               img_signature_certificate_uuid=m["cert"]),
                     "missing": gh.create_image(o.session, "kt-missing-key", key_id=w.missing_img)}
    # Swift: two root secrets in a proxy config, the second deleted by hand.
    m["swift1"] = kh.store(o, name="swift-root-secret")
    m["swift2"] = kh.store(o, name="swift-root-secret-2")
    kh.barbican(o).secrets.delete(f"{o.session.get_endpoint(service_type='key-manager')}/v1/secrets/{m['swift2']}")
    proxy = tmp / "proxy-server.conf"
    proxy.write_text(kh.PROXY_CONF.format(auth=cloud.keystone_url, k1=m["swift1"], k2=m["swift2"]))
    # Nova: an instance with an ephemeral key, one with a vTPM secret.
    m["ephemeral"] = kh.volume_key(km, o)
    seed_instances(nova["cell1"], 1, key_id=m["ephemeral"], user_id=o.id, project_id=w.project)
    m["vtpm"] = kh.store(o, secret_type="passphrase")
    vm = seed_instances(nova["cell1"], 1, key_id=None, user_id=o.id, project_id=w.project)[0]
    kh.add_vtpm(nova["cell1"], vm, m["vtpm"])
    # Orphans: a castellan key never used, a migrated key, a certificate, an old release's key.
    m["orph_castellan"] = kh.volume_key(km, o)
    m["orph_migrated"] = kh.store(o, name="keytools-migrate:volumes:" + str(uuid.uuid4()))
    m["orph_cert"] = kh.store(o, secret_type="certificate")
    m["orph_old"], w.orders["orph_old"] = kh.old_release_key(o)
    time.sleep(3.5)  # the expiring secret expires
    w.args = ["--barbican-db-url", kh.barbican_url(cloud), "--db-url", cinder, "--nova-api-db-url", nova["api"],
              "--glance-cloud", "sandbox-admin", "--swift-proxy-config", str(proxy), "--project", w.project,
              "--min-age", "0"]
    w.cinder, w.nova, w.tmp, w.sandbox, w.extra_orphans = cinder, nova, tmp, cloud, set()
    return w


