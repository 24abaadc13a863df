"""Backup, restore and drill on a Barbican whose database is a real MariaDB server (4 workers)."""

from __future__ import annotations

import base64
import json
import stat
import subprocess

import pymysql
import pytest
from barbican_backup_helpers import (PASSPHRASE, barbican_conf, conf_copy, delete_all, kek_of, payload,
                                     store_secrets)
from sqlalchemy.engine import make_url

from keytools.barbican import operations
from keytools.barbican.db_mysql import MysqlDatabase
from keytools.sandbox import configs
from tests.helpers.cli import keytools_argv
from tests.helpers.kill import kill_when, spawn

ENV = {"BK_PASS": PASSPHRASE}


@pytest.fixture(scope="module")
def msb(mariadb_sandbox):
    return mariadb_sandbox


@pytest.fixture(scope="module")
def madmin(msb):
    return msb.session("admin")


def url_for(msb, database: str) -> str:
    return configs.db_url(msb.state, msb.config, database)


def sql(msb, *statements: str, database: str | None = None) -> list:
    url = make_url(url_for(msb, "barbican"))
    conn = pymysql.connect(host=url.host, port=url.port, user=url.username, password=url.password,
                           database=database, autocommit=True)
    try:
        with conn.cursor() as cur:
            out = []
            for st in statements:
                cur.execute(st)
                out.append(cur.fetchall())
            return out
    finally:
        conn.close()


def fresh_db(msb, tmp_path, name: str):
    sql(msb, f"DROP DATABASE IF EXISTS `{name}`", f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    return conf_copy(barbican_conf(msb), tmp_path / f"{name}.conf", connection=url_for(msb, name))


def digest(msb, name: str) -> str | None:
    return MysqlDatabase(make_url(url_for(msb, name))).stats().digest


@pytest.mark.parametrize("tool", ["mysqldump", "pymysql"])
def test_round_trip_keeps_every_payload(msb, madmin, kt, tmp_path, tool):
    secrets = store_secrets(madmin, f"maria-{tool}")
    archive = tmp_path / "m.ktbak"
    made = kt("barbican", "backup", "--config", barbican_conf(msb), "--out", archive, "--passphrase-env", "BK_PASS",
              "--dump-tool", tool, "-f", "json", env=ENV)
    assert made.exit_code == 0, made.output
    report = json.loads(made.stdout)
    assert report["db_engine"] == "mysql" and report["db_dump"] in ({"mariadb-dump", "mysqldump"} if tool ==
                                                                    "mysqldump" else {"pymysql"})
    assert report["counts"]["secrets"] >= 5
    blob = archive.read_bytes()
    kek = kek_of(barbican_conf(msb))
    for needle in [kek.encode(), base64.b64decode(kek), msb.config.passwords["mariadb"].encode(),
                   PASSPHRASE.encode(), *secrets.values()]:
        assert needle not in blob
    assert msb.config.passwords["mariadb"] not in made.output

    delete_all(madmin, list(secrets))
    assert all(payload(madmin, ref) is None for ref in secrets)
    result = kt("barbican", "restore", archive, "--config", barbican_conf(msb), "--passphrase-env", "BK_PASS",
                "--force", "-f", "json", env=ENV)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["database_action"] == "restored"
    # every Barbican worker reads the committed rows (no restart)
    for _ in range(2):
        assert {ref: payload(madmin, ref) for ref in secrets} == secrets

    # the same archive into an empty database: the schema is created, then the rows
    conf = fresh_db(msb, tmp_path, f"bk_fresh_{tool}")
    fresh = kt("barbican", "restore", archive, "--config", conf, "--passphrase-env", "BK_PASS", "-f", "json",
               env=ENV)
    assert fresh.exit_code == 0, fresh.output
    ids = {r[0] for r in sql(msb, "SELECT id FROM secrets WHERE deleted = 0", database=f"bk_fresh_{tool}")[0]}
    assert {ref.rsplit("/", 1)[1] for ref in secrets} <= ids
    if tool == "pymysql":  # one snapshot for dump and digest: a rerun has nothing to do
        assert digest(msb, "bk_fresh_pymysql") == report["content_digest"]
        again = kt("barbican", "restore", archive, "--config", conf, "--passphrase-env", "BK_PASS", "-f", "json",
                   env=ENV)
        assert json.loads(again.stdout)["database_action"] == "already restored"


def test_restore_killed_midway_then_rerun(msb, madmin, tmp_path):
    """SIGKILL inside the data transaction: MariaDB rolls it back, the target keeps its old rows,
    and rerunning the same command completes the restore."""
    store_secrets(madmin, "maria-kill")
    archive = tmp_path / "k.ktbak"
    from keytools.barbican.archive import KeySource

    source = KeySource.passphrase(PASSPHRASE, "test")
    manifest = operations.backup(barbican_conf(msb), archive, source, dump_tool="pymysql")
    conf = fresh_db(msb, tmp_path, "bk_kill")
    operations.restore(archive, conf, source)
    sql(msb, "UPDATE secrets SET deleted = 1", "DELETE FROM container_secret", database="bk_kill")
    old = digest(msb, "bk_kill")
    assert old != manifest["content_digest"]

    argv = keytools_argv("barbican", "restore", archive, "--config", conf, "--passphrase-env", "BK_PASS",
                         "--force", "-f", "json")
    shared = tmp_path / "shared-tmp"  # a TMPDIR of the test's own: the dump must not land there
    shared.mkdir(mode=0o700)
    env = msb.env(BK_PASS=PASSPHRASE, KEYTOOLS_FAULT_RESTORE_DELAY="1", TMPDIR=str(shared))

    def dirty_secrets() -> int:
        """Rows of bk_kill.secrets as a READ UNCOMMITTED reader sees them: the restore's
        uncommitted DELETEs show, so 0 means it is inside its data transaction. (Not
        information_schema.INNODB_TRX: InnoDB refreshes that cache only when it was not read for
        0.1 s, so polling it faster than that can keep showing a stale, empty snapshot, and it
        lists every transaction on the server, not only this restore's.)"""
        out = sql(msb, "SET SESSION TRANSACTION ISOLATION LEVEL READ UNCOMMITTED", "SELECT COUNT(*) FROM secrets",
                  database="bk_kill")
        return out[1][0][0]

    assert dirty_secrets() > 0  # the old rows (all soft-deleted) are there to be replaced
    # KEYTOOLS_FAULT_RESTORE_DELAY pauses the restore right after its DELETEs (and after each
    # INSERT), so the transaction stays open with the table empty for a second: ample to see it.
    run = spawn(argv, env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    kill_when(run, lambda: dirty_secrets() == 0, must_reach=True)
    assert run.returncode == -9
    assert digest(msb, "bk_kill") == old  # consistent read: the killed transaction never committed
    # the decrypted dump was beside barbican.conf (a server's files are not ours), 0700, not in TMPDIR
    assert list(shared.iterdir()) == []
    [left] = tmp_path.glob(".keytools-restore-*")
    assert (left / "dump").is_file() and stat.S_IMODE(left.stat().st_mode) == 0o700
    rerun = subprocess.run(argv, env={**env, "KEYTOOLS_FAULT_RESTORE_DELAY": ""}, capture_output=True, text=True,
                           timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["database_action"] == "restored"
    assert digest(msb, "bk_kill") == manifest["content_digest"]
    assert not list(tmp_path.glob(".keytools-restore-*")) and list(shared.iterdir()) == []


def test_database_errors(msb, kt, tmp_path):
    archive = tmp_path / "e.ktbak"
    assert kt("barbican", "backup", "--config", barbican_conf(msb), "--out", archive, "--passphrase-env", "BK_PASS",
              env=ENV).exit_code == 0
    url = make_url(url_for(msb, "barbican"))
    cases = {
        "badpw": (url.set(password="wrong-password-xyz").render_as_string(hide_password=False), 5, "refused"),
        "nodb": (url.set(database="no_such_db").render_as_string(hide_password=False), 2, "does not exist"),
        "down": (url.set(port=1).render_as_string(hide_password=False), 4, "cannot connect"),
    }
    for name, (connection, code, word) in cases.items():
        conf = conf_copy(barbican_conf(msb), tmp_path / f"{name}.conf", connection=connection)
        result = kt("barbican", "restore", archive, "--config", conf, "--passphrase-env", "BK_PASS", env=ENV)
        assert result.exit_code == code and word in result.stderr, (name, result.output)
        assert "wrong-password-xyz" not in result.output and msb.config.passwords["mariadb"] not in result.output
    sqlite_conf = conf_copy(barbican_conf(msb), tmp_path / "lite.conf", connection=f"sqlite:///{tmp_path}/x.db")
    other = kt("barbican", "restore", archive, "--config", sqlite_conf, "--passphrase-env", "BK_PASS", env=ENV)
    assert other.exit_code == 2 and "mysql database, but the target is sqlite" in other.stderr


def test_drill_passes_on_mariadb(msb, kt):
    result = kt("--os-cloud", "sandbox-admin", "barbican", "drill", "--in-place", "--config", barbican_conf(msb),
                "--yes", "-f", "json", env={"OS_CLIENT_CONFIG_FILE": str(msb.clouds_yaml)})
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["result"] == "pass" and all(s["ok"] for s in report["steps"]), report


def test_scratch_drill_on_a_private_mariadb_database(msb, madmin, kt):
    store_secrets(madmin, "scratch-maria")
    env = {"OS_CLIENT_CONFIG_FILE": str(msb.clouds_yaml)}
    before = digest(msb, "barbican")
    missing = kt("barbican", "drill", "--config", barbican_conf(msb), env=env)
    assert missing.exit_code == 2 and "--scratch-db" in missing.stderr, missing.output
    prod = kt("barbican", "drill", "--config", barbican_conf(msb), "--scratch-db", url_for(msb, "barbican"), env=env)
    assert prod.exit_code == 2 and "production" in prod.stderr, prod.output
    sql(msb, "DROP DATABASE IF EXISTS `drill_scratch`", "CREATE DATABASE `drill_scratch` CHARACTER SET utf8mb4")
    result = kt("barbican", "drill", "--config", barbican_conf(msb), "--scratch-db", url_for(msb, "drill_scratch"),
                "-f", "json", env=env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["result"] == "pass" and report["secrets_checked"] == report["secrets_total"] >= 1, report
    assert digest(msb, "barbican") == before  # production only read
    assert sql(msb, "SHOW TABLES", database="drill_scratch") == [()]  # the scratch copy is emptied again
    assert msb.config.passwords["mariadb"] not in result.output
