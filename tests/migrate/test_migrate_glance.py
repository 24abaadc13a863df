"""Glance images on the all-zeros cinder_encryption_key_id, against the real glance-api, Keystone
and Barbican of the sandbox: inventory across projects (hidden, deactivated, community, shared),
migration with a read ACL for the owner project's members, proven by castellan reads with each
user's own token, compare-and-swap, verify, and bad input."""

from __future__ import annotations

import pytest
from castellan import key_manager as castellan_km
from castellan import options as castellan_options
from castellan.common import exception as castellan_exc
from oslo_config import cfg
from oslo_context import context as oslo_context

from keytools import keymanager
from keytools.cinder_db import FIXED_KEY_ID
from keytools.errors import Forbidden, ServiceUnavailable
from keytools.project_members import ProjectMembers
from migrate import glance_migrate as gm
from migrate import journal as jr
from migrate.barbican import Barbican
from migrate.glance_images import GlanceImages
from tests.migrate import glance_helpers as gh

OTHER_ID = "6b3c0f49-6a6d-4f0e-9a55-0c4b7e2f1d11"


@pytest.fixture(scope="module")
def cloud(sandbox_with):
    return sandbox_with("glance")


@pytest.fixture(scope="module")
def tenants(cloud, admin_session):
    return gh.make_tenants(cloud, admin_session)


@pytest.fixture(scope="module")
def images(cloud, tenants, admin_session, creator_session):
    """Images in three projects: on the all-zeros id (active, queued, deactivated, hidden,
    community, shared), on another id, and without the property."""
    a, b = tenants.a1.session, tenants.b1.session
    made = {
        "alpha_active": gh.create_image(a, "alpha-active", upload=True),
        "alpha_queued": gh.create_image(a, "alpha-queued"),
        "alpha_deactivated": gh.create_image(a, "alpha-deact", upload=True),
        "beta_hidden": gh.create_image(b, "beta-hidden", os_hidden=True),
        "beta_community": gh.create_image(b, "beta-community", visibility="community"),
        "demo_shared": gh.create_image(creator_session, "demo-shared", visibility="shared"),
        "alpha_other": gh.create_image(a, "alpha-other", key_id=OTHER_ID),
        "beta_none": gh.create_image(b, "beta-none", key_id=None),
    }
    gh.deactivate(admin_session, made["alpha_deactivated"])
    return made


ZEROS = ("alpha_active", "alpha_queued", "alpha_deactivated", "beta_hidden", "beta_community", "demo_shared")


def _castellan(cloud):
    conf = cfg.ConfigOpts()
    castellan_options.set_defaults(conf, backend="barbican", auth_endpoint=cloud.keystone_url)
    return castellan_km.API(conf)


def _read_as(km, session, key_id: str) -> bytes:
    ctx = oslo_context.RequestContext(auth_token=session.get_token(), project_id=session.get_project_id())
    return km.get(ctx, key_id).get_encoded()


def test_inventory_sees_every_project_hidden_and_deactivated(images, admin_session, tenants):
    found = {i.id: i for i in GlanceImages(admin_session).fixed_key_images()}
    for name in ZEROS:
        assert images[name] in found, name
    assert images["alpha_other"] not in found and images["beta_none"] not in found
    assert found[images["alpha_deactivated"]].status == "deactivated"
    assert found[images["beta_hidden"]].os_hidden is True
    assert found[images["alpha_active"]].owner == tenants.alpha
    assert found[images["beta_community"]].visibility == "community"
    assert found[images["alpha_active"]].deletion_policy == "on_image_deletion"


def test_inventory_pages(images, admin_session, monkeypatch):
    from migrate import glance_images

    monkeypatch.setattr(glance_images, "PAGE", 2)
    found = [i.id for i in GlanceImages(admin_session).fixed_key_images()]
    assert len(found) == len(set(found)) and {images[n] for n in ZEROS} <= set(found)


def test_non_admin_and_unreachable_glance_refused(tenants, admin_session, cloud):
    with pytest.raises(Forbidden, match="has no admin role"):
        GlanceImages(tenants.a1.session).check_admin()
    from keytools.sandbox import processes

    dead = processes.free_ports(1)[0]
    with pytest.raises(ServiceUnavailable, match="cannot reach Glance"):
        GlanceImages(admin_session, endpoint=f"http://127.0.0.1:{dead}").check_admin()


def test_migrate_own_token_reads_and_verify(cloud, images, tenants, admin_session, creator_session,
                                            fixed_key_hex, tmp_path):
    key = bytes.fromhex(fixed_key_hex)
    glance = GlanceImages(admin_session)
    barbican = Barbican(creator_session)
    members = ProjectMembers(admin_session)
    path = gm.journal_path(tmp_path, glance)
    before = {n: gh.get_image(admin_session, images[n]) for n in images}
    with jr.Journal(path) as journal:
        outcome = gm.GlanceMigrator(glance, barbican, members, journal, key, concurrency=2).run()
    assert outcome.errors == 0 and outcome.remaining == 0 and outcome.migrated >= len(ZEROS)
    after = {n: gh.get_image(admin_session, images[n]) for n in images}
    new_ids = {n: after[n]["cinder_encryption_key_id"] for n in ZEROS}
    assert FIXED_KEY_ID not in new_ids.values() and len(set(new_ids.values())) == len(ZEROS)
    assert after["alpha_other"]["cinder_encryption_key_id"] == OTHER_ID
    assert "cinder_encryption_key_id" not in after["beta_none"]
    for n in images:  # only the key property changed
        assert after[n]["status"] == before[n]["status"] and after[n]["owner"] == before[n]["owner"]
        assert after[n]["cinder_encryption_key_deletion_policy" if n != "beta_none" else "name"] == \
            before[n]["cinder_encryption_key_deletion_policy" if n != "beta_none" else "name"]
    # Proof the way cinder reads it: castellan, each user's own token.
    km = _castellan(cloud)
    for person in (tenants.a1, tenants.a2):
        assert _read_as(km, person.session, new_ids["alpha_active"]) == key
        assert _read_as(km, person.session, new_ids["alpha_deactivated"]) == key
    assert _read_as(km, tenants.b1.session, new_ids["beta_hidden"]) == key
    with pytest.raises(castellan_exc.KeyManagerError, match="Secret retrieval attempt not allowed"):
        _read_as(km, tenants.b1.session, new_ids["alpha_active"])
    with pytest.raises(castellan_exc.KeyManagerError, match="Secret retrieval attempt not allowed"):
        _read_as(km, tenants.a1.session, new_ids["beta_hidden"])
    # The secret is stored as cinder stores keys.
    secret = keymanager.barbican_client(creator_session).secrets.get(
        f"{barbican.endpoint}/v1/secrets/{new_ids['alpha_active']}")
    assert (secret.algorithm, secret.bit_length, secret.secret_type) == ("AES", len(key) * 8, "symmetric")
    report = gm.verify(glance, barbican, members, key, path)
    assert report["problems"] == [] and report["checked"] >= len(ZEROS) and report["remaining"] == {"images": 0}
    # A rerun has nothing to do; the plan says so.
    with jr.Journal(path) as journal:
        again = gm.GlanceMigrator(glance, barbican, members, journal, key).run()
    assert again.total == 0 and again.migrated == 0 and again.orphans == []
    assert gm.plan(glance, members, path, len(key) * 8)["to_migrate"] == {"images": 0}


def test_verify_reports_tampering_and_late_members(cloud, tenants, admin_session, creator_session,
                                                   fixed_key_hex, tmp_path):
    key = bytes.fromhex(fixed_key_hex)
    glance, barbican, members = GlanceImages(admin_session), Barbican(creator_session), ProjectMembers(admin_session)
    img = gh.create_image(tenants.b1.session, "beta-verify")
    other = gh.create_image(tenants.b1.session, "beta-repointed")
    path = gm.journal_path(tmp_path, glance)
    with jr.Journal(path) as journal:
        gm.GlanceMigrator(glance, barbican, members, journal, key).run()
    gh.set_key(admin_session, other, OTHER_ID)  # someone re-pointed it afterwards
    from keystoneclient.v3 import client as ks_client

    keystone = ks_client.Client(session=admin_session, interface="public")
    member = next(r for r in keystone.roles.list(name="member") if r.name == "member")
    keystone.roles.grant(member, user=tenants.a1.id, project=tenants.beta)  # joins beta after the migration
    try:
        report = gm.verify(glance, barbican, ProjectMembers(admin_session), key, path)
    finally:
        keystone.roles.revoke(member, user=tenants.a1.id, project=tenants.beta)
    by_id = {p["id"]: p["problem"] for p in report["problems"]}
    assert "not the migrated secret" in by_id[other]
    assert "not in the read ACL" in by_id[img] and tenants.a1.id in by_id[img]


def test_compare_and_swap_loses_to_a_concurrent_change(cloud, tenants, admin_session, creator_session,
                                                       fixed_key_hex, tmp_path):
    """The image changed between listing and PATCH: it is left alone and the secret is an orphan."""
    key = bytes.fromhex(fixed_key_hex)
    glance, barbican, members = GlanceImages(admin_session), Barbican(creator_session), ProjectMembers(admin_session)
    img = gh.create_image(tenants.a1.session, "alpha-race")
    path = gm.journal_path(tmp_path, glance)
    real_create = barbican.create

    def create_then_someone_else_migrates(name, k):
        ref = real_create(name, k)
        if img in name:
            gh.set_key(admin_session, img, OTHER_ID)
        return ref

    barbican.create = create_then_someone_else_migrates
    with jr.Journal(path) as journal:
        outcome = gm.GlanceMigrator(glance, barbican, members, journal, key).run()
    assert gh.get_image(admin_session, img)["cinder_encryption_key_id"] == OTHER_ID
    assert outcome.lost == 1 and [o["id"] for o in outcome.orphans] == [img]
    barbican.create = real_create
    with jr.Journal(path) as journal:
        cleaned = gm.GlanceMigrator(glance, barbican, members, journal, key).run(cleanup=True)
    assert cleaned.deleted_orphans == 1
    assert not barbican.exists(outcome.orphans[0]["ref"])
