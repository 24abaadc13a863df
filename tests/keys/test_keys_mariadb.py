"""keys reconcile with Barbican and Cinder on a real MariaDB server (the mariadb sandbox: Barbican's
schema made by Barbican, Cinder's by cinder-manage), keys made by castellan as Cinder makes them."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from keytools.cinder_db import sync_schema
from keytools.sandbox import configs
from tests.keys import keys_helpers as kh


@pytest.fixture(scope="module")
def maria(mariadb_sandbox):
    s = mariadb_sandbox
    server = configs.db_url(s.state, s.config, "cinder")
    eng = sa.create_engine(server)
    with eng.begin() as conn:
        conn.execute(sa.text("DROP DATABASE IF EXISTS `cinder_keys`"))
        conn.execute(sa.text("CREATE DATABASE `cinder_keys` CHARACTER SET utf8mb4"))
    eng.dispose()
    cinder = server.replace("/cinder?", "/cinder_keys?")
    sync_schema(cinder)
    w = kh.make_world(s, s.session("admin"))
    km = kh.castellan(s)
    o, m = w.owner, w.made
    m["live"] = kh.volume_key(km, o)
    kh.insert_volume(cinder, m["live"], o.id, w.project)
    m["gone"] = kh.volume_key(km, o)
    vol = kh.insert_volume(cinder, m["gone"], o.id, w.project)
    kh.delete_volume_row(cinder, vol)
    km.delete(kh.context(o), m["gone"])
    m["handdel"] = kh.volume_key(km, o)
    kh.insert_volume(cinder, m["handdel"], o.id, w.project)
    km.delete(kh.context(o), m["handdel"])  # by hand, under a live volume
    m["orphan"] = kh.volume_key(km, o)
    w.args = ["--barbican-db-url", configs.db_url(s.state, s.config, "barbican"), "--db-url", cinder,
              "--ignore-service", "nova,glance,swift", "--project", w.project, "--min-age", "0",
              "--clean-min-days", "0"]
    return w


def test_reconcile_on_mariadb_exact(kt, maria):
    res = kt("keys", "reconcile", *maria.args, "-f", "json")
    assert res.exit_code == 1, res.output
    doc = json.loads(res.stdout)
    m = maria.made
    assert doc["ignored_services"] == ["glance", "nova", "swift"] and set(doc["seen"]) == {"cinder", "barbican"}
    assert [(d["key_id"], d["problem"]) for d in doc["dangling"]] == [(m["handdel"], "deleted")]
    assert [o["id"] for o in doc["orphans"]] == [m["orphan"]] and doc["orphan_groups"][0]["kind"] == "castellan-key"
    assert {(o["secret_id"], o["why"]) for o in doc["leftover_orders"]} == {
        (m["gone"], "secret deleted"), (m["handdel"], "secret deleted"), (m["orphan"], "secret orphaned")}
    assert doc["db_clean"]["secrets_blocked_by_orders"] >= 2 and "mysql" in doc["barbican"]
