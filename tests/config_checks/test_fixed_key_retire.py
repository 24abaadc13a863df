"""fixed-key show/retire/restore: refusals, crudini edits that keep every other byte, atomic writes,
kill -9 safety, byte-identical restore, and a real Cinder schema for the all-zeros check."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from config_checks import fixed_key as fk
from config_checks.audit import audit_roots
from keytools import cinder_db
from tests.config_checks.cc_treegen import NodeSpec, build
from tests.helpers.cli import invoke, keytools_argv
from tests.helpers.kill import kill_when, spawn

ZEROS = cinder_db.FIXED_KEY_ID


def snapshot(base: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(base.rglob("*.conf")) if p.is_file()}


def modes(base: Path) -> dict[str, int]:
    return {str(p): stat.S_IMODE(p.stat().st_mode) for p in sorted(base.rglob("*.conf"))}


@pytest.fixture
def tree(tmp_path):
    t = build(tmp_path / "nodes", [NodeSpec("ctl-0", "controller", {"fixed_key"}),
                                   NodeSpec("cmp-0", "compute", {"fixed_key"}),
                                   NodeSpec("cmp-1", "compute", {"fixed_key_keymgr"})])
    os.chmod(t.pg("cmp-0") / "nova_libvirt/etc/nova/nova.conf", 0o600)  # modes must survive the edit
    return t


@pytest.fixture(scope="module")
def cinder_db_url(tmp_path_factory):
    """A real Cinder schema (cinder-manage db sync) on SQLite."""
    url = f"sqlite:///{tmp_path_factory.mktemp('cinderdb') / 'cinder.sqlite'}"
    cinder_db.sync_schema(url)
    return url


IGNORE_ALL = "--ignore-service=cinder,nova,glance"


def add_rows(url: str, key_id: str = ZEROS, deleted: bool = False) -> str:
    engine = sa.create_engine(url)
    vol = str(uuid.uuid4())
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO volumes (id, volume_type_id, encryption_key_id, deleted) "
                             "VALUES (:id, :t, :k, :d)"), {"id": vol, "t": str(uuid.uuid4()), "k": key_id, "d": deleted})
        conn.execute(sa.text("INSERT INTO backups (id, volume_id, encryption_key_id, deleted) "
                             "VALUES (:id, :v, :k, :d)"), {"id": str(uuid.uuid4()), "v": vol, "k": key_id, "d": deleted})
    engine.dispose()
    return vol


def migrate_all(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for table in ("volumes", "snapshots", "backups"):
            conn.execute(sa.text(f"UPDATE {table} SET encryption_key_id = :new WHERE encryption_key_id = :z"),  # noqa: S608
                         {"new": str(uuid.uuid4()), "z": ZEROS})
    engine.dispose()


def test_show_reports_places_and_match(tree):
    res = invoke(["fixed-key", "show", "--per-node", str(tree.base), "--format", "json"])
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["match"] is True and doc["distinct_values"] == 1
    assert {(p["node"], p["service"], p["section"]) for p in doc["placements"]} == {
        ("ctl-0", "cinder", "key_manager"), ("ctl-0", "nova", "key_manager"),
        ("ctl-0", "nova_metadata", "key_manager"), ("cmp-0", "nova_libvirt", "key_manager"),
        ("cmp-1", "nova_libvirt", "keymgr")}
    assert tree.fixed_key not in res.stdout
    res = invoke(["fixed-key", "show", "--per-node", str(tree.base)])
    assert res.exit_code == 0 and "all values match" in res.stdout and "set, 64 chars" in res.stdout


def test_dry_run_shows_masked_diff_and_writes_nothing(tree, tmp_path):
    before = snapshot(tree.base)
    res = invoke(["fixed-key", "retire", "--per-node", str(tree.base), "--dry-run"])
    assert res.exit_code == 0, res.stderr
    assert res.stdout.count("-fixed_key=***") == 5 and "+" not in "".join(
        ln for ln in res.stdout.splitlines() if ln.startswith("+") and not ln.startswith("+++"))
    for secret in tree.secrets:  # neither the key nor a password in the diff's context lines
        assert secret not in res.stdout + res.stderr
    assert snapshot(tree.base) == before
    assert "5 file(s) would change" in res.stdout


def test_retire_then_restore_is_byte_identical(tree, tmp_path):
    before, before_modes = snapshot(tree.base), modes(tree.base)
    backup = tmp_path / "backup"
    res = invoke(["fixed-key", "retire", "--per-node", str(tree.base), "--backup-dir", str(backup), IGNORE_ALL])
    assert res.exit_code == 0, res.stderr
    assert "not checked for the all-zeros key id (--ignore-service): cinder, glance, nova" in res.stderr
    after = snapshot(tree.base)
    changed = [p for p in before if before[p] != after[p]]
    assert len(changed) == 5
    for p in changed:  # only the fixed_key line is gone, every other byte is the same
        old_lines, new_lines = before[p].splitlines(keepends=True), after[p].splitlines(keepends=True)
        removed = [ln for ln in old_lines if ln.startswith(b"fixed_key")]
        assert len(removed) == 1 and [ln for ln in old_lines if ln not in removed] == new_lines
    assert modes(tree.base) == before_modes
    assert not [f for f in audit_roots([tree.base], per_node=True).findings if f.rule_id == "KT101"]
    # backups: 0600 files in a 0700 directory, with file, section and hash
    assert stat.S_IMODE(backup.stat().st_mode) == 0o700
    docs = [json.loads(f.read_text()) for f in backup.glob("*.json")]
    assert len(docs) == 5 and all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in backup.glob("*.json"))
    assert {d["entries"][0]["section"] for d in docs} == {"key_manager", "keymgr"}
    assert all(d["entries"][0]["sha256"].startswith("sha256:") and d["path"] in before for d in docs)
    assert all(d["ignored_services"] == ["cinder", "glance", "nova"] for d in docs)
    assert tree.fixed_key not in res.stdout + res.stderr
    # rerun: nothing left to do, backups untouched
    res = invoke(["fixed-key", "retire", "--per-node", str(tree.base), "--backup-dir", str(backup), IGNORE_ALL])
    assert res.exit_code == 0 and "nothing to retire" in res.stdout
    res = invoke(["fixed-key", "restore", "--backup-dir", str(backup), "--format", "json"])
    assert res.exit_code == 0, res.stderr
    assert {r["action"] for r in json.loads(res.stdout)} == {"restored"}
    assert snapshot(tree.base) == before and modes(tree.base) == before_modes
    res = invoke(["fixed-key", "restore", "--backup-dir", str(backup), "--format", "json"])
    assert {r["action"] for r in json.loads(res.stdout)} == {"already present"}


def test_restore_after_later_edit_reinserts_with_crudini(tree, tmp_path):
    backup = tmp_path / "backup"
    fk.retire([str(tree.base)], str(backup), per_node=True)
    cinder = tree.pg("ctl-0") / "cinder/etc/cinder/cinder.conf"
    cinder.write_text(cinder.read_text() + "\n[oslo_messaging_notifications]\ndriver = noop\n")
    done = {Path(r.path).name + r.path[-40:]: r.action for r in fk.restore(str(backup))}
    assert sorted(done.values()).count("re-inserted") == 1
    conf = cinder.read_text()
    assert f"fixed_key = {tree.fixed_key}" in conf and "driver = noop" in conf
    assert not [f for f in audit_roots([tree.base], per_node=True).findings if f.rule_id == "KT103"]


def test_refuses_when_values_differ(tmp_path):
    t = build(tmp_path, [NodeSpec("ctl-0", "controller", {"fixed_key_mismatch"})])
    before = snapshot(t.base)
    res = invoke(["fixed-key", "retire", "--per-node", str(t.base), "--backup-dir", str(tmp_path / "b"), IGNORE_ALL])
    assert res.exit_code == 6 and "values differ" in res.stderr and res.stderr.count("\n") == 1
    assert snapshot(t.base) == before and not (tmp_path / "b").exists()
    for s in t.secrets:
        assert s not in res.stderr
    res = invoke(["fixed-key", "show", "--per-node", str(t.base)])
    assert res.exit_code == 1 and "VALUES DIFFER" in res.stdout


def test_refuses_while_cinder_rows_use_the_fixed_key(tree, tmp_path, cinder_db_url):
    migrate_all(cinder_db_url)
    add_rows(cinder_db_url, deleted=True)  # deleted rows are invisible to cinder: they do not block
    add_rows(cinder_db_url)
    before = snapshot(tree.base)
    args = ["fixed-key", "retire", "--per-node", str(tree.base), "--backup-dir", str(tmp_path / "b"),
            "--db-url", cinder_db_url, "--ignore-service", "nova,glance"]
    res = invoke(args)
    assert res.exit_code == 6, res.stderr
    assert "1 cinder volumes" in res.stderr and "1 cinder backups" in res.stderr and ZEROS in res.stderr
    assert snapshot(tree.base) == before and not (tmp_path / "b").exists()
    migrate_all(cinder_db_url)
    res = invoke(args)
    assert res.exit_code == 0, res.stderr
    assert fk.show([str(tree.base)], per_node=True).placements == []


def test_db_url_password_never_printed(tree, tmp_path):
    url = "mysql+pymysql://cinder:S3cretDbPassw0rd@127.0.0.1:1/cinder"
    res = invoke(["fixed-key", "retire", "--per-node", str(tree.base), "--backup-dir", str(tmp_path / "b"),
                  "--db-url", url])
    assert res.exit_code == 4 and "S3cretDbPassw0rd" not in res.stderr, res.stderr


def test_backup_dir_required(tree):
    res = invoke(["fixed-key", "retire", "--per-node", str(tree.base)])
    assert res.exit_code == 2 and "--backup-dir" in res.stderr


def test_unreadable_file_refuses_retire_and_show_says_so(tree, tmp_path):
    (tree.pg("cmp-0") / "nova_libvirt/etc/nova/nova.conf.d").mkdir()
    (tree.pg("cmp-0") / "nova_libvirt/etc/nova/nova.conf.d/10.conf").write_bytes(b"\x00\x01")
    res = invoke(["fixed-key", "retire", "--per-node", str(tree.base), "--backup-dir", str(tmp_path / "b"), IGNORE_ALL])
    assert res.exit_code == 2 and "10.conf" in res.stderr
    res = invoke(["fixed-key", "show", "--per-node", str(tree.base)])
    assert res.exit_code == 2 and "10.conf: binary data" in res.stderr and "all values match" in res.stdout


@pytest.mark.parametrize("name,content", [
    ("crlf", b"[DEFAULT]\r\ndebug = true\r\n[key_manager]\r\nfixed_key = 00112233\r\nbackend = barbican\r\n"),
    ("bom-no-eol", b"\xef\xbb\xbf[key_manager]\nbackend = barbican\nfixed_key: 00112233"),
    ("upper-dup", b"# header\n[KEY_MANAGER]\nfixed_key=00112233\n  \n[barbican]\nx = 1\n[key_manager]\n"
                  b"fixed_key = '00112233'\nbackend=barbican\n[keymgr]\nfixed_key=00112233\n"),
    ("continuation", b"[key_manager]\nfixed_key = 0011\n  2233\nbackend = barbican\n"),
    ("no-eol-keep-last", b"[key_manager]\nfixed_key = 00112233\nbackend = barbican"),
])
def test_edge_files_round_trip(tmp_path, name, content):
    f = tmp_path / "n" / "etc" / "cinder" / "cinder.conf"
    f.parent.mkdir(parents=True)
    f.write_bytes(content)
    os.chmod(f, 0o640)
    changes = fk.retire([str(tmp_path / "n")], str(tmp_path / "b")).changes
    new = f.read_bytes()
    assert b"fixed_key" not in new and changes
    old_lines = content.splitlines(keepends=True)
    kept = [ln for ln in old_lines if not ln.lstrip(b"\xef\xbb\xbf").startswith(b"fixed_key")
            and not (name == "continuation" and ln == b"  2233\n")]
    assert new.splitlines(keepends=True) == kept
    assert stat.S_IMODE(f.stat().st_mode) == 0o640
    fk.restore(str(tmp_path / "b"))
    assert f.read_bytes() == content


def test_retire_edits_the_conf_d_file_that_sets_it(tmp_path):
    main = tmp_path / "n" / "etc" / "nova" / "nova.conf"
    main.parent.mkdir(parents=True)
    main.write_text("[key_manager]\nbackend = barbican\n")
    extra = main.parent / "nova.conf.d" / "50-legacy.conf"
    extra.parent.mkdir()
    extra.write_text("[keymgr]\nfixed_key = 00112233\n[DEFAULT]\ndebug = true\n")
    before = main.read_bytes()
    changes = fk.retire([str(tmp_path / "n")], str(tmp_path / "b")).changes
    assert [c.path for c in changes] == [str(extra)]
    assert extra.read_text() == "[keymgr]\n[DEFAULT]\ndebug = true\n" and main.read_bytes() == before


def _kill_trial(tree, backup: Path, wait_for: str, old: dict[str, bytes], new: dict[str, bytes]) -> None:
    def reached() -> bool:
        if wait_for == "backup":
            return backup.is_dir() and any(backup.glob("*.json"))
        return any(Path(p).read_bytes() == new[p] for p in new)

    run = spawn(keytools_argv("fixed-key", "retire", "--per-node", tree.base, "--backup-dir", backup, IGNORE_ALL))
    kill_when(run, reached, timeout=60, poll=0.001)
    for p in old:
        data = Path(p).read_bytes()
        assert data in (old[p], new.get(p, old[p])), f"{p} is neither old nor new"


def test_kill_during_retire_leaves_old_or_new_and_rerun_converges(tmp_path):
    tree = build(tmp_path / "nodes", [NodeSpec(f"ctl-{i}", "controller", {"fixed_key"}) for i in range(2)]
                 + [NodeSpec(f"cmp-{i}", "compute", {"fixed_key"}) for i in range(4)])
    old = snapshot(tree.base)
    new = {c.path: c.new for c in fk.plan_retire([str(tree.base)], per_node=True)}
    assert len(new) == 10
    backup = tmp_path / "backup"
    for wait_for in ("backup", "config"):
        _kill_trial(tree, backup, wait_for, old, new)
    res = invoke(["fixed-key", "retire", "--per-node", str(tree.base), "--backup-dir", str(backup), IGNORE_ALL])
    assert res.exit_code == 0, res.stderr
    assert snapshot(tree.base) == {**old, **new}
    assert not list(tree.base.rglob("*.tmp"))  # temp files a kill left behind are cleaned by the rerun
    fk.restore(str(backup))
    assert snapshot(tree.base) == old
    digest = {hashlib.sha256(v).hexdigest() for v in snapshot(tree.base).values()}
    assert len(digest) == len(old)
