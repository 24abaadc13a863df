"""``fixed-key exposure`` against a Cinder schema from cinder-manage, Nova cells from nova-manage and the
sandbox's Barbican: objects on the all-zeros id and objects on a migrated secret holding fixed_key are
exposed, a freshly keyed one is not; secrets that cannot be read and services not given are NOT SEEN."""

from __future__ import annotations

import json
import secrets
import uuid

from keytools import keymanager
from keytools.cinder_db import FIXED_KEY_ID
from tests.helpers.db_seed import seed, seed_instances
from tests.migrate.conftest import FIXED_KEY_HEX, cinder_url, key_file, nova_dbs, write_cinder_conf  # noqa: F401

__all__ = ["cinder_url", "key_file", "nova_dbs"]  # fixtures (the templates are tests/conftest.py's)


def _secret(client, payload: bytes) -> str:
    ref = client.secrets.create(name="exposure-test", algorithm="AES", bit_length=len(payload) * 8,
                                secret_type="symmetric", payload=payload).store()
    return ref.rpartition("/")[2]


def test_exposure_counts_zeros_and_migrated_secrets_per_class(kt, sandbox, creator_session, cinder_url, nova_dbs,
                                                               key_file, tmp_path):
    client = keymanager.barbican_client(creator_session)
    fixed = bytes.fromhex(FIXED_KEY_HEX)
    migrated, fresh = _secret(client, fixed), _secret(client, secrets.token_bytes(32))
    seed(cinder_url, volumes=1, snapshots_per_volume=1)  # all-zeros id
    seed(cinder_url, volumes=1, snapshots_per_volume=1, backups=1, key_id=migrated, host="ctl-1@lvm#lvm",
         backup_host="ctl-1", project_id="p-two")
    seed(cinder_url, volumes=1, key_id=fresh)  # re-keyed: not exposed
    seed(cinder_url, volumes=1, key_id=migrated, deleted=True)  # deleted: not counted
    seed_instances(nova_dbs["cell1"], 2, host="cmp-1")
    seed_instances(nova_dbs["cell1"], 1, key_id=migrated, host="cmp-1")
    seed_instances(nova_dbs["cell2"], 1, key_id=fresh, host="cmp-2")
    args = ["--os-cloud", "sandbox-demo", "fixed-key", "exposure", "--db-url", cinder_url, "--nova-api-db-url",
            nova_dbs["api"], "--fixed-key-file", str(key_file)]
    r = kt(*args, "--ignore-service", "glance", "-f", "json")
    assert r.exit_code == 1, r.output
    doc = json.loads(r.stdout)
    got = {(o["service"], o["kind"], o["location"], o["via"]): (o["count"], o["class"]) for o in doc["objects"]}
    assert got == {
        ("cinder", "volumes", "ctl-0@lvm#lvm", "all-zeros id"): (1, "re-keyable"),
        ("cinder", "volumes", "ctl-1@lvm#lvm", "secret holds fixed_key"): (1, "re-keyable"),
        ("cinder", "snapshots", "ctl-0@lvm#lvm", "all-zeros id"): (1, "until deleted"),
        ("cinder", "snapshots", "ctl-1@lvm#lvm", "secret holds fixed_key"): (1, "until deleted"),
        ("cinder", "backups", "ctl-1", "secret holds fixed_key"): (1, "until deleted or re-made"),
        ("nova", "instances", "cell1/cmp-1", "all-zeros id"): (2, "until rebuilt"),
        ("nova", "instances", "cell1/cmp-1", "secret holds fixed_key"): (1, "until rebuilt"),
    }, got
    assert doc["exposed"] == 8 and doc["secrets_checked"] == 2 and doc["secrets_holding_fixed_key"] == 1
    assert doc["complete"] and doc["read_with"] == "--os-cloud sandbox-demo"
    assert doc["ignored_services"] == ["glance"]
    assert "8 object(s) still opened by fixed_key" in r.stderr
    assert FIXED_KEY_HEX not in r.output and FIXED_KEY_HEX.upper() not in r.output
    # the table, and Glance not given: NOT SEEN, never zero
    r = kt(*args)
    assert r.exit_code == 1
    assert "glance: NOT SEEN" in r.stdout and "re-keyable: keytools migrate rekey" in r.stdout
    assert "until rebuilt: LVM ephemeral encryption is dm-crypt plain" in r.stdout


def test_secrets_the_credentials_cannot_read_are_not_seen(kt, sandbox, creator_session, cinder_url, key_file,
                                                           tmp_path):
    """cinder.conf's service user did not create demo's secrets and is on no ACL: 403, so those
    objects are NOT SEEN (exit 1), and the report names the credentials; a dangling id is too."""
    client = keymanager.barbican_client(creator_session)
    other = _secret(client, secrets.token_bytes(32))
    seed(cinder_url, volumes=1, key_id=other)
    seed(cinder_url, volumes=1, key_id=str(uuid.uuid4()))  # no such secret
    conf = write_cinder_conf(tmp_path / "cinder.conf", sandbox, cinder_url, None)
    r = kt("fixed-key", "exposure", "--config-file", str(conf), "--fixed-key-file", str(key_file),
           "--ignore-service", "nova,glance", "-f", "json")
    assert r.exit_code == 1, r.output
    doc = json.loads(r.stdout)
    assert doc["exposed"] == 0 and not doc["complete"]
    assert doc["secrets_not_read"] == {"forbidden for these credentials": 1, "missing (404)": 1}
    assert "[keystone_authtoken] (service user cinder" in doc["read_with"]
    assert "2 secret(s) not read" in r.stderr


def test_nothing_exposed_exits_0_and_bad_input_is_one_line(kt, sandbox, cinder_url, key_file, creator_session,
                                                           tmp_path):
    client = keymanager.barbican_client(creator_session)
    seed(cinder_url, volumes=2, key_id=_secret(client, secrets.token_bytes(64)))
    r = kt("--os-cloud", "sandbox-demo", "fixed-key", "exposure", "--db-url", cinder_url, "--fixed-key-file",
           str(key_file), "--ignore-service", "nova,glance")
    assert r.exit_code == 0, r.output
    assert "0 object(s) opened by fixed_key; 1 secret(s) read with --os-cloud sandbox-demo" in r.stdout
    r = kt("--os-cloud", "sandbox-demo", "fixed-key", "exposure", "--db-url", cinder_url)
    assert r.exit_code == 2 and "fixed_key is not given" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = kt("--os-cloud", "sandbox-demo", "fixed-key", "exposure", "--fixed-key-file", str(tmp_path / "nope"))
    assert r.exit_code == 2 and "no such file" in r.stderr
    assert FIXED_KEY_ID not in r.stderr


def test_glance_images_from_encrypted_volumes_until_replaced(kt, sandbox_with, admin_session, creator_session,
                                                              cinder_url, key_file):
    """Images of a fresh project carrying the all-zeros id or a migrated secret (cinder's
    upload-to-image property), read through the real glance-api as admin: exposed until replaced."""
    from tests.migrate import glance_helpers as gh

    cloud = sandbox_with("glance")
    tenants = gh.make_tenants(cloud, admin_session)
    migrated = _secret(keymanager.barbican_client(creator_session), bytes.fromhex(FIXED_KEY_HEX))
    made = [gh.create_image(tenants.a1.session, "exposure-zeros"),
            gh.create_image(tenants.a1.session, "exposure-migrated", key_id=migrated),
            gh.create_image(tenants.a1.session, "exposure-none", key_id=None)]
    try:
        r = kt("--os-cloud", "sandbox-demo", "fixed-key", "exposure", "--db-url", cinder_url, "--fixed-key-file",
               str(key_file), "--glance-cloud", "sandbox-admin", "--ignore-service", "nova", "-f", "json")
        assert r.exit_code == 1, r.output
        doc = json.loads(r.stdout)
        mine = {(o["via"], o["class"]): o["count"] for o in doc["objects"]
                if o["service"] == "glance" and o["project"] == tenants.alpha}
        assert mine == {("all-zeros id", "until replaced"): 1, ("secret holds fixed_key", "until replaced"): 1}
        assert "glance" in doc["seen"]
    finally:
        for image_id in made:
            gh.delete_image(admin_session, image_id)
