"""migrate without Barbican: config and fixed_key validation, cinder's decisions, host matching,
the journal, plan, status and the log parser on real cinder logs."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from keytools.cinder_db import FIXED_KEY_ID
from keytools.errors import EXIT_STATE, EXIT_UNREACHABLE, EXIT_USAGE, ConfigError
from migrate import config, logparse
from migrate import journal as jr
from migrate.db import CinderDB
from tests.helpers.cli import invoke
from tests.helpers.db_seed import keys, seed
from tests.helpers.paths import TEST_DATA

LOGS = TEST_DATA / "cinder-logs"


# ---- fixed_key and config ---------------------------------------------------------------------------

@pytest.mark.parametrize("value, words", [
    ("zz" * 32, "not hexadecimal"),
    ("abc", "odd number"),
    ("ab" * 24, "192 bits"),
    ("", "empty"),
])
def test_bad_fixed_key_is_refused_with_where(value, words):
    with pytest.raises(ConfigError) as info:
        config.parse_fixed_key(value, "cinder.conf:7 [key_manager] fixed_key")
    assert words in info.value.message and "cinder.conf:7" in info.value.message
    assert info.value.exit_code == EXIT_USAGE


@pytest.mark.parametrize("bits", [128, 256, 512])
def test_valid_key_sizes(bits):
    assert len(config.parse_fixed_key("a1" * (bits // 8), "x")) * 8 == bits


def test_config_reads_key_manager_and_deprecated_keymgr(tmp_path, fixed_key_hex):
    conf = tmp_path / "cinder.conf"
    conf.write_text(f"[database]\nconnection = sqlite:////x.db\n[keymgr]\nfixed_key = {fixed_key_hex}\n"
                    "[key_manager]\nbackend = castellan.key_manager.barbican_key_manager.BarbicanKeyManager\n")
    s = config.load(str(conf))
    assert s.fixed_key == bytes.fromhex(fixed_key_hex) and s.backend == "BarbicanKeyManager"
    assert s.skip_reason() is None and s.db_url == "sqlite:////x.db"


@pytest.mark.parametrize("backend, key, event, line", [
    ("cinder.keymgr.conf_key_mgr.ConfKeyManager", True, config.SKIP_CONF_KEY_MANAGER,
     "Not migrating encryption keys because the ConfKeyManager is still in use."),
    ("barbican", False, config.SKIP_NO_FIXED_KEY,
     "Not migrating encryption keys because the ConfKeyManager's fixed_key is not in use."),
    ("vault", True, config.SKIP_UNSUPPORTED_BACKEND,
     "Not migrating encryption keys because migration to the 'vault' key_manager backend is not supported."),
])
def test_cinder_decisions_exact_lines(backend, key, event, line, fixed_key_hex):
    s = config.Settings("sqlite://", config._short_backend(backend), bytes.fromhex(fixed_key_hex) if key else None)
    assert s.skip_reason() == (event, line)


def test_fixed_key_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        config.read_fixed_key_file(str(tmp_path / "missing"))
    (tmp_path / "k").write_text("# nothing\n")
    with pytest.raises(ConfigError, match="no key"):
        config.read_fixed_key_file(str(tmp_path / "k"))


# ---- database ---------------------------------------------------------------------------------------------

def test_host_matching_like_cinder(cinder_url):
    a = seed(cinder_url, volumes=2, host="ctl-0@lvm#lvm")
    b = seed(cinder_url, volumes=1, host="ctl-0")
    c = seed(cinder_url, volumes=1, host="ctl-00@lvm#lvm")  # must not match ctl-0
    d = seed(cinder_url, volumes=1, host="ctl-1@ceph#rbd", cluster_name="clu@ceph#rbd")
    seed(cinder_url, volumes=1, host="ctl-0@lvm#lvm", deleted=True)  # deleted rows are invisible
    seed(cinder_url, volumes=1, host="ctl-0@lvm#lvm", deleted=None)  # ... and so is deleted = NULL (cinder too)
    seed(cinder_url, volumes=1, host="ctl-0@lvm#lvm", key_id="11111111-0000-0000-0000-000000000000")
    bk = seed(cinder_url, backups=2, backup_host="ctl-0")
    seed(cinder_url, backups=1, backup_host="ctl-0@x")
    db = CinderDB(cinder_url)
    ids = lambda table, **kw: {i.id for i in db.items(table, **kw)}  # noqa: E731
    assert ids("volumes", host="ctl-0") == set(a.volumes + b.volumes)
    assert ids("volumes", host="ctl-0@lvm") == set(a.volumes)
    assert ids("volumes", host="ctl-0@lvm#lvm") == set(a.volumes)
    assert ids("volumes", host="ctl-00") == set(c.volumes)
    assert ids("volumes", cluster="clu") == set(d.volumes)
    assert ids("backups", host="ctl-0") == set(bk.backups)
    assert db.global_counts() == {"volumes": 5, "snapshots": 0, "backups": 3}
    db.dispose()


def test_items_page_through_many_rows(cinder_url, monkeypatch):
    import migrate.db as mdb

    monkeypatch.setattr(mdb, "PAGE", 7)
    s = seed(cinder_url, volumes=30)
    db = CinderDB(cinder_url)
    got = [i.id for i in db.items("volumes")]
    assert sorted(got) == sorted(s.volumes) and len(got) == 30
    db.dispose()


def test_compare_and_swap_only_moves_all_zeros_rows(cinder_url):
    s = seed(cinder_url, volumes=1, snapshots_per_volume=2)
    db = CinderDB(cinder_url)
    vid = s.volumes[0]
    assert db.swap("volumes", vid, "aaaa") is True
    assert db.swap("volumes", vid, "bbbb") is False  # a second run loses
    assert db.swap_snapshots(vid, "aaaa") == 2
    assert set(keys(cinder_url, "snapshots").values()) == {"aaaa"}
    db.dispose()


def test_stranded_snapshot_decisions_without_barbican(cinder_url, tmp_path):
    """Without a read-back (plan), only a journal-migrated volume's snapshots are repairable."""
    from migrate import repair

    s = seed(cinder_url, volumes=3, snapshots_per_volume=1)
    gone = seed(cinder_url, volumes=1, snapshots_per_volume=1)
    db = CinderDB(cinder_url)
    db.swap("volumes", s.volumes[0], "k-0")  # crash between cinder's two updates
    db.swap("volumes", s.volumes[1], "k-1")  # keytools migrated it (journal below)
    db.swap("volumes", gone.volumes[0], "k-2")
    import sqlalchemy as sa
    with db.engine.begin() as c:
        c.execute(sa.text("UPDATE volumes SET deleted = 1 WHERE id = :i"), {"i": gone.volumes[0]})
    path = tmp_path / "j.jsonl"
    with jr.Journal(path) as j:
        j.record("done", "volumes", s.volumes[1], "http://b/v1/secrets/k-1")
    got = {d.volume_id: (d.repair, d.reason) for d in repair.assess(db, None, None, True, path, None)}
    assert got == {s.volumes[0]: (False, repair.NOT_CHECKED), s.volumes[1]: (True, repair.BY_JOURNAL),
                   gone.volumes[0]: (False, repair.VOLUME_GONE)}
    assert all(d.reason == repair.OUT_OF_SCOPE for d in repair.assess(db, "ctl-9", None, True, path, None)
               if d.volume_id != gone.volumes[0])
    assert {d.reason for d in repair.assess(db, None, None, False, path, None)} == {repair.OUT_OF_SCOPE,
                                                                                    repair.VOLUME_GONE}
    checked = repair.assess(db, None, None, True, path, lambda key: (False, ""))
    assert {d.volume_id: d.reason for d in checked}[s.volumes[0]] == repair.OTHER_KEY
    db.dispose()


def test_not_a_cinder_database_and_unreachable(tmp_path, key_file):
    empty = tmp_path / "empty.sqlite"
    r = invoke(["migrate", "plan", "--db-url", f"sqlite:///{empty}", "--fixed-key-file", key_file])
    assert r.exit_code == EXIT_USAGE and "not a Cinder database" in r.stderr and "Traceback" not in r.output
    r = invoke(["migrate", "plan", "--db-url", "mysql+pymysql://u:pw@127.0.0.1:1/cinder",
                "--fixed-key-file", key_file])
    assert r.exit_code == EXIT_UNREACHABLE and "cannot connect" in r.stderr and "pw@" not in r.output
    r = invoke(["migrate", "plan", "--db-url", "nosuchdialect://x", "--fixed-key-file", key_file])
    assert r.exit_code == EXIT_USAGE and r.stderr.count("\n") == 1


# ---- journal ------------------------------------------------------------------------------------------------

def test_journal_is_private_append_only_and_replays(tmp_path):
    path = jr.journal_path(tmp_path / "st", "sqlite:///x")
    with jr.Journal(path) as j:
        j.record("intent", "volumes", "v1")
        j.record("stored", "volumes", "v1", "http://b/v1/secrets/s1")
        j.record("intent", "volumes", "v2")  # killed before the ref came back
        j.record("intent", "backups", "b1")
        j.record("stored", "backups", "b1", "http://b/v1/secrets/s2")
        j.record("done", "backups", "b1", "http://b/v1/secrets/s2")
    with open(path, "a") as f:
        f.write('{"op": "stored", "tab')  # torn line from kill -9
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    r = jr.replay(path)
    assert r.reusable("volumes", "v1") == "http://b/v1/secrets/s1"
    assert r.unresolved_intents() == [("volumes", "v2")]
    assert ("backups", "b1") not in r.rows  # cleanly done rows are not kept in memory
    assert list(jr.iter_done(path)) == [("backups", "b1", "http://b/v1/secrets/s2")]
    assert r.orphans("volumes", "v1", "s9") == ["http://b/v1/secrets/s1"]  # row moved on elsewhere
    assert r.orphans("volumes", "v1", FIXED_KEY_ID) == []  # kept for reuse


# ---- CLI without Barbican -----------------------------------------------------------------------------------

def _cli(*args):
    return invoke([str(a) for a in args])


def test_plan_counts_and_changes_nothing(cinder_url, key_file):
    seed(cinder_url, volumes=3, snapshots_per_volume=2, host="ctl-0@lvm#lvm", project_id="p1")
    seed(cinder_url, volumes=2, host="ctl-1@lvm#lvm", project_id="p2")
    seed(cinder_url, backups=2, backup_host="ctl-0")
    before = keys(cinder_url, "volumes")
    r = _cli("migrate", "plan", "--db-url", cinder_url, "--fixed-key-file", key_file, "--format", "json",
             "--state-dir", Path(cinder_url[10:]).parent / "st")
    assert r.exit_code == 0, r.output
    plan = json.loads(r.stdout)
    assert plan["decision"] == "migrate" and plan["to_migrate"] == {"volumes": 5, "snapshots": 6, "backups": 2}
    assert {(x["host"], x["project"], x["rows"]) for x in plan["by_host_project"]} == {
        ("ctl-0@lvm#lvm", "p1", 3), ("ctl-1@lvm#lvm", "p2", 2), ("ctl-0", "p-owner", 2)}
    assert keys(cinder_url, "volumes") == before
    r = _cli("migrate", "plan", "--db-url", cinder_url, "--fixed-key-file", key_file, "--host", "ctl-1",
             "--format", "json")
    assert json.loads(r.stdout)["to_migrate"] == {"volumes": 2, "snapshots": 0, "backups": 0}


@pytest.mark.parametrize("backend, key, code, line", [
    ("cinder.keymgr.conf_key_mgr.ConfKeyManager", True, EXIT_STATE,
     "Not migrating encryption keys because the ConfKeyManager is still in use."),
    ("barbican", False, EXIT_USAGE,
     "Not migrating encryption keys because the ConfKeyManager's fixed_key is not in use."),
    ("vault", True, EXIT_STATE,
     "Not migrating encryption keys because migration to the 'vault' key_manager backend is not supported."),
])
def test_run_refuses_like_cinder(cinder_conf, cinder_url, backend, key, code, line, tmp_path):
    seed(cinder_url, volumes=1)
    conf = cinder_conf(backend=backend, fixed_key=None if not key else config_key())
    r = _cli("migrate", "run", "--config-file", conf, "--state-dir", tmp_path / "st")
    assert r.exit_code == code, r.output
    assert line in r.stderr and "keytools: error:" in r.stderr and "Traceback" not in r.output
    if backend == "vault":  # cinder logs the global status after this one only
        assert "There are still 1 volume(s) using the ConfKeyManager's all-zeros encryption key ID." in r.stderr
    else:
        assert "There are still" not in r.stderr and "No backups are" not in r.stderr
    r = _cli("migrate", "plan", "--config-file", conf, "--format", "json")
    assert r.exit_code == 0 and json.loads(r.stdout)["message"] == line


def config_key() -> str:
    from tests.migrate.conftest import FIXED_KEY_HEX

    return FIXED_KEY_HEX


def test_nothing_to_migrate_line_and_status(cinder_conf, cinder_url, tmp_path):
    conf = cinder_conf()
    r = _cli("migrate", "run", "--config-file", conf, "--state-dir", tmp_path / "st", "--format", "json")
    assert r.exit_code == 0, r.output
    assert ("Not migrating encryption keys because there are no volumes or backups associated with this host."
            in r.stderr)
    assert "No volumes are using the ConfKeyManager's encryption_key_id." in r.stderr
    assert "No backups are known to be using the ConfKeyManager's encryption_key_id." in r.stderr
    assert json.loads(r.stdout)["skipped"] == config.SKIP_NOTHING_TO_MIGRATE


# ---- log parser -------------------------------------------------------------------------------------------------

EXPECTED = json.loads((LOGS / "EXPECTED.json").read_text())


@pytest.mark.parametrize("name", [k for k in EXPECTED if not k.startswith("_")])
def test_logparse_matches_expected(name):
    spec = EXPECTED[name]
    parsed = logparse.parse_file(f"{spec['host']}={LOGS / name}")
    assert parsed["host"] == spec["host"] and parsed["service"] == spec["service"]
    assert len(parsed["runs"]) == len(spec["runs"])
    for got, want in zip(parsed["runs"], spec["runs"], strict=True):
        s = want["summary"]
        assert got["started"] == s["started"]
        assert got["attempted"] == s["items_attempted"]
        assert got["attempted_by_type"] == s["items_attempted_by_type"]
        assert got["errors"] == s["item_errors"] and got["migrated"] == s["items_migrated"]
        assert got["aborted"] == s["aborted_too_many_errors"]
        assert got["volumes_remaining"] == s["final_volumes_remaining"]
        assert got["backups_remaining"] == s["final_backups_remaining"]
        assert got["skip_reason"] == s["skip_reason"]
        assert got["request_id"] == want["request_id"] and got["pid"] == str(want["pid"])


def test_logparse_documented_wording_errors_abort_and_several_starts(tmp_path):
    pre = "2026-11-23 12:45:38.343 {pid} {lvl} cinder.keymgr.migration [None req-{rid} - - - - - -] "
    rid1, rid2 = "1" * 8 + "-1111-1111-1111-" + "1" * 12, "2" * 8 + "-2222-2222-2222-" + "2" * 12
    vid = "7f11ee19-d49d-4a71-a615-dc020b7ef25e"
    lines = [pre.format(pid=1, lvl="INFO", rid=rid1) + "Starting migration of ConfKeyManager keys."]
    for _ in range(4):
        lines.append(pre.format(pid=1, lvl="INFO", rid=rid1) + f"Migrating volume {vid} encryption key to Barbican")
        lines.append(pre.format(pid=1, lvl="ERROR", rid=rid1).replace("cinder.keymgr.migration",
                     "barbicanclient.client") + "4xx Client error: Forbidden: Secret creation attempt not allowed")
        lines.append(pre.format(pid=1, lvl="ERROR", rid=rid1) + "Error migrating encryption key: Forbidden: "
                     "Secret creation attempt not allowed - please review your user/project privileges")
    lines.append(pre.format(pid=1, lvl="ERROR", rid=rid1) + "Aborting encryption key migration (too many errors).")
    lines.append(pre.format(pid=1, lvl="WARNING", rid=rid1) + "There are still 3 volume(s) using the "
                 "ConfKeyManager's all-zeros encryption key ID.")
    lines.append(pre.format(pid=1, lvl="WARNING", rid=rid1) + "There are still 2 backup(s) using the "
                 "ConfKeyManager's all-zeros encryption key ID.")
    lines.append(pre.format(pid=2, lvl="INFO", rid=rid2) + "Not migrating encryption keys because there are no "
                 "volumes associated with this host.")
    lines.append(pre.format(pid=2, lvl="INFO", rid=rid2) + "No volumes are using the ConfKeyManager's "
                 "encryption_key_id.")
    f = tmp_path / "ctl-9-cinder-volume.log"
    f.write_text("\n".join(lines) + "\n")
    parsed = logparse.parse_file(str(f))
    first, second = parsed["runs"]
    assert parsed["host"] == "ctl-9"
    assert first["attempted"] == 4 and first["errors"] == 4 and first["migrated"] == 0 and first["aborted"]
    assert first["volumes_remaining"] == 3 and first["backups_remaining"] == 2
    assert "Forbidden" in first["last_error"]
    assert second["skip_reason"] == "not_migrating_no_volumes_or_backups" and second["volumes_remaining"] == 0


# ---- migrate status: several files, globs, bad paths --------------------------------------------------------

def _log_dir(tmp_path: Path) -> Path:
    import shutil

    d = tmp_path / "cinder"
    d.mkdir()
    for name in ("ctl-0-cinder-volume.log", "ctl-0-cinder-backup.log", "ctl-2-cinder-volume.log"):
        shutil.copyfile(LOGS / name, d / name)
    (d / "subdir.log").mkdir()  # a directory a glob also matches: skipped
    return d


def test_status_takes_positional_files_and_repeatable_globs(tmp_path):
    d = _log_dir(tmp_path)
    r = _cli("migrate", "status", "--log", f"{d}/*-cinder-volume.log", "--format", "json")
    assert r.exit_code == 0, r.output
    hosts = json.loads(r.stdout)["hosts"]
    assert [(h["host"], h["service"], h["state"]) for h in hosts] == [
        ("ctl-0", "cinder-volume", "done"), ("ctl-2", "cinder-volume", "not_migrating_no_volumes_or_backups")]
    # what the shell makes of an unquoted --log /var/log/cinder/*.log: one --log, the rest positional
    files = sorted(str(p) for p in d.glob("*-cinder-*.log"))
    r = _cli("migrate", "status", "--log", files[0], *files[1:], "--format", "json")
    assert r.exit_code == 0 and len(json.loads(r.stdout)["hosts"]) == 3
    # positional glob, HOST= applied to every match, overlap counted once
    r = _cli("migrate", "status", f"ctl-9={d}/ctl-0-*.log", "--log", f"ctl-9={d}/ctl-0-cinder-backup.log",
             "--format", "json")
    hosts = json.loads(r.stdout)["hosts"]
    assert [(h["host"], h["service"], h["migrated"]) for h in hosts] == [("ctl-9", "cinder-backup", 4),
                                                                          ("ctl-9", "cinder-volume", 12)]
    r = _cli("migrate", "status", f"{d}/*.log")
    assert r.exit_code == 0 and "ctl-2" in r.stdout and "not_migrating_no_volumes_or_backups" in r.stdout


@pytest.mark.parametrize("make, words", [
    (lambda d: f"{d}/*.nothing", "no file matches this pattern"),
    (lambda d: f"{d}/missing.log", "no such file"),
    (lambda d: str(d / "subdir.log"), "is a directory, not a regular file"),
    (lambda d: str(d / "locked.log"), "cannot read (Permission denied)"),
    (lambda d: str(d / "pipe.log"), "is a FIFO (named pipe), not a regular file"),  # would block forever
    (lambda d: "/dev/zero", "is a device, not a regular file"),  # would be read until memory runs out
])
def test_status_bad_log_paths_are_one_line_usage_errors(tmp_path, make, words):
    d = _log_dir(tmp_path)
    locked = d / "locked.log"
    locked.write_text("x\n")
    locked.chmod(0)
    os.mkfifo(d / "pipe.log")
    if words.endswith("(Permission denied)") and os.access(locked, os.R_OK):
        pytest.skip("running as root: every file is readable")
    spec = make(d)
    for args in (["--log", spec], [spec], [str(d / "ctl-0-cinder-volume.log"), "--log", spec]):
        r = _cli("migrate", "status", *args)
        assert r.exit_code == EXIT_USAGE, r.output
        assert words in r.stderr and spec.split("=")[-1] in r.stderr
        assert r.stderr.count("\n") == 1 and "Traceback" not in r.output and r.stdout == ""


def test_snapshot_repair_converges_after_a_kill_midway(cinder_url, tmp_path):
    """Each repair is one compare-and-swap UPDATE: a run killed after some of them leaves the
    rest on the all-zeros id, and a rerun finishes exactly those (and then has nothing to do)."""
    from migrate import engine, repair

    s = seed(cinder_url, volumes=1, snapshots_per_volume=3)
    db = CinderDB(cinder_url)
    db.swap("volumes", s.volumes[0], "k-j")
    path = tmp_path / "j.jsonl"
    with jr.Journal(path) as j:
        j.record("done", "volumes", s.volumes[0], "http://b/v1/secrets/k-j")
    assert db.repair_snapshot(s.snapshots[0], "k-j")  # the killed run got this far
    scope = engine.Scope()
    repaired, left = repair.repair_stranded(db, scope, path, None)
    assert sorted(r["id"] for r in repaired) == sorted(s.snapshots[1:]) and left == []
    assert set(keys(cinder_url, "snapshots").values()) == {"k-j"}
    assert repair.repair_stranded(db, scope, path, None) == ([], [])
    assert not db.repair_snapshot(s.snapshots[0], "other")  # CAS: a repaired snapshot is never moved again
    db.dispose()
