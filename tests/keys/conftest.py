"""The keys tests' world: a fresh project per test module with castellan-made volume keys, the
Cinder/Nova rows, Glance images and a Swift proxy config that reference them (see test_keys_reconcile)."""

from __future__ import annotations

import shutil
import time
import uuid

import pytest

from tests.helpers.db_seed import copy_nova, seed_instances
from tests.keys import keys_helpers as kh
from tests.migrate import glance_helpers as gh


@pytest.fixture(scope="module")
def world(sandbox_with, admin_session, tmp_path_factory, cinder_template, nova_template):
    cloud = sandbox_with("glance")
    w = kh.make_world(cloud, admin_session)
    w.missing_vol, w.missing_img = str(uuid.uuid4()), str(uuid.uuid4())  # never in Barbican
    tmp = tmp_path_factory.mktemp("keys-world")
    shutil.copyfile(cinder_template, tmp / "cinder.sqlite")
    cinder, nova = f"sqlite:///{tmp / 'cinder.sqlite'}", copy_nova(nova_template, tmp / "nova")
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
    expired_at = time.monotonic() + 3.5
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
    time.sleep(max(0.0, expired_at - time.monotonic()))  # the expiring secret has expired
    w.args = ["--barbican-db-url", kh.barbican_url(cloud), "--db-url", cinder, "--nova-api-db-url", nova["api"],
              "--glance-cloud", "sandbox-admin", "--swift-proxy-config", str(proxy), "--project", w.project,
              "--min-age", "0"]
    w.cinder, w.nova, w.tmp, w.sandbox, w.extra_orphans = cinder, nova, tmp, cloud, set()
    return w


