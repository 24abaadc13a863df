"""keys cleanup (quarantine, delete), release and undelete against the real sandbox Barbican, with
the fault proxy in front of it and kill -9 trials: reruns converge, nothing referenced is deleted,
nothing is deleted twice."""

from __future__ import annotations

import json
import os

import pytest
import sqlalchemy as sa

from tests.helpers.fault_proxy import FaultProxy
from tests.helpers.kill import fork_main, kill_when
from tests.keys import keys_helpers as kh

TRIALS = 5  # per phase: 10 kill -9 trials in all


@pytest.fixture(scope="module")
def proxy(world, sandbox):
    p = FaultProxy(sandbox.url("barbican"), faults_on=lambda method, path, body: method == "PUT" and "/acl" in path)
    yield p
    p.close()


@pytest.fixture(scope="module")
def journal(tmp_path_factory):
    return tmp_path_factory.mktemp("keys-journal") / "journal.jsonl"


def _cleanup(world, proxy, journal, *extra: str) -> list[str]:
    return ["--os-cloud", "sandbox-admin", "keys", "cleanup", *world.args, "--journal", str(journal),
            "--barbican-endpoint", proxy.url, *extra]


def _records(journal) -> list[dict]:
    if not journal.exists():
        return []
    return [json.loads(line) for line in journal.read_text().splitlines() if line.strip().endswith("}")]


def _secret_rows(world, ids) -> dict[str, dict]:
    eng = sa.create_engine(world.args[1])
    try:
        with eng.connect() as conn:
            meta = sa.MetaData()
            s, a, m = (sa.Table(n, meta, autoload_with=conn) for n in ("secrets", "secret_acls", "secret_user_metadata"))
            out = {}
            for sid in ids:
                row = conn.execute(sa.select(s.c.deleted).where(s.c.id == sid)).first()
                acl = conn.execute(sa.select(a.c.project_access).where(a.c.secret_id == sid,
                                                                       a.c.operation == "read")).first()
                tag = conn.execute(sa.select(m.c.value).where(m.c.secret_id == sid, m.c.key == "keytools-quarantine",
                                                              m.c.deleted == sa.false())).first()
                out[sid] = {"deleted": bool(row.deleted), "project_access": None if acl is None else bool(acl[0]),
                            "tagged": tag is not None}
            return out
    finally:
        eng.dispose()


def _orphans(world) -> set[str]:
    m = world.made
    return {m["orph_castellan"], m["orph_migrated"], m["orph_cert"], m["orph_old"]}


def test_dry_run_changes_nothing(kt, world, proxy, journal):
    before = proxy.count
    res = kt(*_cleanup(world, proxy, journal, "-f", "json"))
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert {s["secret_id"] for s in doc["secrets"]} == _orphans(world) and len(doc["orders"]) == 3
    assert not doc["applied"] and not journal.exists() and proxy.count == before
    assert all(not r["tagged"] for r in _secret_rows(world, _orphans(world)).values())


def test_quarantine_release_and_rerun(kt, world, proxy, journal):
    res = kt(*_cleanup(world, proxy, journal, "--apply", "-f", "json"))
    assert res.exit_code == 0, res.output
    rows = _secret_rows(world, _orphans(world))
    assert all(r["tagged"] and r["project_access"] is False and not r["deleted"] for r in rows.values())
    intents = [r for r in _records(journal) if r["op"] == "quarantine-intent"]
    assert {r["secret_id"] for r in intents} == _orphans(world) and all(r["fingerprint"].startswith("sha256:")
                                                                         for r in intents)
    assert len([r for r in _records(journal) if r["op"] == "order-quarantined"]) == 3
    # The reader of another project gets a loud 403 now; the journal keeps the ACL it had.
    again = json.loads(kt(*_cleanup(world, proxy, journal, "--apply", "-f", "json")).stdout)
    assert again["secrets"] == [] and len(again["skipped"]) == 4
    assert len([r for r in _records(journal) if r["op"] == "quarantine-intent"]) == 4
    cert = world.made["orph_cert"]
    res = kt("--os-cloud", "sandbox-admin", "keys", "release", cert, "--barbican-db-url", world.args[1],
             "--journal", str(journal), "--barbican-endpoint", proxy.url, "--apply")
    assert res.exit_code == 0, res.output
    assert _secret_rows(world, [cert])[cert] == {"deleted": False, "project_access": True, "tagged": False}
    kt(*_cleanup(world, proxy, journal, "--apply"))
    assert _secret_rows(world, [cert])[cert]["tagged"]


def test_delete_refuses_unless_every_service_seen(kt, world, proxy, journal):
    args = _cleanup(world, proxy, journal, "--phase", "delete", "--after", "0", "--apply")
    i = args.index("--db-url")
    res = kt(*args[:i], *args[i + 2:])
    assert res.exit_code == 6 and "every service" in res.stderr and "cinder" in res.stderr
    res = kt(*args, "--ignore-service", "swift")
    assert res.exit_code == 6 and "ignored: swift" in res.stderr


def test_barbican_failing_during_quarantine_then_rerun(kt, world, proxy, journal, tmp_path):
    km = kh.castellan(world.sandbox)
    fresh = {kh.volume_key(km, world.owner) for _ in range(2)}
    proxy.default = "500"
    try:
        res = kt(*_cleanup(world, proxy, journal, "--apply"))
    finally:
        proxy.default = "ok"
    assert res.exit_code == 4 and "item(s) failed" in res.stderr and "Barbican failed" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.output
    assert all(not r["tagged"] for r in _secret_rows(world, fresh).values())
    res = kt(*_cleanup(world, proxy, journal, "--apply"))
    assert res.exit_code == 0, res.output
    assert all(r["tagged"] and r["project_access"] is False for r in _secret_rows(world, fresh).values())
    world.extra_orphans = fresh


def _env(world) -> dict[str, str]:
    return {"OS_CLIENT_CONFIG_FILE": str(world.sandbox.clouds_yaml)}


def test_kill_9_during_quarantine_converges(kt, world, proxy, journal):
    km = kh.castellan(world.sandbox)
    for trial in range(TRIALS):
        fresh = {kh.volume_key(km, world.owner) for _ in range(2)}
        base = len(_records(journal))
        run = fork_main(_cleanup(world, proxy, journal, "--apply"), _env(world))
        kill_when(run, lambda: len(_records(journal)) >= base + 1 + trial % 3, timeout=60)
        res = kt(*_cleanup(world, proxy, journal, "--apply"))
        assert res.exit_code == 0, res.output
        rows = _secret_rows(world, fresh)
        assert all(r["tagged"] and r["project_access"] is False for r in rows.values()), (trial, rows)
        intents = [r for r in _records(journal) if r["op"] == "quarantine-intent" and r["secret_id"] in fresh]
        assert len(intents) == 2 and all(r["acl"] == {"project_access": True, "users": []} for r in intents)
        world.extra_orphans |= fresh


def test_delete_orders_first_never_referenced_never_twice_with_kills(kt, world, proxy, journal):
    m = world.made
    kh.insert_volume(world.cinder, m["orph_migrated"], world.owner.id, world.project)  # used again
    targets = (_orphans(world) - {m["orph_migrated"]}) | world.extra_orphans
    args = _cleanup(world, proxy, journal, "--phase", "delete", "--after", "0", "--apply")
    for trial in range(TRIALS):
        base = len([r for r in _records(journal) if r["op"] == "delete-intent"])
        run = fork_main(args, _env(world))
        kill_when(run, lambda: len([r for r in _records(journal) if r["op"] == "delete-intent"]) >= base + 1 + trial,
                  timeout=60)
    res = kt(*args, "-f", "json")
    assert res.exit_code == 0, res.output
    rows = _secret_rows(world, targets | {m["orph_migrated"]})
    assert all(rows[s]["deleted"] for s in targets), rows
    assert not rows[m["orph_migrated"]]["deleted"]
    deletes = [r.split()[1] for r in proxy.requests
               if r.startswith("DELETE /v1/secrets/") and r.count("/") == 3]  # the secret, not its metadata
    assert len(deletes) == len(set(deletes)) == len(targets)  # each once, kills and reruns included
    order_deletes = [i for i, r in enumerate(proxy.requests) if r.startswith("DELETE /v1/orders/")]
    assert len(order_deletes) >= 3
    first_secret = next(i for i, r in enumerate(proxy.requests)
                        if r.startswith("DELETE /v1/secrets/") and r.count("/") == 3)
    assert min(order_deletes) < first_secret
    again = json.loads(kt(*args, "-f", "json").stdout)
    assert again["secrets"] == [] and again["orders"] == []


def test_undelete_brings_back_id_acl_and_metadata(kt, world, proxy, journal):
    cert = world.made["orph_cert"]
    res = kt("keys", "undelete", cert, "--barbican-db-url", world.args[1], "--journal", str(journal), "-f", "json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["was_deleted"] and doc["children_restored"]["encrypted_data"] == 1
    row = _secret_rows(world, [cert])[cert]
    assert row == {"deleted": False, "project_access": None, "tagged": False}  # the ACL it had: none
    b = kh.barbican(world.owner)
    ref = f"{world.owner.session.get_endpoint(service_type='key-manager').rstrip('/')}/v1/secrets/{cert}"
    payload = b.secrets.get(ref).payload
    assert payload  # Barbican itself reads it back
    res = kt("keys", "undelete", "0b9c7a3e-0000-4000-8000-000000000000", "--barbican-db-url", world.args[1])
    assert res.exit_code == 1 and "not in Barbican's database" in res.stderr
    assert os.stat(journal).st_mode & 0o777 == 0o600


def test_backup_first_and_barbican_config_file(kt, world, proxy, tmp_path, sandbox):
    conf = sandbox.state.path("barbican") / ".barbican" / "barbican.conf"
    args = _cleanup(world, proxy, tmp_path / "j.jsonl", "--apply", "--backup-out", str(tmp_path / "b.ktbk"))
    args[args.index("--barbican-db-url"):args.index("--barbican-db-url") + 2] = ["--barbican-config-file", str(conf)]
    res = kt(*args)
    assert res.exit_code == 2 and "passphrase" in res.stderr.lower()  # no passphrase source, no terminal
    pw = tmp_path / "pw"
    pw.write_text("a long enough passphrase\n")
    pw.chmod(0o600)
    res = kt(*args, "--passphrase-file", str(pw))
    assert res.exit_code == 0, res.output
    assert (tmp_path / "b.ktbk").stat().st_mode & 0o777 == 0o600
    res = kt("barbican", "inspect", str(tmp_path / "b.ktbk"), "--passphrase-file", str(pw), "-f", "json")
    assert res.exit_code == 0 and json.loads(res.stdout)
