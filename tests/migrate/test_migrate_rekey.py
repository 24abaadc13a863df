"""``migrate rekey`` on real LUKS1/LUKS2 headers (image files made by cryptsetup luksFormat, keyed with
the hex of fixed_key as os-brick derives it), a Cinder schema from cinder-manage, volume types with
256- and 512-bit keys and the sandbox's Barbican; snapshots and backups sharing the old key id."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess

import pytest

from keytools.cinder_db import FIXED_KEY_ID
from tests.helpers.db_seed import keys, seed
from tests.helpers.fault_proxy import FaultProxy
from tests.migrate.luks_helpers import encrypted_type, luks_format, opens, update, used_slots
from tests.migrate.rekey_helpers import barbican, headers_open_with_db_keys, make_fleet, rekey_args

__all__ = ["barbican"]  # a fixture

pytestmark = pytest.mark.skipif(shutil.which("cryptsetup") is None, reason="cryptsetup not installed")
def test_rekey_migrated_volumes_luks1_luks2_256_512(kt, cinder_url, key_file, fixed_key_hex, tmp_path, barbican):
    fixed = bytes.fromhex(fixed_key_hex)
    devs, state = tmp_path / "devs", tmp_path / "st"
    rows = make_fleet(cinder_url, devs, fixed, 4, snapshots_per_volume=1)
    t256, t512 = encrypted_type(cinder_url, 256), encrypted_type(cinder_url, 512)
    for i, vid in enumerate(rows.volumes):
        update(cinder_url, "volumes", vid, volume_type_id=t512 if i % 2 else t256)
    r = kt("--os-cloud", "sandbox-demo", "migrate", "run", "--db-url", cinder_url, "--fixed-key-file", str(key_file),
           "--state-dir", str(state), "--concurrency", "2")
    assert r.exit_code == 0, r.output
    migrated = keys(cinder_url, "volumes")
    backup = seed(cinder_url, backups=1, key_id=migrated[rows.volumes[0]]).backups[0]  # shares the old key id
    # the dry run changes nothing and names every volume
    before = {v: (devs / f"volume-{v}").read_bytes() for v in rows.volumes}
    r = kt(*rekey_args(cinder_url, key_file, state, devs, "--dry-run", "-f", "json"))
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["counts"] == {"would rekey": 4} and keys(cinder_url, "volumes") == migrated
    assert {v: (devs / f"volume-{v}").read_bytes() for v in rows.volumes} == before
    r = kt(*rekey_args(cinder_url, key_file, state, devs, "--concurrency", "2", "-f", "json"))
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    res = {v["volume_id"]: v for v in doc["volumes"]}
    assert doc["counts"] == {"rekeyed": 4}
    now = keys(cinder_url, "volumes")
    snaps = keys(cinder_url, "snapshots")
    for i, vid in enumerate(rows.volumes):
        assert now[vid] not in (migrated[vid], FIXED_KEY_ID) and res[vid]["new_key_id"] == now[vid]
        assert barbican.bits(now[vid]) == (512 if i % 2 else 256)
        assert len(barbican.payload(now[vid])) * 8 == (512 if i % 2 else 256)
        assert "u-owner" in barbican.acl_users(now[vid])
        assert barbican.payload(migrated[vid]) == fixed  # the old secret is kept, never deleted
        assert res[vid]["header"] == ("LUKS1" if i % 2 == 0 else "LUKS2") and res[vid]["slots_removed"]
        assert res[vid]["volume_key"] == "kept" and "volume key stayed" in res[vid]["volume_key_note"]
    # snapshots keep the old id (their data holds the old header) and are reported with the backup
    assert {snaps[s] for s in rows.snapshots} == {migrated[v] for v in rows.volumes}
    kept = {(k["table"], k["id"]) for k in res[rows.volumes[0]]["old_key_kept_for"]}
    assert ("backups", backup) in kept and any(t == "snapshots" for t, _ in kept)
    headers_open_with_db_keys(cinder_url, devs, barbican, fixed, rows.volumes)
    journal = "".join(p.read_text() for p in state.glob("rekey-*.jsonl"))
    assert '"op":"done"' in journal and oct(next(state.glob("rekey-*.jsonl")).stat().st_mode)[-3:] == "600"
    for text in (r.output, journal):
        assert fixed_key_hex not in text and fixed_key_hex.upper() not in text
        for vid in rows.volumes:
            assert barbican.payload(now[vid]).hex() not in text
    # rerun: nothing is keyed with fixed_key any more; a named volume is rotated again (routine rotation)
    r = kt(*rekey_args(cinder_url, key_file, state, devs, "-f", "json"))
    assert r.exit_code == 0 and json.loads(r.stdout)["volumes"] == [], r.output
    r = kt(*rekey_args(cinder_url, key_file, state, devs, "--volume", rows.volumes[1]))
    assert r.exit_code == 0, r.output
    assert "1 rekeyed" in r.stdout
    rotated = keys(cinder_url, "volumes")[rows.volumes[1]]
    assert rotated != now[rows.volumes[1]] and barbican.bits(rotated) == 512
    headers_open_with_db_keys(cinder_url, devs, barbican, fixed, rows.volumes)


def test_refusals_are_per_volume_and_the_run_goes_on(kt, cinder_url, key_file, fixed_key_hex, tmp_path, barbican):
    fixed = bytes.fromhex(fixed_key_hex)
    devs, state = tmp_path / "devs", tmp_path / "st"
    good = make_fleet(cinder_url, devs, fixed, 1).volumes[0]
    rows = seed(cinder_url, volumes=7).volumes  # on the all-zeros id
    missing, not_luks, other_key, full, directory, in_use, deleted_later = rows
    (devs / f"volume-{not_luks}").write_bytes(b"\0" * 65536)
    luks_format(devs / f"volume-{other_key}", b"0123456789abcdef" * 4)
    luks_format(devs / f"volume-{full}", fixed.hex().encode(), "luks1")
    extra = tmp_path / "extra-passphrase"
    extra.write_bytes(b"another passphrase")
    for _ in range(7):  # fill LUKS1's 8 keyslots
        subprocess.run(["cryptsetup", "luksAddKey", "-q", "--pbkdf-force-iterations", "1000", "--key-file", "-",
                        str(devs / f"volume-{full}"), str(extra)], input=fixed.hex().encode(), check=True,
                       capture_output=True)
    (devs / f"volume-{directory}").mkdir()
    luks_format(devs / f"volume-{in_use}", fixed.hex().encode())
    update(cinder_url, "volumes", in_use, status="in-use", attach_status="attached")
    luks_format(devs / f"volume-{deleted_later}", fixed.hex().encode())
    update(cinder_url, "volumes", deleted_later, deleted=True)
    full_slots = used_slots(devs / f"volume-{full}")
    r = kt(*rekey_args(cinder_url, key_file, state, devs, "-f", "json"))
    assert r.exit_code == 1, r.output
    res = {v["volume_id"]: v for v in json.loads(r.stdout)["volumes"]}
    assert res[good]["status"] == "rekeyed"
    assert res[missing]["status"] == "refused" and "missing" in res[missing]["reason"]
    assert res[not_luks]["status"] == "refused" and "not LUKS" in res[not_luks]["reason"]
    assert res[other_key]["status"] == "refused" and "does not open" in res[other_key]["reason"]
    assert res[directory]["status"] == "refused" and "unreadable" in res[directory]["reason"]
    assert res[in_use]["status"] == "left alone" and "--include-in-use" in res[in_use]["reason"]
    assert deleted_later not in res  # deleted volumes are not selected
    assert full_slots == 8
    assert res[full]["status"] == "refused" and "no free keyslot" in res[full]["reason"], res[full]
    current = keys(cinder_url, "volumes")
    assert all(current[v] == FIXED_KEY_ID for v in rows)  # nothing half-done
    assert "6 of 7 volume(s) not re-keyed" in r.stderr
    assert "Traceback" not in r.output
    # in-use volumes with the explicit flag; a deleted volume named explicitly is left alone
    r = kt(*rekey_args(cinder_url, key_file, state, devs, "--include-in-use", "--reencrypt-data", "--volume", in_use,
                       "--volume", deleted_later, "-f", "json"))
    res = {v["volume_id"]: v for v in json.loads(r.stdout)["volumes"]}
    assert res[in_use]["status"] == "rekeyed" and res[deleted_later]["status"] == "left alone"
    assert res[in_use]["volume_key"] == "kept" and "attached" in res[in_use]["volume_key_note"]
    assert "deleted" in res[deleted_later]["reason"] and r.exit_code == 1
    headers_open_with_db_keys(cinder_url, devs, barbican, fixed, [good, in_use])


def test_bad_input_is_one_line(kt, cinder_url, key_file, tmp_path):
    seed(cinder_url, volumes=1)
    r = kt(*rekey_args(cinder_url, key_file, tmp_path, tmp_path), env={"PATH": str(tmp_path / "empty-bin")})
    assert r.exit_code == 2 and "cryptsetup is not installed" in r.stderr, r.output
    assert len(r.stderr.strip().splitlines()) == 1
    r = kt("--os-cloud", "sandbox-demo", "migrate", "rekey", "--db-url", cinder_url, "--fixed-key-file",
           str(key_file), "--luks", str(tmp_path / "one.img"))
    assert r.exit_code == 2 and "names no volume" in r.stderr
    r = kt("--os-cloud", "sandbox-demo", "migrate", "rekey", "--db-url", cinder_url, "--state-dir", str(tmp_path),
           "--luks", str(tmp_path / "volume-{id}"))
    assert r.exit_code == 2 and "fixed_key" in r.stderr and "Traceback" not in r.output


def test_volume_changed_meanwhile_is_left_alone(cinder_url, fixed_key_hex, tmp_path, creator_session, monkeypatch):
    """The compare-and-swap loses (the row moved to another key between the read and the swap): the
    new keyslot is taken out again and the volume reported, the header still opens with fixed_key."""
    from migrate import keyslots, luks as lk, rekey as rk
    from migrate.barbican import Barbican
    from migrate.db import RekeyDB

    fixed = bytes.fromhex(fixed_key_hex)
    devs = tmp_path / "devs"
    vid = make_fleet(cinder_url, devs, fixed, 1, kinds=("luks2",)).volumes[0]
    db = RekeyDB(cinder_url)
    real_swap = db.swap_key

    def racing_swap(volume_id, old, new):
        update(cinder_url, "volumes", volume_id, encryption_key_id="11111111-2222-3333-4444-555555555555")
        return real_swap(volume_id, old, new)

    monkeypatch.setattr(db, "swap_key", racing_swap)
    result = rk.rekey_volumes(db, lk.PathSpec.parse([str(devs / "volume-{id}")]),
                              lambda: Barbican(creator_session), shutil.which("cryptsetup"), fixed,
                              tmp_path / "j.jsonl", rk.RekeyOptions(pbkdf=keyslots.Pbkdf("pbkdf2", 1000)))
    db.dispose()
    (res,) = result.volumes
    assert res.status == "left alone" and "re-keyed meanwhile" in res.reason and res.unused_secret
    assert used_slots(devs / f"volume-{vid}") == 1 and opens(devs / f"volume-{vid}", fixed.hex().encode())
    assert result.failure() is not None and result.failure().exit_code == 1


def test_barbican_failing_midway_then_rerun(kt, sandbox, cinder_url, key_file, fixed_key_hex, tmp_path, barbican):
    fixed = bytes.fromhex(fixed_key_hex)
    devs, state = tmp_path / "devs", tmp_path / "st"
    rows = make_fleet(cinder_url, devs, fixed, 3)
    proxy = FaultProxy(barbican.endpoint_url)
    try:
        proxy.plan = ["ok", "lost"]  # the second secret is stored but its answer lost (found by name); then 500s
        proxy.default = "500"
        r = kt(*rekey_args(cinder_url, key_file, state, devs, "--concurrency", "1", "--barbican-endpoint",
                           proxy.url, "-f", "json"))
        assert r.exit_code == 4 and "Barbican unreachable" in r.stderr, r.output
        doc = json.loads(r.stdout)
        assert doc["counts"] == {"rekeyed": 2, "error": 1}, doc["counts"]
        (failed,) = [v for v in doc["volumes"] if v["status"] == "error"]
        assert failed["new_key_id"] is None and keys(cinder_url, "volumes")[failed["volume_id"]] == FIXED_KEY_ID
        assert "Traceback" not in r.output
        headers_open_with_db_keys(cinder_url, devs, barbican, fixed, rows.volumes)
        proxy.default = "ok"
        r = kt(*rekey_args(cinder_url, key_file, state, devs, "--barbican-endpoint", proxy.url, "-f", "json"))
        assert r.exit_code == 0, r.output
        doc = json.loads(r.stdout)
        assert doc["counts"] == {"rekeyed": 1}
    finally:
        proxy.close()
    headers_open_with_db_keys(cinder_url, devs, barbican, fixed, rows.volumes)
    assert all(k != FIXED_KEY_ID for k in keys(cinder_url, "volumes").values())


def test_unreadable_header_as_nobody(tmp_path, fixed_key_hex):
    """root reads anything: the check that a path cannot be opened runs as nobody in a child."""
    import os

    from migrate import keyslots

    if os.geteuid() != 0:
        pytest.skip("needs root to drop to nobody")
    path = tmp_path / "volume-x"
    luks_format(path, fixed_key_hex.encode())
    path.chmod(stat.S_IRUSR | stat.S_IWUSR)
    os.chmod(tmp_path, 0o755)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.setgid(65534)
            os.setuid(65534)
            try:
                keyslots.Header(str(path), "cryptsetup").check()
            except keyslots.HeaderError as exc:
                code = 0 if exc.reason == "unreadable" else 2
        finally:
            os._exit(code)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0


def test_concurrency_is_bounded_by_memory():
    """argon2id keyslots take up to 1 GiB each: no more at once than GiB available (pbkdf2: no bound)."""
    from migrate import keyslots, rekey as rk

    n, note = rk.memory_bound(8, keyslots.Pbkdf(), available=3 * rk.GIB + 5)
    assert n == 3 and "1 GiB" in note and "--concurrency 8 lowered to 3" in note
    assert rk.memory_bound(8, keyslots.Pbkdf("argon2id"), available=rk.GIB // 2)[0] == 1
    assert rk.memory_bound(8, keyslots.Pbkdf("pbkdf2", 1000), available=1) == (8, "")


def test_host_scope(kt, cinder_url, key_file, fixed_key_hex, tmp_path):
    """--host matches as cinder does (host, host@backend, host@backend#pool); others are not selected."""
    fixed = bytes.fromhex(fixed_key_hex)
    devs, state = tmp_path / "devs", tmp_path / "st"
    here = make_fleet(cinder_url, devs, fixed, 2, host="ctl-1@lvm#pool").volumes
    make_fleet(cinder_url, devs, fixed, 1, host="ctl-10@lvm#pool")
    r = kt(*rekey_args(cinder_url, key_file, state, devs, "--host", "ctl-1", "--dry-run", "-f", "json"))
    assert r.exit_code == 0, r.output
    assert sorted(v["volume_id"] for v in json.loads(r.stdout)["volumes"]) == sorted(here)


def test_new_secret_readers_old_acl_and_acl_project(kt, sandbox, admin_session, creator_session, cinder_url,
                                                    key_file, fixed_key_hex, tmp_path, barbican):
    """The new secret's read ACL: the old secret's readers plus the owner, and with --acl project every
    member of the volume's (real Keystone) project."""
    from keytools import keymanager
    from tests.migrate import glance_helpers as gh

    fixed = bytes.fromhex(fixed_key_hex)
    devs, state = tmp_path / "devs", tmp_path / "st"
    tenants = gh.make_tenants(sandbox, admin_session)
    client = keymanager.barbican_client(creator_session)
    old_ref = client.secrets.create(name="rekey-acl-test", algorithm="AES", bit_length=256, secret_type="symmetric",
                                    payload=fixed).store()
    client.acls.create(entity_ref=old_ref, users=["u-extra-reader"]).submit()
    old = old_ref.rpartition("/")[2]
    (owned,) = make_fleet(cinder_url, devs, fixed, 1, key_id=old, user_id=tenants.a1.id).volumes
    (project,) = make_fleet(cinder_url, devs, fixed, 1, user_id=tenants.a1.id, project_id=tenants.alpha).volumes
    r = kt(*rekey_args(cinder_url, key_file, state, devs, "--volume", owned, "-f", "json"))
    assert r.exit_code == 0, r.output
    new = keys(cinder_url, "volumes")[owned]
    assert set(barbican.acl_users(new)) == {"u-extra-reader", tenants.a1.id}
    r = kt(*rekey_args(cinder_url, key_file, state, devs, "--volume", project, "--acl", "project", "--admin-cloud",
                       "sandbox-admin", "-f", "json"))
    assert r.exit_code == 0, r.output
    assert set(barbican.acl_users(keys(cinder_url, "volumes")[project])) == {tenants.a1.id, tenants.a2.id}


def test_killed_run_volume_rekeyed_by_someone_else_is_left_alone(kt, cinder_url, key_file, fixed_key_hex, tmp_path,
                                                                 creator_session, barbican, monkeypatch):
    """A run added its keyslot and stopped before the swap; then the volume moved to another key (another
    tool, an operator). The rerun takes the dead run's keyslot out with the current key and leaves the
    volume alone instead of re-keying what it was not asked to."""
    from keytools import keymanager
    from migrate import keyslots

    fixed = bytes.fromhex(fixed_key_hex)
    devs, state = tmp_path / "devs", tmp_path / "st"
    (vid,) = make_fleet(cinder_url, devs, fixed, 1, kinds=("luks2",)).volumes
    path = devs / f"volume-{vid}"
    from keytools.errors import ServiceUnavailable
    from migrate.db import RekeyDB

    def database_gone(*_args):
        raise ServiceUnavailable("the database went away")  # the run stops right before step 3

    monkeypatch.setattr(RekeyDB, "swap_key", database_gone)
    assert kt(*rekey_args(cinder_url, key_file, state, devs)).exit_code == 4
    monkeypatch.undo()
    assert used_slots(path) == 2 and keys(cinder_url, "volumes")[vid] == FIXED_KEY_ID
    other_key = bytes(range(32))
    other = keymanager.barbican_client(creator_session).secrets.create(
        name="someone-else", algorithm="AES", bit_length=256, secret_type="symmetric", payload=other_key).store()
    header = keyslots.Header(str(path), shutil.which("cryptsetup"), keyslots.Pbkdf("pbkdf2", 1000))
    header.add(fixed, other_key)
    header.remove_key(fixed, other_key)
    update(cinder_url, "volumes", vid, encryption_key_id=other.rpartition("/")[2])
    r = kt(*rekey_args(cinder_url, key_file, state, devs, "-f", "json"))
    (res,) = json.loads(r.stdout)["volumes"]
    assert res["status"] == "left alone" and "re-keyed meanwhile" in res["reason"] and r.exit_code == 1
    assert used_slots(path) == 1 and opens(path, other_key.hex().encode())
    r = kt(*rekey_args(cinder_url, key_file, state, devs, "-f", "json"))
    assert r.exit_code == 0 and json.loads(r.stdout)["volumes"] == []  # nothing left to finish
