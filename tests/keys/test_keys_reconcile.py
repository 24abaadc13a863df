"""keys reconcile against the real sandbox: Keystone, Barbican (SQLite; MariaDB below), glance-api,
Cinder and Nova schemas from cinder-manage/nova-manage, volume keys made by castellan as Cinder
makes them, and barbican-manage db clean as the oracle for the purge counts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid

import pytest
import sqlalchemy as sa

from keytools.cinder_db import sync_schema
from keytools.nova_db import create_databases
from keytools.tools import find_tool
from tests.helpers.db_seed import seed_instances
from tests.keys import keys_helpers as kh
from tests.migrate import glance_helpers as gh

MISSING_VOL = str(uuid.uuid4())
MISSING_IMG = str(uuid.uuid4())


@pytest.fixture(scope="module")
def world(sandbox_with, admin_session, tmp_path_factory):
    cloud = sandbox_with("glance")
    w = kh.make_world(cloud, admin_session)
    tmp = tmp_path_factory.mktemp("keys-world")
    cinder = f"sqlite:///{tmp / 'cinder.sqlite'}"
    sync_schema(cinder)
    nova = {n: f"sqlite:///{tmp / f'nova_{n}.sqlite'}" for n in ("api", "cell0", "cell1")}
    create_databases(nova["api"], nova["cell0"], {"cell1": nova["cell1"]})
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
    kh.insert_volume(cinder, MISSING_VOL, o.id, w.project)
    # Glance: a signed image's certificate in Barbican, an image on a key that does not exist.
    m["cert"] = kh.store(o, secret_type="certificate")
    w.made_images = {"signed": gh.create_image(o.session, "kt-signed", key_id=None,
                                               img_signature_certificate_uuid=m["cert"]),
                     "missing": gh.create_image(o.session, "kt-missing-key", key_id=MISSING_IMG)}
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
    w.cinder, w.nova, w.tmp = cinder, nova, tmp
    return w


def _json(res) -> dict:
    return json.loads(res.stdout)


def test_every_class_counted_exactly(kt, world):
    res = kt("keys", "reconcile", *world.args, "-f", "json")
    assert res.exit_code == 1, res.output
    doc = _json(res)
    m = world.made
    assert doc["complete"] and set(doc["seen"]) == {"cinder", "nova", "glance", "swift", "barbican"}
    assert doc["dangling_by_problem"] == {"deleted": 2, "expired": 1, "missing": 2, "no-read-access": 1}
    got = {(d["service"], d["kind"], d["key_id"], d["problem"]) for d in doc["dangling"]}
    assert got == {("cinder", "volumes", m["handdel"], "deleted"), ("swift", "swift_root", m["swift2"], "deleted"),
                   ("cinder", "volumes", m["expired"], "expired"), ("cinder", "volumes", MISSING_VOL, "missing"),
                   ("glance", "images", MISSING_IMG, "missing"),
                   ("cinder", "backups", m["lostacl"], "no-read-access")}
    assert all(d["action"] for d in doc["dangling"])
    assert {o["id"] for o in doc["orphans"]} == {m["orph_castellan"], m["orph_migrated"], m["orph_cert"], m["orph_old"]}
    assert {(g["kind"], g["count"]) for g in doc["orphan_groups"]} == {
        ("castellan-key", 2), ("certificate", 1), ("keytools-migrated-key", 1)}
    assert all(g["project"] == world.project and g["creator"] == world.owner.id for g in doc["orphan_groups"])
    # Orders: the deleted volume's key, the unused castellan key, the old release's key.
    assert {(o["secret_id"], o["why"]) for o in doc["leftover_orders"]} == {
        (m["gone"], "secret deleted"), (m["orph_castellan"], "secret orphaned"), (m["orph_old"], "secret orphaned")}
    assert doc["references_per_service"]["nova"] == 2  # the ephemeral key and the vTPM secret
    assert doc["references_per_service"]["glance"] == 2 and doc["references_per_service"]["swift"] == 2
    table = kt("keys", "reconcile", *world.args)
    assert table.exit_code == 1 and "Dangling references: 6" in table.stdout
    assert "6 dangling reference(s)" in table.stderr and "Traceback" not in table.output


def test_not_seen_service_means_no_orphans_and_ignore_is_recorded(kt, world):
    args = [a for a in world.args]
    i = args.index("--db-url")
    del args[i:i + 2]
    doc = _json(kt("keys", "reconcile", *args, "-f", "json"))
    assert not doc["complete"] and [n["service"] for n in doc["not_seen"]] == ["cinder"]
    assert doc["orphans"] == [] and doc["counts"]["orphans"] == 0 and "cinder" in doc["orphans_withheld"]
    assert {o["secret_id"] for o in doc["leftover_orders"]} == {world.made["gone"]}  # deleted secret only
    doc = _json(kt("keys", "reconcile", *args, "--ignore-service", "cinder", "-f", "json"))
    assert doc["complete"] and doc["ignored_services"] == ["cinder"] and doc["orphans_withheld"] is None
    m = world.made
    assert {o["id"] for o in doc["orphans"]} == {m["orph_castellan"], m["orph_migrated"], m["orph_cert"], m["orph_old"],
                                                 m["live"], m["expired"], m["lostacl"]}


def test_min_age_keeps_young_secrets_out(kt, world):
    args = world.args[:-1] + ["30d"]
    doc = _json(kt("keys", "reconcile", *args, "-f", "json"))
    assert doc["orphans"] == [] and doc["young_unreferenced"] == 4


def test_db_clean_counts_match_barbican_manage(kt, world, tmp_path):
    """Upstream is the oracle: barbican-manage db clean on a copy purges exactly what we count."""
    url = world.args[1]
    copy = tmp_path / "barbican-copy.db"
    import sqlite3

    with sqlite3.connect(url.removeprefix("sqlite:///")) as s, sqlite3.connect(copy) as d:
        s.backup(d)
    doc = _json(kt("keys", "reconcile", "--barbican-db-url", f"sqlite:///{copy}", "--ignore-service",
                   "cinder,nova,glance,swift", "--clean-min-days", "0", "-f", "json"))
    predicted = {k: v for k, v in doc["db_clean"].items() if not k.endswith("_blocked_by_orders")}
    assert predicted["secrets"] >= 0 and doc["db_clean"]["secrets_blocked_by_orders"] >= 1  # the 'gone' key

    def rows() -> dict[str, int]:
        eng = sa.create_engine(f"sqlite:///{copy}")
        with eng.connect() as conn:
            out = {t: conn.execute(sa.text(f'SELECT COUNT(*) FROM "{t}"')).scalar_one() for t in predicted}
        eng.dispose()
        return out

    before = rows()
    subprocess.run([find_tool("barbican-manage", "sandbox extra"), "db", "clean", "--db-url", f"sqlite:///{copy}",
                    "--min-days", "0"], check=True, capture_output=True, env={**os.environ, "HOME": str(tmp_path)})
    after = rows()
    assert {t: before[t] - after[t] for t in predicted} == predicted


def test_bad_input_and_unreachable(kt, world, tmp_path):
    from keytools.sandbox import processes

    res = kt("keys", "reconcile", "--barbican-db-url", world.cinder, "--ignore-service", "cinder,nova,glance,swift")
    assert res.exit_code == 2 and "is not a Barbican database" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.output
    port = processes.free_ports(1)[0]
    res = kt("keys", "reconcile", "--barbican-db-url", f"mysql+pymysql://u:sekret@127.0.0.1:{port}/barbican")
    assert res.exit_code == 4 and "cannot connect to the Barbican database" in res.stderr and "sekret" not in res.output
    res = kt("keys", "reconcile")
    assert res.exit_code == 2 and "--barbican-db-url" in res.stderr
    res = kt("keys", "reconcile", "--barbican-db-url", "not a url")
    assert res.exit_code == 2
    res = kt("keys", "reconcile", *world.args, "--ignore-service", "octavia")
    assert res.exit_code == 2 and "unknown service" in res.stderr
    res = kt("keys", "reconcile", *world.args[:-1], "soon")
    assert res.exit_code == 2 and "--min-age" in res.stderr
    bad = tmp_path / "proxy.conf"
    bad.write_text("[pipeline:main]\npipeline = kms_keymaster proxy\n[filter:kms_keymaster]\n"
                   "use = egg:swift#kms_keymaster\nkey_id1 = x\n")
    i = world.args.index("--swift-proxy-config")
    args = world.args[:i + 1] + [str(bad)] + world.args[i + 2:]
    doc = _json(kt("keys", "reconcile", *args, "-f", "json"))
    assert [n["service"] for n in doc["not_seen"]] == ["swift"] and "Malformed" in doc["not_seen"][0]["reason"]
    assert doc["orphans"] == []
    shutil.rmtree(tmp_path, ignore_errors=True)
