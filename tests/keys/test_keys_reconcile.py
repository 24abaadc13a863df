"""keys reconcile against the real sandbox: Keystone, Barbican (SQLite; MariaDB in test_keys_mariadb), glance-api,
Cinder and Nova schemas from cinder-manage/nova-manage, volume keys made by castellan as Cinder
makes them, and barbican-manage db clean as the oracle for the purge counts."""

from __future__ import annotations

import json
import os
import subprocess

import sqlalchemy as sa

from keytools.tools import find_tool


def _json(res) -> dict:
    return json.loads(res.stdout)


def test_every_class_counted_exactly(kt, world):
    res = kt("keys", "reconcile", *world.args, "-f", "json")
    assert res.exit_code == 1, res.output
    doc = _json(res)
    m = world.made
    assert doc["complete"] and set(doc["seen"]) == {"cinder", "nova", "glance", "swift", "barbican"}
    # Glance lists every project's images: other test modules' worlds are in the same sandbox.
    mine = [d for d in doc["dangling"] if d["service"] != "glance" or d["project"] == world.project]
    got = {(d["service"], d["kind"], d["key_id"], d["problem"]) for d in mine}
    assert len(mine) == 6
    assert got == {("cinder", "volumes", m["handdel"], "deleted"), ("swift", "swift_root", m["swift2"], "deleted"),
                   ("cinder", "volumes", m["expired"], "expired"), ("cinder", "volumes", world.missing_vol, "missing"),
                   ("glance", "images", world.missing_img, "missing"),
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
    assert doc["references_per_service"]["swift"] == 2 and doc["references_per_service"]["cinder"] == 5
    table = kt("keys", "reconcile", *world.args)
    assert table.exit_code == 1 and f"Dangling references: {len(doc['dangling'])}" in table.stdout
    assert "dangling reference(s)" in table.stderr and "Traceback" not in table.output
    assert doc["dangling_by_problem"]["expired"] == 1 and doc["dangling_by_problem"]["no-read-access"] == 1


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
    doc = _json(kt("keys", "reconcile", *world.args, "--glance-endpoint", f"http://127.0.0.1:{port}", "-f", "json"))
    assert [n["service"] for n in doc["not_seen"]] == ["glance"] and "cannot reach Glance" in doc["not_seen"][0]["reason"]
    assert doc["orphans"] == [] and doc["orphans_withheld"].startswith("not seen: glance")
    bad = tmp_path / "proxy.conf"
    bad.write_text("[pipeline:main]\npipeline = kms_keymaster proxy\n[filter:kms_keymaster]\n"
                   "use = egg:swift#kms_keymaster\nkey_id1 = x\n")
    i = world.args.index("--swift-proxy-config")
    args = world.args[:i + 1] + [str(bad)] + world.args[i + 2:]
    doc = _json(kt("keys", "reconcile", *args, "-f", "json"))
    assert [n["service"] for n in doc["not_seen"]] == ["swift"] and "Malformed" in doc["not_seen"][0]["reason"]
    assert doc["orphans"] == []
