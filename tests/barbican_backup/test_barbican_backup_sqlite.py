"""Backup, restore and drill on the sandbox's Barbican (SQLite), through the real CLI."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import stat
import subprocess
from pathlib import Path

import pytest
from barbican_backup_helpers import (PASSPHRASE, barbican_conf, conf_copy, delete_all, kek_of, payload,
                                     store_secrets)

from keytools.barbican import operations
from keytools.barbican.archive import KeySource
from keytools.barbican.db_sqlite import stats_of
from tests.helpers.cli import keytools_argv
from tests.helpers.kill import kill_when, spawn

ENV = {"BK_PASS": PASSPHRASE}


@pytest.fixture(scope="module")
def backed_up(sandbox, admin_session, tmp_path_factory):
    """Secrets stored in the live Barbican, then one archive of it (made through the CLI)."""
    from keytools.cli import main

    tmp = tmp_path_factory.mktemp("bk-sqlite")
    made = store_secrets(admin_session, "sqlite")
    archive = tmp / "barbican.ktbak"
    os.environ["BK_PASS"] = PASSPHRASE
    try:
        assert main(["barbican", "backup", "--config", str(barbican_conf(sandbox)), "--out", str(archive),
                     "--passphrase-env", "BK_PASS", "--format", "json"]) == 0
    finally:
        del os.environ["BK_PASS"]
    return {"tmp": tmp, "archive": archive, "secrets": made}


def fresh_target(sandbox, tmp: Path, name: str, **kw) -> Path:
    return conf_copy(barbican_conf(sandbox), tmp / f"{name}.conf", connection=f"sqlite:///{tmp / name}.db", **kw)


def test_archive_is_private_and_holds_nothing_in_clear(sandbox, backed_up, kt):
    archive: Path = backed_up["archive"]
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    blob = archive.read_bytes()
    kek = kek_of(barbican_conf(sandbox))
    for needle in [kek.encode(), base64.b64decode(kek), base64.b64decode(kek).hex().encode(), PASSPHRASE.encode(),
                   *backed_up["secrets"].values()]:
        assert needle not in blob
    assert not list(archive.parent.glob(".*.tmp"))
    shown = kt("barbican", "inspect", archive, "--format", "json")
    assert shown.exit_code == 0, shown.output
    manifest = json.loads(shown.stdout)
    assert manifest["db_engine"] == "sqlite" and manifest["db_dump"] == "sqlite-backup-api"
    assert manifest["counts"]["secrets"] >= 5 and manifest["verified"] is False
    assert manifest["kek_fingerprint"].startswith("sha256:") and kek not in shown.stdout
    verified = kt("barbican", "inspect", archive, "--verify", "--passphrase-env", "BK_PASS", "-f", "json", env=ENV)
    assert verified.exit_code == 0 and json.loads(verified.stdout)["verified"] is True


def test_round_trip_into_live_barbican_keeps_every_payload(sandbox, admin_session, backed_up, kt):
    secrets = backed_up["secrets"]
    delete_all(admin_session, list(secrets))
    assert all(payload(admin_session, ref) is None for ref in secrets)
    refused = kt("barbican", "restore", backed_up["archive"], "--config", barbican_conf(sandbox),
                 "--passphrase-env", "BK_PASS", env=ENV)
    assert refused.exit_code == 6 and "not empty" in refused.stderr and "--force" in refused.stderr
    result = kt("barbican", "restore", backed_up["archive"], "--config", barbican_conf(sandbox),
                "--passphrase-env", "BK_PASS", "--force", "-f", "json", env=ENV)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["database_action"] == "restored" and report["kek"] == "unchanged"
    # the running Barbican (its open connection) reads the restored rows at once
    assert {ref: payload(admin_session, ref) for ref in secrets} == secrets
    again = kt("barbican", "restore", backed_up["archive"], "--config", barbican_conf(sandbox),
               "--passphrase-env", "BK_PASS", "-f", "json", env=ENV)
    assert again.exit_code == 0 and json.loads(again.stdout)["database_action"] == "already restored"


def test_restore_into_empty_target_and_restore_kek(sandbox, backed_up, kt):
    tmp = backed_up["tmp"]
    other_kek = base64.b64encode(os.urandom(32)).decode()
    conf = fresh_target(sandbox, tmp, "fresh", kek=other_kek)
    before = conf.read_text()
    mismatch = kt("barbican", "restore", backed_up["archive"], "--config", conf, "--passphrase-env", "BK_PASS",
                  env=ENV)
    assert mismatch.exit_code == 6 and "--restore-kek" in mismatch.stderr
    assert conf.read_text() == before and not (tmp / "fresh.db").exists()
    assert other_kek not in mismatch.output and kek_of(barbican_conf(sandbox)) not in mismatch.output
    ok = kt("barbican", "restore", backed_up["archive"], "--config", conf, "--passphrase-env", "BK_PASS",
            "--restore-kek", "-f", "json", env=ENV)
    assert ok.exit_code == 0, ok.output
    report = json.loads(ok.stdout)
    assert report["kek"] == "written" and report["restart_barbican"] is True
    assert kek_of(conf) == kek_of(barbican_conf(sandbox))
    assert Path(report["config_backup"]).read_text() == before
    assert stat.S_IMODE(conf.stat().st_mode) == 0o640  # mode kept
    assert conf.read_text().replace(kek_of(conf), other_kek) == before  # nothing else touched
    with sqlite3.connect(tmp / "fresh.db") as db:
        ids = {r[0] for r in db.execute("SELECT id FROM secrets WHERE deleted = 0")}
    assert {ref.rsplit("/", 1)[1] for ref in backed_up["secrets"]} <= ids


def _expect(result, code: int, *words: str) -> None:
    assert result.exit_code == code, result.output
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("keytools: error: ") and "Traceback" not in result.output
    for word in words:
        assert word in line


def test_bad_inputs_change_nothing(sandbox, backed_up, kt):
    tmp, archive = backed_up["tmp"], backed_up["archive"]
    conf = fresh_target(sandbox, tmp, "bad")
    blob = archive.read_bytes()
    (tmp / "trunc.ktbak").write_bytes(blob[: len(blob) // 2])
    flipped = bytearray(blob)
    flipped[len(blob) // 2] ^= 0x40
    (tmp / "flip.ktbak").write_bytes(bytes(flipped))
    (tmp / "junk.ktbak").write_bytes(b"not an archive at all")
    (tmp / "wrong.pass").write_text("not the passphrase\n")
    restore = ("barbican", "restore")
    base = ("--config", conf, "--passphrase-env", "BK_PASS")
    _expect(kt(*restore, archive, "--config", conf, "--passphrase-file", tmp / "wrong.pass"), 2, "wrong passphrase")
    _expect(kt(*restore, tmp / "trunc.ktbak", *base, env=ENV), 2, "truncated")
    _expect(kt(*restore, tmp / "flip.ktbak", *base, env=ENV), 2, "corrupted")
    _expect(kt(*restore, tmp / "junk.ktbak", *base, env=ENV), 2, "not a keytools Barbican backup")
    _expect(kt(*restore, tmp / "missing.ktbak", *base, env=ENV), 2, "no such file")
    _expect(kt(*restore, archive, "--config", conf), 2, "no passphrase")
    _expect(kt(*restore, archive, *base, "--key-file", tmp / "wrong.pass", env=ENV), 2, "exclude each other")
    nokek = fresh_target(sandbox, tmp, "nokek", drop_kek=True)
    _expect(kt(*restore, archive, "--config", nokek, "--passphrase-env", "BK_PASS", env=ENV), 2,
            "kek is not set", "--restore-kek")
    pg = conf_copy(conf, tmp / "pg.conf", connection="postgresql://u:pw@127.0.0.1/barbican")
    _expect(kt(*restore, archive, "--config", pg, "--passphrase-env", "BK_PASS", env=ENV), 2, "not supported")
    my = conf_copy(conf, tmp / "my.conf", connection="mysql+pymysql://u:Sekr1tPw@127.0.0.1:1/barbican")
    _expect(kt(*restore, archive, "--config", my, "--passphrase-env", "BK_PASS", env=ENV), 2,
            "sqlite database, but the target is mysql")
    assert not (tmp / "bad.db").exists(), "a refused restore created the target"
    # backup side
    backup = ("barbican", "backup")
    _expect(kt(*backup, "--config", nokek, "--out", tmp / "x.ktbak", "--passphrase-env", "BK_PASS", env=ENV),
            2, "kek is not set")
    unreachable = kt(*backup, "--config", my, "--out", tmp / "x.ktbak", "--passphrase-env", "BK_PASS", env=ENV)
    _expect(unreachable, 4, "cannot connect")
    assert "Sekr1tPw" not in unreachable.output
    _expect(kt(*backup, "--config", conf, "--out", tmp / "x.ktbak", "--passphrase-env", "NOPE_UNSET"), 2, "NOPE_UNSET")
    _expect(kt(*backup, "--config", conf, "--out", tmp / "x.ktbak", "--passphrase-env", "BK_PASS",
               env={"BK_PASS": "short"}), 2, "too short")
    _expect(kt(*backup, "--config", barbican_conf(sandbox), "--out", archive, "--passphrase-env", "BK_PASS",
               env=ENV), 2, "already exists")
    _expect(kt(*backup, "--config", barbican_conf(sandbox), "--out", tmp / "nodir" / "x", "--passphrase-env",
               "BK_PASS", env=ENV), 2, "does not exist")
    _expect(kt(*backup, "--config", tmp / "nope.conf", "--out", tmp / "x.ktbak", "--passphrase-env", "BK_PASS",
               env=ENV), 2, "no such file")
    _expect(kt(*backup, "--config", conf, "--out", tmp / "x.ktbak", "--passphrase-env", "BK_PASS", env=ENV),
            2, "does not exist")  # bad.db was never created
    assert not (tmp / "x.ktbak").exists() and archive.read_bytes() == blob


def test_drill_passes(sandbox, kt):
    result = kt("--os-cloud", "sandbox-admin", "barbican", "drill", "--in-place", "--config", barbican_conf(sandbox),
                "--yes", "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["result"] == "pass"
    names = [s["name"] for s in report["steps"]]
    assert names[-1] == "clean up" and all(s["ok"] for s in report["steps"]), report
    assert "confirm they are gone" in names and "confirm they are back with identical payloads" in names
    assert all(s["seconds"] >= 0 for s in report["steps"])
    refused = kt("--os-cloud", "sandbox-admin", "barbican", "drill", "--in-place", "--config", barbican_conf(sandbox))
    assert refused.exit_code == 2 and "--yes" in refused.stderr


def private_tmpdir(tmp: Path) -> Path:
    """A TMPDIR of the test's own: whatever keytools puts in the shared temp dir lands here."""
    path = tmp / "shared-tmp"
    path.mkdir(mode=0o700)
    return path


def stale_workdirs(directory: Path, purpose: str) -> list[Path]:
    found = list(directory.glob(f".keytools-{purpose}-*"))
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o700 for p in found)
    return found


def test_restore_killed_midway_then_rerun(sandbox, admin_session, backed_up):
    """SIGKILL while the backup API is copying pages: the target is still the old database (hot
    journal rolled back), and rerunning the same command completes the restore. The decrypted dump
    was never in the shared temp dir: it was beside the target (0700), and the rerun removes it."""
    tmp = backed_up["tmp"]
    conf = fresh_target(sandbox, tmp, "killed")
    target = tmp / "killed.db"
    live = sqlite3.connect(f"file:{sandbox.state.path('barbican', 'barbican.db')}?mode=ro", uri=True)
    with sqlite3.connect(target) as db:  # an older state of the same Barbican, made bigger
        live.backup(db)
        live.close()
        db.execute("UPDATE secrets SET deleted = 1")
        db.execute("CREATE TABLE filler (x BLOB)")
        db.executemany("INSERT INTO filler VALUES (?)", [(os.urandom(2000),) for _ in range(300)])
        old_digest = stats_of(db).digest
    argv = keytools_argv("barbican", "restore", backed_up["archive"], "--config", conf,
                         "--passphrase-env", "BK_PASS", "--force", "--format", "json")
    shared = private_tmpdir(tmp)
    env = sandbox.env(BK_PASS=PASSPHRASE, KEYTOOLS_FAULT_RESTORE_DELAY="0.5", TMPDIR=str(shared))
    journal = Path(f"{target}-journal")
    run = spawn(argv, env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    kill_when(run, journal.exists, must_reach=True)
    assert run.returncode == -9
    assert list(shared.iterdir()) == []
    [left] = stale_workdirs(tmp, "restore")
    assert (left / "dump").is_file()
    with sqlite3.connect(target) as db:  # opening rolls the hot journal back
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert stats_of(db).digest == old_digest
        assert db.execute("SELECT count(*) FROM filler").fetchone()[0] == 300

    rerun = subprocess.run(argv, env={**env, "KEYTOOLS_FAULT_RESTORE_DELAY": ""}, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["database_action"] == "restored"
    assert stale_workdirs(tmp, "restore") == [] and list(shared.iterdir()) == []
    with sqlite3.connect(target) as db:
        stats = stats_of(db)
    manifest = operations.inspect(backed_up["archive"])
    assert stats.digest == manifest["content_digest"] and "filler" not in stats.tables


def test_library_backup_with_key_file_and_check_only(sandbox, backed_up, tmp_path):
    key = tmp_path / "k"
    key.write_bytes(os.urandom(32))
    os.chmod(key, 0o600)
    source = KeySource.keyfile(key.read_bytes(), "--key-file")
    archive = tmp_path / "k.ktbak"
    report = operations.backup(barbican_conf(sandbox), archive, source)
    assert report["db_engine"] == "sqlite"
    conf = fresh_target(sandbox, tmp_path, "check")
    checked = operations.restore(archive, conf, source, check_only=True)
    assert checked["checked_only"] is True and not (tmp_path / "check.db").exists()


def test_restore_kek_goes_to_the_conf_d_file_that_sets_it(sandbox, backed_up, kt, tmp_path):
    """oslo reads barbican.conf.d/*.conf after barbican.conf: a KEK set there must be written there."""
    conf = fresh_target(sandbox, tmp_path, "confd", drop_kek=True)
    conf_d = tmp_path / "confd.conf.d"
    conf_d.mkdir()
    override = conf_d / "kek.conf"
    override.write_text("[simple_crypto_plugin]\nkek = " + base64.b64encode(os.urandom(32)).decode() + "\n")
    main_before = conf.read_text()
    result = kt("barbican", "restore", backed_up["archive"], "--config", conf, "--passphrase-env", "BK_PASS",
                "--restore-kek", "-f", "json", env=ENV)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["kek_file"] == str(override)
    assert kek_of(override) == kek_of(barbican_conf(sandbox)) and conf.read_text() == main_before


def test_backup_killed_midway_leaves_no_archive(sandbox, tmp_path):
    """Killed while writing: no archive, and the database copy it was reading was beside the
    database (0700), not in the shared temp dir; the rerun removes it."""
    db_dir = tmp_path / "db"
    db_dir.mkdir()
    with sqlite3.connect(f"file:{sandbox.state.path('barbican', 'barbican.db')}?mode=ro", uri=True) as live, \
            sqlite3.connect(db_dir / "barbican.db") as copy:
        live.backup(copy)
    conf = conf_copy(barbican_conf(sandbox), tmp_path / "b.conf", connection=f"sqlite:///{db_dir / 'barbican.db'}")
    out = tmp_path / "killed.ktbak"
    argv = keytools_argv("barbican", "backup", "--config", conf, "--out", out, "--passphrase-env", "BK_PASS")
    shared = private_tmpdir(tmp_path)
    env = sandbox.env(BK_PASS=PASSPHRASE, KEYTOOLS_FAULT_BACKUP_DELAY="30", TMPDIR=str(shared))
    run = spawn(argv, env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    kill_when(run, lambda: any(p.stat().st_size > 0 for p in tmp_path.glob(".killed.ktbak.*.tmp")), must_reach=True)
    assert run.returncode == -9
    assert not out.exists()
    leftovers = list(tmp_path.glob(".killed.ktbak.*.tmp"))
    assert leftovers and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in leftovers)
    assert list(shared.iterdir()) == []
    [left] = stale_workdirs(db_dir, "backup")
    assert (left / "barbican.db").is_file()

    rerun = subprocess.run(argv, env={**env, "KEYTOOLS_FAULT_BACKUP_DELAY": ""}, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert operations.inspect(out)["db_engine"] == "sqlite"
    assert stale_workdirs(db_dir, "backup") == [] and list(shared.iterdir()) == []


def test_drill_with_a_bad_config_creates_nothing(sandbox, kt, tmp_path):
    conf = conf_copy(barbican_conf(sandbox), tmp_path / "nokek.conf", drop_kek=True)
    result = kt("--os-cloud", "sandbox-admin", "barbican", "drill", "--in-place", "--config", conf, "--yes",
                "-f", "json")
    assert result.exit_code == 2 and "kek is not set" in result.stderr, result.output
    report = json.loads(result.stdout)
    assert report["result"] == "fail" and report["secrets"] == [] and report["order"] is None


def test_prompted_passphrase_is_hidden_and_confirmed(sandbox, tmp_path):
    from barbican_backup_helpers import run_on_tty

    out = tmp_path / "tty.ktbak"
    argv = keytools_argv("barbican", "backup", "--config", barbican_conf(sandbox), "--out", out)
    phrase = b"typed at the terminal 42"
    code, shown = run_on_tty(argv, sandbox.env(), [(b"Archive passphrase: ", phrase + b"\n"),
                                                    (b"Repeat for confirmation: ", phrase + b"\n")])
    assert code == 0, shown
    assert phrase not in shown  # not echoed
    source = KeySource.passphrase(phrase.decode(), "test")
    assert operations.inspect(out, source)["verified"] is True


def test_rotated_kek_lists(sandbox, backed_up, kt, tmp_path):
    """Barbican's kek is a MultiStrOpt (rotation: the first encrypts, all decrypt). A target that
    rotated since the backup still holds the archive's KEK: nothing to write. An archive made with
    two KEKs needs both in the target; --restore-kek writes both, in order."""
    live_kek = kek_of(barbican_conf(sandbox))
    newer = base64.b64encode(os.urandom(32)).decode()
    rotated = fresh_target(sandbox, tmp_path, "rotated", before_kek=[newer])
    ok = kt("barbican", "restore", backed_up["archive"], "--config", rotated, "--passphrase-env", "BK_PASS",
            "-f", "json", env=ENV)
    assert ok.exit_code == 0 and json.loads(ok.stdout)["kek"] == "unchanged", ok.output

    two = conf_copy(barbican_conf(sandbox), tmp_path / "two.conf", after_kek=[newer])
    archive = tmp_path / "two.ktbak"
    made = kt("barbican", "backup", "--config", two, "--out", archive, "--passphrase-env", "BK_PASS", "-f", "json",
              env=ENV)
    assert made.exit_code == 0, made.output
    assert len(json.loads(made.stdout)["kek_fingerprints"]) == 2
    assert newer.encode() not in archive.read_bytes() and live_kek.encode() not in archive.read_bytes()
    target = fresh_target(sandbox, tmp_path, "one")
    refused = kt("barbican", "restore", archive, "--config", target, "--passphrase-env", "BK_PASS", env=ENV)
    assert refused.exit_code == 6 and newer not in refused.output
    written = kt("barbican", "restore", archive, "--config", target, "--passphrase-env", "BK_PASS",
                 "--restore-kek", "-f", "json", env=ENV)
    assert written.exit_code == 0, written.output
    from keytools import oslo_ini

    assert [s.value for s in oslo_ini.parse_file(target).get_all("simple_crypto_plugin", "kek")] == [live_kek, newer]
