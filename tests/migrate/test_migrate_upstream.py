"""cinder's own scenarios, run against keytools: the configs and rows of
cinder/tests/unit/keymgr/test_migration.py (KeyMigrationTestCase), here on a real cinder-manage
schema and the sandbox's real Barbican, with the decisions and log lines cinder's test asserts;
and the real cinder 29 logs in tests/data/cinder-logs reproduced line for line (ids aside)."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest

from keytools.cinder_db import FIXED_KEY_ID
from keytools.errors import EXIT_STATE, EXIT_UNREACHABLE, EXIT_USAGE
from migrate import logparse
from tests.helpers.db_seed import keys, seed
from tests.helpers.fault_proxy import FaultProxy
from tests.helpers.paths import TEST_DATA

LOGS = TEST_DATA / "cinder-logs"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# cinder's fake_constants
UUID1, UUID2 = "11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"
UUID3, UUID4 = "33333333-3333-3333-3333-333333333333", "44444444-4444-4444-4444-444444444444"
STATUS = ("No volumes are", "There are still", "No backups are")


def cinder_lines(text: str) -> list[tuple[str, str]]:
    """(level, message with ids as <id>) of the migration's lines that cinder also writes
    (keytools' own 'Migrated ...' and snapshot lines dropped)."""
    out = []
    for line in text.splitlines():
        m = logparse.LINE.match(line)
        if not m or m["logger"] not in ("keytools.migrate", "cinder.keymgr.migration"):
            continue
        found = logparse.classify(m["msg"])
        if found is None or found[0] in ("migrated", "item_abandoned"):
            continue
        out.append((m["level"], UUID.sub("<id>", m["msg"])))
    return out


def status_lines(stderr: str) -> list[tuple[str, str]]:
    return [(lvl, msg) for lvl, msg in cinder_lines(stderr) if msg.startswith(STATUS)]


def run(kt, conf: Path, state: Path, *extra: str, cloud: str | None = "sandbox-demo"):
    head = ("--os-cloud", cloud) if cloud else ()
    return kt(*head, "migrate", "run", "--config-file", str(conf), "--state-dir", str(state),
              "--concurrency", "2", "--format", "json", *extra)


def add_section(conf: Path, text: str) -> Path:
    conf.write_text(conf.read_text() + "\n" + text + "\n")
    return conf


# ---- KeyMigrationTestCase, scenario by scenario ------------------------------------------------------

def test_no_fixed_key(kt, cinder_conf, cinder_url, tmp_path):
    """_migrate_keys and _log_migration_status not called."""
    seed(cinder_url, volumes=1)
    r = run(kt, cinder_conf(fixed_key=None), tmp_path / "st")
    assert r.exit_code == EXIT_USAGE, r.output
    assert cinder_lines(r.stderr) == [("INFO", "Not migrating encryption keys because the ConfKeyManager's "
                                                "fixed_key is not in use.")]
    assert set(keys(cinder_url, "volumes").values()) == {FIXED_KEY_ID}


def test_using_conf_key_manager(kt, cinder_conf, cinder_url, tmp_path):
    """backend 'some.ConfKeyManager': neither migration nor status lines."""
    seed(cinder_url, volumes=1)
    r = run(kt, cinder_conf(backend="some.ConfKeyManager"), tmp_path / "st")
    assert r.exit_code == EXIT_STATE, r.output
    assert cinder_lines(r.stderr) == [("INFO", "Not migrating encryption keys because the ConfKeyManager is "
                                                "still in use.")]
    assert set(keys(cinder_url, "volumes").values()) == {FIXED_KEY_ID}


def test_using_barbican_module_path(kt, cinder_conf, cinder_url, tmp_path):
    """The long-hand backend is Barbican: migration runs and the status is logged once."""
    s = seed(cinder_url, volumes=1)
    r = run(kt, cinder_conf(backend="castellan.key_manager.barbican_key_manager.BarbicanKeyManager"),
            tmp_path / "st")
    assert r.exit_code == 0, r.output
    assert keys(cinder_url, "volumes")[s.volumes[0]] != FIXED_KEY_ID
    assert status_lines(r.stderr) == [
        ("INFO", "No volumes are using the ConfKeyManager's encryption_key_id."),
        ("INFO", "No backups are known to be using the ConfKeyManager's encryption_key_id.")]


def test_using_unsupported_key_manager(kt, cinder_conf, cinder_url, tmp_path):
    """backend 'some.OtherKeyManager': no migration, but the status is logged."""
    seed(cinder_url, volumes=1)
    r = run(kt, cinder_conf(backend="some.OtherKeyManager"), tmp_path / "st")
    assert r.exit_code == EXIT_STATE, r.output
    assert cinder_lines(r.stderr) == [
        ("WARNING", "Not migrating encryption keys because migration to the 'OtherKeyManager' key_manager "
                    "backend is not supported."),
        ("WARNING", "There are still 1 volume(s) using the ConfKeyManager's all-zeros encryption key ID."),
        ("INFO", "No backups are known to be using the ConfKeyManager's encryption_key_id.")]
    assert set(keys(cinder_url, "volumes").values()) == {FIXED_KEY_ID}


def test_no_volumes(kt, cinder_conf, cinder_url, tmp_path):
    """Nothing to migrate: no migration, the status is logged."""
    r = run(kt, cinder_conf(), tmp_path / "st")
    assert r.exit_code == 0, r.output
    assert cinder_lines(r.stderr) == [
        ("INFO", "Not migrating encryption keys because there are no volumes or backups associated with this "
                 "host."),
        ("INFO", "No volumes are using the ConfKeyManager's encryption_key_id."),
        ("INFO", "No backups are known to be using the ConfKeyManager's encryption_key_id.")]


def test_fail_no_barbican_client(kt, sandbox, cinder_conf, cinder_url, tmp_path):
    """The Barbican client cannot be created (here: Keystone unreachable): no row is attempted;
    cinder's start line, its abort line, then the status lines."""
    seed(cinder_url, volumes=1)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/v3"
    conf = cinder_conf()
    conf.write_text(re.sub(r"(?m)^(auth_url|www_authenticate_uri) = .*$", rf"\1 = {closed}", conf.read_text()))
    r = run(kt, conf, tmp_path / "st", cloud=None)
    assert r.exit_code == EXIT_UNREACHABLE, r.output
    lines = cinder_lines(r.stderr)
    assert lines[0] == ("INFO", "Starting migration of ConfKeyManager keys.")
    assert lines[1][0] == "ERROR"
    assert lines[1][1].startswith("Aborting encryption key migration due to error creating Barbican client: ")
    assert lines[2:] == [
        ("WARNING", "There are still 1 volume(s) using the ConfKeyManager's all-zeros encryption key ID."),
        ("INFO", "No backups are known to be using the ConfKeyManager's encryption_key_id.")]
    assert "Migrating " not in r.stderr and "Traceback" not in r.output


@pytest.mark.parametrize("concurrency", ["1", "8"])
def test_fail_too_many_errors(kt, sandbox, cinder_conf, cinder_url, tmp_path, concurrency):
    """MAX_KEY_MIGRATION_ERRORS + 3 volumes, every migration fails: exactly MAX + 1 = 4 tried."""
    seed(cinder_url, volumes=6)
    proxy = FaultProxy(sandbox.url("barbican"))
    proxy.default = "500"
    try:
        conf = add_section(cinder_conf(), f"[barbican]\nbarbican_endpoint = {proxy.url}")
        r = run(kt, conf, tmp_path / "st", "--retries", "0", "--concurrency", concurrency)
    finally:
        proxy.close()
    assert r.exit_code == EXIT_UNREACHABLE, r.output
    lines = [msg for _, msg in cinder_lines(r.stderr)]
    assert sum(m.startswith("Migrating VolumeMigration <id> encryption key to Barbican") for m in lines) == 4
    assert sum(m.startswith("Error migrating encryption key: ") for m in lines) == 4
    assert lines.index(next(m for m in lines if m.startswith("Aborting encryption key migration (too many"))) \
        == len(lines) - 3
    assert list(keys(cinder_url, "volumes").values()).count(FIXED_KEY_ID) == 6


def test_migration_status_more_to_migrate(kt, cinder_conf, cinder_url, tmp_path):
    """A volume left (here: on another host) -> one warning (volumes) and one info (backups)."""
    seed(cinder_url, volumes=1, host="ctl-1@lvm#lvm")
    seed(cinder_url, volumes=1, host="ctl-0@lvm#lvm")
    r = run(kt, cinder_conf(), tmp_path / "st", "--host", "ctl-0")
    assert r.exit_code == 0, r.output
    assert status_lines(r.stderr) == [
        ("WARNING", "There are still 1 volume(s) using the ConfKeyManager's all-zeros encryption key ID."),
        ("INFO", "No backups are known to be using the ConfKeyManager's encryption_key_id.")]


def test_migration_status_all_done(kt, cinder_conf, cinder_url, tmp_path):
    """Only a volume with its own key: two info status lines and no warning at all."""
    seed(cinder_url, volumes=1, key_id="e0e0e0e0-0000-4000-8000-000000000001")
    r = run(kt, cinder_conf(), tmp_path / "st")
    assert r.exit_code == 0, r.output
    assert not [x for x in cinder_lines(r.stderr) if x[0] == "WARNING"]
    assert status_lines(r.stderr) == [
        ("INFO", "No volumes are using the ConfKeyManager's encryption_key_id."),
        ("INFO", "No backups are known to be using the ConfKeyManager's encryption_key_id.")]


def test_migrate_keys_with_and_without_region_name(kt, cinder_conf, cinder_url, tmp_path):
    """[barbican] barbican_region_name picks the catalog region; a region without Barbican means
    no client (cinder passes region_name to barbicanclient.Client)."""
    s = seed(cinder_url, volumes=1)
    r = run(kt, add_section(cinder_conf(), "[barbican]\nbarbican_region_name = regionTwo"), tmp_path / "st")
    assert r.exit_code != 0
    msgs = [m for _, m in cinder_lines(r.stderr)]
    assert msgs[1].startswith("Aborting encryption key migration due to error creating Barbican client")
    assert keys(cinder_url, "volumes")[s.volumes[0]] == FIXED_KEY_ID
    r = run(kt, add_section(cinder_conf(name="c2.conf"), "[barbican]\nbarbican_region_name = RegionOne"),
            tmp_path / "st")
    assert r.exit_code == 0, r.output
    r = run(kt, cinder_conf(name="c3.conf"), tmp_path / "st")  # no region: the catalog's only one
    assert r.exit_code == 0 and keys(cinder_url, "volumes")[s.volumes[0]] != FIXED_KEY_ID


def test_fixed_key_migration(kt, cinder_conf, cinder_url, tmp_path):
    """Only rows on the all-zeros id are migrated; other key ids and NULL are untouched."""
    vol_1 = seed(cinder_url, volumes=1).volumes[0]
    seed(cinder_url, volumes=1, key_id=UUID1)
    seed(cinder_url, volumes=1, key_id=None)
    vol_2 = seed(cinder_url, volumes=1).volumes[0]
    seed(cinder_url, volumes=1, key_id=UUID2)
    seed(cinder_url, backups=1, key_id=None)
    seed(cinder_url, backups=1, key_id=UUID3)
    bak_1 = seed(cinder_url, backups=1).backups[0]
    seed(cinder_url, backups=1, key_id=UUID4)
    bak_2 = seed(cinder_url, backups=1).backups[0]
    before = {**keys(cinder_url, "volumes"), **keys(cinder_url, "backups")}
    r = run(kt, cinder_conf(), tmp_path / "st")
    assert r.exit_code == 0, r.output
    after = {**keys(cinder_url, "volumes"), **keys(cinder_url, "backups")}
    changed = {i for i in before if before[i] != after[i]}
    assert changed == {vol_1, vol_2, bak_1, bak_2}
    tried = set(re.findall(r"Migrating (?:VolumeMigration|Backup) (\S+) encryption key", r.stderr))
    assert tried == changed


def test_get_barbican_key_id(kt, cinder_conf, cinder_url, tmp_path, creator_session):
    """The row's key id is the last path element of the secret ref, with a read ACL for its user."""
    from keytools import keymanager

    vol = seed(cinder_url, volumes=1, user_id="fake-user-id").volumes[0]
    r = run(kt, cinder_conf(), tmp_path / "st")
    assert r.exit_code == 0, r.output
    key = keys(cinder_url, "volumes")[vol]
    client = keymanager.barbican_client(creator_session)
    secret_ref = f"{keymanager.barbican_endpoint(creator_session)}/v1/secrets/{key}"
    assert client.secrets.get(secret_ref).secret_ref.rpartition("/")[2] == key
    assert client.acls.get(secret_ref).read.users == ["fake-user-id"]


def test_update_volume_encryption_key_id(kt, cinder_conf, cinder_url, tmp_path):
    s = seed(cinder_url, volumes=1, snapshots_per_volume=3)
    r = run(kt, cinder_conf(), tmp_path / "st")
    assert r.exit_code == 0, r.output
    vol_key = keys(cinder_url, "volumes")[s.volumes[0]]
    assert vol_key != FIXED_KEY_ID and set(keys(cinder_url, "snapshots").values()) == {vol_key}


def test_update_backup_encryption_key_id(kt, cinder_conf, cinder_url, tmp_path):
    s = seed(cinder_url, backups=1)
    r = run(kt, cinder_conf(), tmp_path / "st")
    assert r.exit_code == 0, r.output
    assert keys(cinder_url, "backups")[s.backups[0]] != FIXED_KEY_ID


# ---- the real cinder 29 logs, reproduced --------------------------------------------------------------

def _scenario(name: str, cinder_url: str) -> tuple[dict[str, str | None], list[str]]:
    """Rows and options that put keytools where cinder was when it wrote ``name``."""
    if name in ("unsupported-backend.log", "conf-keymgr-still-in-use.log", "no-fixed-key.log",
                "ctl-2-cinder-volume.log"):
        seed(cinder_url, volumes=17, host="ctl-0@lvm#lvm")
        seed(cinder_url, backups=6, backup_host="ctl-0")
        conf = {"unsupported-backend.log": {"backend": "vault"},
                "conf-keymgr-still-in-use.log": {"backend": "cinder.keymgr.conf_key_mgr.ConfKeyManager"},
                "no-fixed-key.log": {"fixed_key": None}}.get(name, {})
        return conf, ["--host", "ctl-2"] if name.startswith("ctl-2") else []
    if name == "ctl-0-cinder-volume.log":
        seed(cinder_url, volumes=12, snapshots_per_volume=1, host="ctl-0@lvm#lvm")
        seed(cinder_url, backups=6, backup_host="ctl-1")
        return {}, ["--host", "ctl-0", "--only", "volumes"]
    seed(cinder_url, backups=4, backup_host="ctl-0")
    seed(cinder_url, backups=2, backup_host="ctl-1")
    return {}, ["--host", "ctl-0", "--only", "backups"]


@pytest.mark.parametrize("name", ["unsupported-backend.log", "conf-keymgr-still-in-use.log", "no-fixed-key.log",
                                  "ctl-2-cinder-volume.log", "ctl-0-cinder-volume.log",
                                  "ctl-0-cinder-backup.log"])
def test_lines_are_cinders_byte_for_byte(kt, cinder_conf, cinder_url, tmp_path, name):
    """Same situation as the real log: same lines, levels and order, character for character
    (ids aside); keytools' own extra lines are the only difference."""
    conf_kw, extra = _scenario(name, cinder_url)
    r = run(kt, cinder_conf(**conf_kw), tmp_path / "st", *extra)
    assert r.exit_code in (0, EXIT_STATE, EXIT_USAGE), r.output
    assert cinder_lines(r.stderr) == cinder_lines((LOGS / name).read_text())
    # and migrate status reads keytools' log as it reads cinder's
    log = tmp_path / name
    log.write_text(r.stderr)
    ours = json.loads(kt("migrate", "status", str(log), "--format", "json").stdout)["hosts"][0]
    theirs = json.loads(kt("migrate", "status", str(LOGS / name), "--format", "json").stdout)["hosts"][0]
    for field in ("state", "started", "migrated", "errors", "aborted", "volumes_remaining", "backups_remaining",
                  "last_status"):
        assert ours[field] == theirs[field], field
