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

import json

from keytools import keymanager
from keytools.cinder_db import FIXED_KEY_ID
from keytools.errors import Forbidden, ServiceUnavailable
from keytools.glance_images import GlanceImages
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
    from keytools import glance_images

    monkeypatch.setattr(glance_images, "PAGE", 2)
    found = [i.id for i in GlanceImages(admin_session).fixed_key_images()]
    assert len(found) == len(set(found)) and {images[n] for n in ZEROS} <= set(found)


def _migrate(kt, cmd: str, key_file, state, *extra: str, cloud: str = "sandbox-admin"):
    return kt("--os-cloud", "sandbox-demo", "migrate", cmd, "--service", "glance", "--glance-cloud", cloud,
              "--fixed-key-file", str(key_file), "--state-dir", str(state), *extra)


def test_non_admin_and_unreachable_glance_refused(kt, cloud, tenants, admin_session, key_file, tmp_path):
    with pytest.raises(Forbidden, match="has no admin role"):
        GlanceImages(tenants.a1.session).check_admin()
    from keytools.sandbox import processes

    dead = processes.free_ports(1)[0]
    with pytest.raises(ServiceUnavailable, match="cannot reach Glance"):
        GlanceImages(admin_session, endpoint=f"http://127.0.0.1:{dead}").check_admin()
    img = gh.create_image(tenants.a1.session, "alpha-refused")
    for cmd in ("plan", "run", "verify"):
        res = _migrate(kt, cmd, key_file, tmp_path / "st", cloud="sandbox-demo")  # demo: member, not admin
        assert res.exit_code == 5, res.output
        assert "has no admin role" in res.stderr and "Traceback" not in res.output
        assert len(res.stderr.strip().splitlines()) == 1
        res = _migrate(kt, cmd, key_file, tmp_path / "st", "--glance-endpoint", f"http://127.0.0.1:{dead}")
        assert res.exit_code == 4, res.output
        assert "cannot reach Glance" in res.stderr and "Traceback" not in res.output
    assert gh.get_image(admin_session, img)["cinder_encryption_key_id"] == FIXED_KEY_ID  # nothing changed
    assert not (tmp_path / "st").exists() or not any(
        "intent" in p.read_text() for p in (tmp_path / "st").iterdir())
    res = kt("--os-cloud", "sandbox-demo", "migrate", "run", "--service", "glance", "--fixed-key-file",
             str(key_file))
    assert res.exit_code == 2 and "--glance-cloud" in res.stderr
    res = kt("fixed-key", "inventory", "--glance-cloud", "sandbox-demo", "--ignore-service", "cinder,nova")
    assert res.exit_code == 1 and "glance: NOT SEEN" in res.stdout and "has no admin role" in res.stdout


def test_inventory_command_counts_glance_per_project(kt, images, tenants, tmp_path):
    res = kt("fixed-key", "inventory", "--glance-cloud", "sandbox-admin", "--ignore-service", "cinder,nova",
             "-f", "json")
    inv = json.loads(res.stdout)
    if inv["total"] == 0:  # already migrated by an earlier test of this module
        pytest.skip("images already migrated")
    per_project = {r["project"]: r["count"] for r in inv["references"] if r["service"] == "glance"}
    assert per_project[tenants.alpha] >= 3 and per_project[tenants.beta] >= 2
    assert res.exit_code == 1 and "glance" in inv["seen"]
    res = kt("migrate", "status", "--glance-cloud", "sandbox-admin", "-f", "json")
    assert res.exit_code == 0, res.output
    status = json.loads(res.stdout)["glance"]
    assert status["remaining"]["images"] == inv["per_service"]["glance"]
    assert {r["project"]: r["rows"] for r in status["by_project"]}[tenants.alpha] == per_project[tenants.alpha]
    res = kt("migrate", "finish", "--service", "glance", "--glance-cloud", "sandbox-admin")
    assert res.exit_code == 6 and "image(s) still use the all-zeros key id" in res.stderr, res.output
    conf = tmp_path / "etc" / "cinder" / "cinder.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text("[key_manager]\nbackend = barbican\nfixed_key = " + "ab" * 32 + "\n")
    res = kt("fixed-key", "retire", "--glance-cloud", "sandbox-admin", "--ignore-service", "cinder,nova",
             "--backup-dir", str(tmp_path / "bk"), str(tmp_path / "etc"))
    assert res.exit_code == 6 and "glance images" in res.stderr, res.output
    assert "fixed_key = " in conf.read_text()  # nothing retired


def test_migrate_own_token_reads_and_verify(kt, cloud, images, tenants, admin_session, creator_session,
                                            fixed_key_hex, key_file, tmp_path):
    key = bytes.fromhex(fixed_key_hex)
    state = tmp_path / "st"
    before = {n: gh.get_image(admin_session, images[n]) for n in images}
    res = _migrate(kt, "plan", key_file, state)
    assert res.exit_code == 0, res.output
    assert "every member of the image's owner project (listed from Keystone at migration time" in res.stdout
    res = _migrate(kt, "run", key_file, state, "--concurrency", "2", "-f", "json")
    assert res.exit_code == 0, res.output
    outcome = json.loads(res.stdout)
    assert outcome["service"] == "glance" and outcome["errors"] == 0
    assert outcome["remaining"] == {"images": 0} and outcome["migrated"]["images"] >= len(ZEROS)
    after = {n: gh.get_image(admin_session, images[n]) for n in images}
    new_ids = {n: after[n]["cinder_encryption_key_id"] for n in ZEROS}
    assert FIXED_KEY_ID not in new_ids.values() and len(set(new_ids.values())) == len(ZEROS)
    assert after["alpha_other"]["cinder_encryption_key_id"] == OTHER_ID
    assert "cinder_encryption_key_id" not in after["beta_none"]
    for n in images:  # only the key property changed
        assert (after[n]["status"], after[n]["owner"], after[n]["visibility"], after[n]["os_hidden"]) == \
            (before[n]["status"], before[n]["owner"], before[n]["visibility"], before[n]["os_hidden"])
        assert after[n].get("cinder_encryption_key_deletion_policy") == \
            before[n].get("cinder_encryption_key_deletion_policy")
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
    endpoint = keymanager.barbican_endpoint(creator_session)
    secret = keymanager.barbican_client(creator_session).secrets.get(f"{endpoint}/v1/secrets/{new_ids['alpha_active']}")
    assert (secret.algorithm, secret.bit_length, secret.secret_type) == ("AES", len(key) * 8, "symmetric")
    res = _migrate(kt, "verify", key_file, state, "-f", "json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["problems"] == [] and report["checked"] >= len(ZEROS) and report["remaining"] == {"images": 0}
    # A rerun has nothing to do; the plan says so; the inventory is clean for Glance.
    res = _migrate(kt, "run", key_file, state, "-f", "json")
    assert res.exit_code == 0 and json.loads(res.stdout)["total"] == 0
    res = _migrate(kt, "plan", key_file, state, "-f", "json")
    assert json.loads(res.stdout)["to_migrate"] == {"images": 0}
    res = kt("fixed-key", "inventory", "--glance-cloud", "sandbox-admin", "--ignore-service", "cinder,nova")
    assert res.exit_code == 0 and "glance: 0 reference(s)" in res.stdout
    for text in (res.output,):
        assert fixed_key_hex not in text


def test_verify_reports_tampering_and_late_members(kt, cloud, tenants, admin_session, key_file, tmp_path):
    img = gh.create_image(tenants.b1.session, "beta-verify")
    other = gh.create_image(tenants.b1.session, "beta-repointed")
    state = tmp_path / "st"
    assert _migrate(kt, "run", key_file, state).exit_code == 0
    gh.set_key(admin_session, other, OTHER_ID)  # someone re-pointed it afterwards
    from keystoneclient.v3 import client as ks_client

    keystone = ks_client.Client(session=admin_session, interface="public")
    member = next(r for r in keystone.roles.list(name="member") if r.name == "member")
    keystone.roles.grant(member, user=tenants.a1.id, project=tenants.beta)  # joins beta after the migration
    try:
        res = _migrate(kt, "verify", key_file, state, "-f", "json")
    finally:
        keystone.roles.revoke(member, user=tenants.a1.id, project=tenants.beta)
    assert res.exit_code == 1, res.output
    by_id = {p["id"]: p["problem"] for p in json.loads(res.stdout)["problems"]}
    assert "not the migrated secret" in by_id[other]
    assert "not in the read ACL" in by_id[img] and tenants.a1.id in by_id[img]


def test_compare_and_swap_loses_to_a_concurrent_change(cloud, tenants, admin_session, creator_session,
                                                       fixed_key_hex, tmp_path, monkeypatch):
    """The image changed between listing and PATCH: it is left alone and the secret is an orphan."""
    from keytools.keystone_members import ProjectMembers
    from migrate import engine
    from migrate import journal as jr
    from migrate.barbican import Barbican
    from migrate.config import Settings
    from migrate.glance import GlanceConsumer

    settings = Settings(db_url="", fixed_key=bytes.fromhex(fixed_key_hex), backend="barbican")
    consumer = GlanceConsumer(GlanceImages(admin_session), ProjectMembers(admin_session))
    barbican = Barbican(creator_session)
    img = gh.create_image(tenants.a1.session, "alpha-race")
    path = jr.journal_path(tmp_path, consumer.identity())
    real_create = barbican.create

    def create_then_someone_else_migrates(name, k):
        ref = real_create(name, k)
        if img in name:
            gh.set_key(admin_session, img, OTHER_ID)
        return ref

    monkeypatch.setattr(barbican, "create", create_then_someone_else_migrates)
    with jr.Journal(path) as journal:
        outcome = engine.Migrator(settings, consumer, barbican, journal, 2, progress=False).run(engine.Scope())
    assert gh.get_image(admin_session, img)["cinder_encryption_key_id"] == OTHER_ID
    assert outcome.lost == 1 and [o["id"] for o in outcome.orphans] == [img]
    monkeypatch.setattr(barbican, "create", real_create)
    with jr.Journal(path) as journal:
        cleaned = engine.Migrator(settings, consumer, barbican, journal, 2, progress=False).run(
            engine.Scope(), cleanup=True)
    assert cleaned.deleted_orphans == 1
    assert not barbican.exists(outcome.orphans[0]["ref"])


def test_second_run_on_the_same_glance_is_refused(kt, cloud, tenants, admin_session, key_file, tmp_path):
    """Glance cannot compare-and-swap, so one run per Glance and state dir: the second gets exit 6."""
    from keytools.keystone_members import ProjectMembers
    from migrate import journal as jr
    from migrate.glance import GlanceConsumer

    img = gh.create_image(tenants.a1.session, "alpha-locked")
    consumer = GlanceConsumer(GlanceImages(admin_session), ProjectMembers(admin_session))
    state = tmp_path / "st"
    with consumer.exclusive(jr.journal_path(state, consumer.identity())):
        res = _migrate(kt, "run", key_file, state)
        assert res.exit_code == 6 and "another 'keytools migrate run'" in res.stderr, res.output
        assert gh.get_image(admin_session, img)["cinder_encryption_key_id"] == FIXED_KEY_ID
    res = _migrate(kt, "run", key_file, state)  # lock released: it runs
    assert res.exit_code == 0, res.output
    assert gh.get_image(admin_session, img)["cinder_encryption_key_id"] != FIXED_KEY_ID
