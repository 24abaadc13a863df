"""migrate against the sandbox's real Barbican on a Cinder schema made by cinder-manage (SQLite)."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest

from keytools import keymanager, rbac
from keytools.cinder_db import FIXED_KEY_ID
from keytools.errors import EXIT_FORBIDDEN, EXIT_PROBLEMS, EXIT_STATE
from keytools.service_errors import SECRET_FORBIDDEN
from migrate import journal as jr
from tests.helpers.cli import run_keytools
from tests.helpers.db_seed import keys, seed

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


@pytest.fixture(scope="module")
def barbican(creator_session):
    client = keymanager.barbican_client(creator_session)
    client._keytools_endpoint = keymanager.barbican_endpoint(creator_session)
    return client


def ref(client, key_id: str) -> str:
    return f"{client._keytools_endpoint}/v1/secrets/{key_id}"


def assert_all_migrated(url: str, client, key: bytes, user: str = "u-owner") -> dict[str, str]:
    vols, snaps, baks = keys(url, "volumes"), keys(url, "snapshots"), keys(url, "backups")
    assert FIXED_KEY_ID not in set(vols.values()) | set(snaps.values()) | set(baks.values())
    for key_id in set(vols.values()) | set(baks.values()):
        secret = client.secrets.get(ref(client, key_id))
        assert secret.payload == key and secret.algorithm == "AES" and secret.bit_length == len(key) * 8
        assert secret.secret_type == "symmetric"
        assert user in client.acls.get(secret.secret_ref).read.users
    assert len(set(vols.values()) | set(baks.values())) == len(vols) + len(baks)  # one secret each
    return vols


def test_happy_path_volumes_snapshots_backups(kt, cinder_url, key_file, fixed_key_hex, barbican, tmp_path):
    s = seed(cinder_url, volumes=4, snapshots_per_volume=2, backups=3)
    state = tmp_path / "st"
    r = kt("--os-cloud", "sandbox-demo", "migrate", "run", "--db-url", cinder_url, "--fixed-key-file",
           key_file, "--state-dir", state, "--concurrency", "2", "--format", "json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["migrated"] == {"volumes": 4, "snapshots": 8, "backups": 3} and out["errors"] == 0
    key = bytes.fromhex(fixed_key_hex)
    vols = assert_all_migrated(cinder_url, barbican, key)
    snaps = keys(cinder_url, "snapshots")
    import sqlalchemy as sa
    eng = sa.create_engine(cinder_url)
    with eng.connect() as c:
        for sid, vid in c.execute(sa.text("SELECT id, volume_id FROM snapshots")):
            assert snaps[sid] == vols[vid]
    eng.dispose()
    # cinder's lines, in cinder's order
    err = r.stderr
    assert err.index("Starting migration of ConfKeyManager keys.") < err.index("Migrating VolumeMigration")
    for vid in s.volumes:
        assert f"INFO keytools.migrate [None req-" in err and f"Migrating VolumeMigration {vid} encryption key to Barbican" in err
    for bid in s.backups:
        assert f"Migrating Backup {bid} encryption key to Barbican" in err
    assert err.rstrip().endswith("No backups are known to be using the ConfKeyManager's encryption_key_id.")
    assert "No volumes are using the ConfKeyManager's encryption_key_id." in err
    assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \d+ INFO keytools\.migrate \[None req-" + UUID
                     + r" - - - - - -\] Starting migration", err, re.M)
    assert fixed_key_hex not in r.output and fixed_key_hex.upper() not in r.output
    # verify is clean; a rerun has nothing to do
    r = kt("--os-cloud", "sandbox-demo", "migrate", "verify", "--db-url", cinder_url, "--fixed-key-file", key_file,
           "--state-dir", state, "--format", "json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["checked"] == 7 and json.loads(r.stdout)["problems"] == []
    r = kt("--os-cloud", "sandbox-demo", "migrate", "run", "--db-url", cinder_url, "--fixed-key-file", key_file,
           "--state-dir", state)
    assert r.exit_code == 0 and "there are no volumes or backups associated with this host" in r.stderr
    # tamper: a row pointing at a secret with other bytes, and one at a deleted secret
    other = barbican.secrets.create(name="other", payload=b"\x01" * 32, algorithm="AES", bit_length=256,
                                    secret_type="symmetric").store()
    eng = sa.create_engine(cinder_url)
    with eng.begin() as c:
        c.execute(sa.text("UPDATE volumes SET encryption_key_id = :k WHERE id = :i"),
                  {"k": other.rpartition("/")[2], "i": s.volumes[0]})
    eng.dispose()
    barbican.secrets.delete(ref(barbican, vols[s.volumes[1]]))
    r = kt("--os-cloud", "sandbox-demo", "migrate", "verify", "--db-url", cinder_url, "--fixed-key-file", key_file,
           "--state-dir", state, "--format", "json")
    assert r.exit_code == EXIT_PROBLEMS
    problems = {(p["id"], p["problem"].split(" (")[0]) for p in json.loads(r.stdout)["problems"]}
    assert (s.volumes[0], f"row now uses key {other.rpartition('/')[2]}, not the migrated secret") in problems
    assert (s.volumes[1], "secret does not exist") in {(i, p[:25]) for i, p in problems}


def test_json_log_lines_carry_event_fields_never_key(kt, cinder_url, key_file, fixed_key_hex, tmp_path):
    seed(cinder_url, volumes=2, backups=1)
    r = kt("--os-cloud", "sandbox-demo", "--log-format", "json", "migrate", "run", "--db-url", cinder_url,
           "--fixed-key-file", key_file, "--state-dir", tmp_path / "st")
    assert r.exit_code == 0, r.output
    events = [json.loads(line) for line in r.stderr.splitlines() if line.startswith("{")]
    migrated = [e for e in events if e.get("event") == "migrated"]
    assert len(migrated) == 3
    for e in migrated:
        assert {"table", "id", "host", "secret_id", "done", "total", "rate"} <= set(e)
        assert e["total"] == 3 and re.fullmatch(UUID, e["secret_id"])
    assert [e["done"] for e in migrated] == [1, 2, 3]
    assert any(e.get("event") == "start" and e["message"] == "Starting migration of ConfKeyManager keys."
               for e in events)
    assert any(e.get("event") == "migrating_item" and e["message"].startswith("Migrating Backup") for e in events)
    assert fixed_key_hex not in r.output
    # migrate status reads our JSON lines like cinder's text lines
    log = tmp_path / "ctl-5-keytools.log"
    log.write_text(r.stderr)
    r = kt("migrate", "status", "--log", log, "--format", "json")
    host = json.loads(r.stdout)["hosts"][0]
    assert (host["host"], host["started"], host["migrated"], host["errors"], host["state"]) == ("ctl-5", True, 3, 0,
                                                                                                 "done")
    assert host["volumes_remaining"] == 0 and host["backups_remaining"] == 0


def test_host_filter_and_global_status(kt, cinder_url, key_file, tmp_path):
    a = seed(cinder_url, volumes=2, snapshots_per_volume=1, host="ctl-0@lvm#lvm", backups=1, backup_host="ctl-0")
    b = seed(cinder_url, volumes=3, host="ctl-1@lvm#lvm", backups=2, backup_host="ctl-1")
    r = kt("--os-cloud", "sandbox-demo", "migrate", "run", "--db-url", cinder_url, "--fixed-key-file", key_file,
           "--state-dir", tmp_path / "st", "--host", "ctl-0")
    assert r.exit_code == 0, r.output
    vols, baks = keys(cinder_url, "volumes"), keys(cinder_url, "backups")
    assert all(vols[v] != FIXED_KEY_ID for v in a.volumes) and all(vols[v] == FIXED_KEY_ID for v in b.volumes)
    assert baks[a.backups[0]] != FIXED_KEY_ID and all(baks[x] == FIXED_KEY_ID for x in b.backups)
    # status lines count all hosts, as cinder's do
    assert "There are still 3 volume(s) using the ConfKeyManager's all-zeros encryption key ID." in r.stderr
    assert "There are still 2 backups(s) using the ConfKeyManager's all-zeros encryption key ID." in r.stderr
    r = kt("migrate", "status", "--db-url", cinder_url, "--format", "json")
    assert json.loads(r.stdout)["remaining"] == {"volumes": 3, "snapshots": 0, "backups": 2}
    # finish refuses while rows remain
    r = kt("migrate", "finish", "--db-url", cinder_url, "--state-dir", tmp_path / "st")
    assert r.exit_code == EXIT_STATE and "3 volume(s)" in r.stderr


def test_403_then_grant_creator_then_revoke(kt, sandbox, cinder_conf, cinder_url, migrator_user, barbican,
                                            fixed_key_hex, tmp_path):
    """cinder's own credentials ([keystone_authtoken]) without creator: stop before any change."""
    s = seed(cinder_url, volumes=2, backups=1)
    conf = cinder_conf(user=migrator_user)
    state = tmp_path / "st"
    r = kt("migrate", "run", "--config-file", conf, "--state-dir", state)
    assert r.exit_code == EXIT_FORBIDDEN, r.output
    assert f"Error migrating encryption key: {SECRET_FORBIDDEN}" in r.stderr
    assert f"openstack role add --user {migrator_user['name']} --project service creator" in r.stderr
    assert "Starting migration" not in r.stderr and r.stderr.count("keytools: error:") == 1
    assert set(keys(cinder_url, "volumes").values()) == {FIXED_KEY_ID}
    assert not barbican.secrets.list(name=jr.secret_name("volumes", s.volumes[0]))
    try:
        r = kt("migrate", "run", "--config-file", conf, "--state-dir", state, "--grant-creator",
               "--admin-cloud", "sandbox-admin")
        assert r.exit_code == 0, r.output
        assert f"Granted role creator to {migrator_user['name']} in project service" in r.stderr
        from keytools.auth import session_from_oslo_config
        own = keymanager.barbican_client(session_from_oslo_config(str(conf)))  # secrets live in 'service'
        own._keytools_endpoint = barbican._keytools_endpoint
        assert_all_migrated(cinder_url, own, bytes.fromhex(fixed_key_hex))
        r = kt("migrate", "verify", "--config-file", conf, "--state-dir", state)
        assert r.exit_code == 0, r.output
    finally:
        r = kt("migrate", "finish", "--config-file", conf, "--state-dir", state, "--revoke-creator",
               "--admin-cloud", "sandbox-admin", "--format", "json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["revoked"] == [{"user": migrator_user["name"], "project": "service",
                                                "role": "creator", "removed": True}]
    session = sandbox.session("admin")
    from keytools.auth import session_from_oslo_config
    assert rbac.can_create_secrets(session_from_oslo_config(str(conf))) is False
    assert session


def test_rerun_reuses_stored_secret_finds_lost_ref_and_cleans_orphans(kt, cinder_url, key_file, fixed_key_hex,
                                                                      barbican, tmp_path):
    s = seed(cinder_url, volumes=3)
    key = bytes.fromhex(fixed_key_hex)
    v_reuse, v_lost, v_moved = s.volumes
    path = jr.journal_path(tmp_path / "st", _describe(cinder_url))

    def make(row: str) -> str:
        return barbican.secrets.create(name=jr.secret_name("volumes", row), payload=key, algorithm="AES",
                                       bit_length=256, secret_type="symmetric").store()

    stored, lost, spare = make(v_reuse), make(v_lost), make(v_moved)
    with jr.Journal(path) as j:
        j.record("intent", "volumes", v_reuse)
        j.record("stored", "volumes", v_reuse, stored)  # killed after the secret was stored
        j.record("intent", "volumes", v_lost)  # killed before the ref reached the journal
        j.record("intent", "volumes", v_moved)
        j.record("stored", "volumes", v_moved, spare)
    import sqlalchemy as sa
    eng = sa.create_engine(cinder_url)
    with eng.begin() as c:  # meanwhile cinder itself migrated this one
        c.execute(sa.text("UPDATE volumes SET encryption_key_id = 'cinder-made' WHERE id = :i"), {"i": v_moved})
    eng.dispose()
    r = kt("--os-cloud", "sandbox-demo", "migrate", "plan", "--db-url", cinder_url, "--fixed-key-file", key_file,
           "--state-dir", tmp_path / "st", "--format", "json")
    plan = json.loads(r.stdout)
    assert plan["journal"]["reusable_secrets"] == 1 and plan["journal"]["unresolved_intents"] == 1
    assert [o["secret_id"] for o in plan["orphans"]] == [spare.rpartition("/")[2]]
    r = kt("--os-cloud", "sandbox-demo", "migrate", "run", "--db-url", cinder_url, "--fixed-key-file", key_file,
           "--state-dir", tmp_path / "st", "--format", "json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    vols = keys(cinder_url, "volumes")
    assert vols[v_reuse] == stored.rpartition("/")[2] and vols[v_lost] == lost.rpartition("/")[2]
    assert out["reused_secrets"] == 2 and [o["secret_id"] for o in out["orphans"]] == [spare.rpartition("/")[2]]
    assert len(barbican.secrets.list(name=jr.secret_name("volumes", v_lost))) == 1  # no second secret
    r = kt("--os-cloud", "sandbox-demo", "migrate", "run", "--db-url", cinder_url, "--fixed-key-file", key_file,
           "--state-dir", tmp_path / "st", "--cleanup", "--format", "json")
    assert r.exit_code == 0 and json.loads(r.stdout)["deleted_orphans"] == 1
    assert not barbican.secrets.list(name=jr.secret_name("volumes", v_moved))


def _set_key(url: str, table: str, row_id: str, key: str) -> None:
    import sqlalchemy as sa

    eng = sa.create_engine(url)
    with eng.begin() as c:
        c.execute(sa.text(f"UPDATE {table} SET encryption_key_id = :k WHERE id = :i"), {"k": key, "i": row_id})
    eng.dispose()


def test_stranded_snapshots_repaired_only_when_provably_half_migrated(kt, cinder_url, key_file, fixed_key_hex,
                                                                       barbican, tmp_path):
    """Repair an all-zeros snapshot only when its in-scope volume was migrated by keytools (journal)
    or its volume's secret holds fixed_key (read back); a volume re-keyed the way a backup restore
    re-keys it (cinder/backup/manager.py: new, different key, snapshots keep all-zeros) is left
    alone and reported, and so is one outside --host."""
    key = bytes.fromhex(fixed_key_hex)
    crashed = seed(cinder_url, volumes=1, snapshots_per_volume=2, host="ctl-0@lvm#lvm")
    restored = seed(cinder_url, volumes=1, snapshots_per_volume=1, host="ctl-0@lvm#lvm")
    journaled = seed(cinder_url, volumes=1, snapshots_per_volume=1, host="ctl-0@lvm#lvm")
    unreadable = seed(cinder_url, volumes=1, snapshots_per_volume=1, host="ctl-0@lvm#lvm")
    elsewhere = seed(cinder_url, volumes=1, snapshots_per_volume=1, host="ctl-1@lvm#lvm")
    todo = seed(cinder_url, volumes=1, host="ctl-0@lvm#lvm")  # a normal row: the run has work to do

    def secret(payload: bytes) -> str:
        return barbican.secrets.create(payload=payload, algorithm="AES", bit_length=256,
                                       secret_type="symmetric").store().rpartition("/")[2]

    cinder_key = secret(key)  # cinder stored fixed_key, saved the volume, crashed before the snapshots
    _set_key(cinder_url, "volumes", crashed.volumes[0], cinder_key)
    _set_key(cinder_url, "volumes", restored.volumes[0], secret(b"\x07" * 32))  # restore: a new random key
    _set_key(cinder_url, "volumes", journaled.volumes[0], "journal-key")
    _set_key(cinder_url, "volumes", unreadable.volumes[0], "no-such-secret")
    _set_key(cinder_url, "volumes", elsewhere.volumes[0], secret(key))
    state = tmp_path / "st"
    with jr.Journal(jr.journal_path(state, _describe(cinder_url))) as j:  # keytools migrated it, snapshots pending
        j.record("done", "volumes", journaled.volumes[0], f"{barbican._keytools_endpoint}/v1/secrets/journal-key")
    base = ("--db-url", cinder_url, "--fixed-key-file", key_file, "--state-dir", state, "--host", "ctl-0")

    r = kt("--os-cloud", "sandbox-demo", "migrate", "plan", *base, "--format", "json")
    assert r.exit_code == 0, r.output
    plan = {d["id"]: d["reason"] for d in json.loads(r.stdout)["snapshots"]}
    assert plan == {**{i: "needs_read_back" for i in crashed.snapshots + restored.snapshots + unreadable.snapshots},
                    journaled.snapshots[0]: "journal_migrated_volume"}  # ctl-1's snapshot: not this run's
    r = kt("--os-cloud", "sandbox-demo", "migrate", "plan", *base)
    assert elsewhere.snapshots[0] not in r.stdout and "out of scope" not in r.stdout

    r = kt("--os-cloud", "sandbox-demo", "--log-format", "json", "migrate", "run", *base, "--format", "json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["migrated"]["volumes"] == 1 and out["repaired_snapshots"] == 3
    left = {d["id"]: d["reason"] for d in out["snapshots_left"]}
    assert left == {restored.snapshots[0]: "volume_key_is_not_fixed_key",
                    unreadable.snapshots[0]: "volume_key_unreadable"}
    snaps = keys(cinder_url, "snapshots")
    assert [snaps[i] for i in crashed.snapshots] == [cinder_key, cinder_key]
    assert snaps[journaled.snapshots[0]] == "journal-key"
    for sid in (restored.snapshots[0], unreadable.snapshots[0], elsewhere.snapshots[0]):
        assert snaps[sid] == FIXED_KEY_ID  # untouched: its data is still under fixed_key
    events = [json.loads(line) for line in r.stderr.splitlines() if line.startswith("{")]
    logged = {e["id"]: (e["event"], e["reason"]) for e in events
              if e.get("event") in ("snapshot_left_alone", "repaired_snapshot")}
    assert logged[restored.snapshots[0]] == ("snapshot_left_alone", "volume_key_is_not_fixed_key")
    assert elsewhere.snapshots[0] not in logged and elsewhere.snapshots[0] not in r.stderr  # as cinder: scope only
    assert logged[crashed.snapshots[0]] == ("repaired_snapshot", "volume_key_is_fixed_key")
    assert logged[journaled.snapshots[0]] == ("repaired_snapshot", "journal_migrated_volume")
    assert "backup restore" in next(e["message"] for e in events if e.get("id") == restored.snapshots[0])
    assert todo.volumes[0] not in {d["volume_id"] for d in out["snapshots_left"]}
    # a rerun with nothing to migrate reports the same snapshots again, in the table too
    r = kt("--os-cloud", "sandbox-demo", "migrate", "run", *base)
    assert r.exit_code == 0, r.output
    assert "snapshots left alone" in r.stdout and restored.snapshots[0] in r.stdout
    assert f"Left snapshot {restored.snapshots[0]} on the all-zeros key id" in r.stderr
    assert keys(cinder_url, "snapshots")[restored.snapshots[0]] == FIXED_KEY_ID
    # in its own scope, the other host's snapshot is repaired (its volume's secret holds fixed_key)
    r = kt("--os-cloud", "sandbox-demo", "migrate", "run", *base[:-1], "ctl-1", "--format", "json")
    assert r.exit_code == 0 and json.loads(r.stdout)["repaired_snapshots"] == 1


def test_key_never_in_any_output_subprocess_debug(sandbox, cinder_conf, cinder_url, fixed_key_hex, tmp_path):
    """--debug, JSON logs, errors: neither the hex (any case) nor base64 of fixed_key appears."""
    seed(cinder_url, volumes=2, backups=1)
    conf = cinder_conf()
    state = tmp_path / "st"
    key = bytes.fromhex(fixed_key_hex)
    forms = [fixed_key_hex, fixed_key_hex.upper(), base64.b64encode(key).decode()]
    outputs = []
    for fmt in ("text", "json"):
        p = run_keytools("--debug", "--log-format", fmt, "--os-cloud", "sandbox-demo", "migrate", "run",
                         "--config-file", conf, "--state-dir", state, env=sandbox.env())
        outputs += [p.stdout, p.stderr]
        assert p.returncode == 0, p.stderr[-2000:]
    p = run_keytools("--debug", "migrate", "verify", "--config-file", conf, "--state-dir", state,
                     "--os-cloud", "sandbox-demo", env=sandbox.env())
    outputs += [p.stdout, p.stderr]
    bad = cinder_conf(fixed_key=fixed_key_hex[:-2] + "zz", name="bad.conf")
    p = run_keytools("--debug", "migrate", "run", "--config-file", bad, env=sandbox.env())
    assert p.returncode == 2 and "not hexadecimal" in p.stderr
    outputs += [p.stdout, p.stderr]
    outputs += [f.read_text() for f in Path(state).iterdir()]
    assert len(outputs) >= 9
    for text in outputs:
        for form in forms + [fixed_key_hex[:-2]]:
            assert form not in text


def _describe(url: str) -> str:
    from migrate.db import CinderDB

    db = CinderDB(url)
    try:
        return db.describe()
    finally:
        db.dispose()


def test_progress_bar_only_when_asked_or_on_a_tty(kt, cinder_url, key_file, tmp_path):
    seed(cinder_url, volumes=2)
    r = kt("--os-cloud", "sandbox-demo", "migrate", "run", "--db-url", cinder_url, "--fixed-key-file", key_file,
           "--state-dir", tmp_path / "st", "--concurrency", "1")
    assert r.exit_code == 0 and "Migrating  [" not in r.stderr  # not a TTY: log lines only
    assert "Migrated volume" in r.stderr
    seed(cinder_url, volumes=2)
    r = kt("--os-cloud", "sandbox-demo", "migrate", "run", "--db-url", cinder_url, "--fixed-key-file", key_file,
           "--state-dir", tmp_path / "st", "--concurrency", "1", "--progress")
    assert r.exit_code == 0 and "Migrating" in r.stderr and "100%" in r.stderr
    assert "Migrated volume" not in r.stderr  # per-row success lines drop to DEBUG under the bar
