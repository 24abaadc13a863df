"""The collection's modules with ``ansible_connection=local`` (quick, no fleet): check and diff
mode, honest ``changed``, backups and restore, keytools' exit codes in failed results, the missing
library message, the inventory gate on a real Cinder schema; plus ansible-doc for every module and
``ansible-galaxy collection build``."""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from keytools import cinder_db
from tests.config_checks.cc_treegen import NodeSpec, build
from tests.fleet.fleet_helpers import ansible_env
from tests.helpers.paths import REPO

COLLECTION = REPO / "ansible_collections" / "keytools" / "openstack"
MODULES = sorted(p.stem for p in (COLLECTION / "plugins" / "modules").glob("*.py"))
BIN = Path(sys.executable).parent


def play(tmp: Path, tasks: list[dict], *args: str, python: str = sys.executable, env: dict[str, str] | None = None):
    """Run ``tasks`` on localhost (local connection); returns (rc, {task name: result}, raw output).
    Each task registers its result; a last task (run by the controller's own python) saves them."""
    book, saved = tmp / "play.yml", tmp / "results.json"
    saved.unlink(missing_ok=True)
    named = [dict(t, register=f"r{i}") for i, t in enumerate(tasks)]
    dump = "{" + ", ".join(f"{json.dumps(t['name'])}: r{i}" for i, t in enumerate(tasks)) + "}"
    named.append({"name": "save", "ansible.builtin.copy": {"dest": str(saved), "content": "{{ " + dump + " | to_json }}"},
                  "check_mode": False, "diff": False, "vars": {"ansible_python_interpreter": sys.executable}})
    book.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": named,
                                 "vars": {"ansible_python_interpreter": python}}]))
    res = subprocess.run([str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(book), *args],
                         capture_output=True, text=True, env=env or ansible_env(tmp), cwd=tmp, timeout=300)
    results = json.loads(saved.read_text()) if saved.exists() else {}
    return res.returncode, results, res.stdout + res.stderr


def task(name: str, module: str, **args) -> dict:
    return {"name": name, f"keytools.openstack.{module}": args, "ignore_errors": True}


CLEAN = {"clean": True, "total": 0, "per_service": {}, "seen": {}, "blind": [],
         "ignored_services": ["cinder", "glance", "nova"], "references": []}


@pytest.fixture
def tree(tmp_path):
    t = build(tmp_path / "nodes", [NodeSpec("cmp-0", "compute", {"fixed_key"})])
    return t, t.pg("cmp-0")


def confs(root: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(root.rglob("*.conf"))}


def test_retire_check_diff_real_rerun_restore(tmp_path, tree):
    t, root = tree
    before = confs(root)
    backup = tmp_path / "backups"
    common = {"node": "cmp-0", "root": str(root)}
    preview = {"check_mode": True, "diff": True}
    rc, r, out = play(tmp_path, [
        task("info", "fixed_key_info", **common),
        dict(task("preview", "fixed_key_retire", backup_dir=str(backup), inventory=CLEAN, **common), **preview),
        {"name": "untouched", "ansible.builtin.stat": {"path": str(backup)}},
        task("retire", "fixed_key_retire", backup_dir=str(backup), inventory=CLEAN, **common),
        task("again", "fixed_key_retire", backup_dir=str(backup), inventory=CLEAN, **common),
        task("audit", "audit", rules=["KT101"], **common),
        dict(task("restore preview", "fixed_key_restore", node="cmp-0", backup_dir=str(backup)), check_mode=True),
        {"name": "retired", "ansible.builtin.slurp": {"src": str(root / "nova_libvirt/etc/nova/nova.conf")}},
        task("restore", "fixed_key_restore", node="cmp-0", backup_dir=str(backup)),
        task("restore again", "fixed_key_restore", node="cmp-0", backup_dir=str(backup)),
    ])
    assert rc == 0, out[-2000:]
    assert r["info"]["is_set"] and len(r["info"]["sha256"]) == 1 and r["info"]["node"] == "cmp-0"
    assert r["preview"]["changed"] is True and "fixed_key=***" in r["preview"]["diff"]["prepared"].replace(" ", "")
    assert r["untouched"]["stat"]["exists"] is False  # check mode wrote no backup
    assert r["retire"]["changed"] is True and r["again"]["changed"] is False
    assert r["audit"]["changed"] is False and r["audit"]["exit_code"] == 0 and r["audit"]["findings"] == 0
    saved = r["retire"]["backups"]
    assert saved and all(stat.S_IMODE(os.stat(b).st_mode) == 0o600 for b in saved)
    assert r["retire"]["ignored_services"] == ["cinder", "glance", "nova"]
    assert r["restore preview"]["changed"] is True
    assert b"fixed_key" not in base64.b64decode(r["retired"]["content"])
    assert r["restore"]["changed"] is True and r["restore again"]["changed"] is False
    assert confs(root) == before  # byte-identical again
    for value in t.secrets:
        assert value not in out and value not in json.dumps(r)


def test_failures_carry_keytools_exit_codes(tmp_path):
    t = build(tmp_path / "nodes", [NodeSpec("ctl-0", "controller", {"fixed_key"})])
    root = t.pg("ctl-0")
    nova = root / "nova/etc/nova/nova.conf"
    nova.write_text(nova.read_text().replace(t.fixed_key, "ab" * 32))  # two values on one node
    before = confs(root)
    rc, r, out = play(tmp_path, [
        task("differ", "fixed_key_retire", node="n", root=str(root), backup_dir=str(tmp_path / "b"), inventory=CLEAN),
        task("no tree", "audit", node="n", root=str(tmp_path / "nope")),
        task("not openstack", "fixed_key_info", node="n", root=str(tmp_path)),
        task("bad inventory", "fixed_key_retire", node="n", root=str(root), backup_dir=str(tmp_path / "b"),
             inventory={"x": 1}),
        task("blind", "fixed_key_retire", node="n", root=str(root), backup_dir=str(tmp_path / "b"),
             inventory=dict(CLEAN, ignored_services=[], blind=[{"service": "nova", "reason": "no Nova database"}])),
        dict(task("no keytools", "fixed_key_info", node="n", root=str(root)),  # the system python has none
             vars={"ansible_python_interpreter": "/usr/bin/python3"}, environment={"PYTHONPATH": ""}),
    ])
    assert rc == 0, out[-2000:]  # every task ignore_errors
    assert r["differ"]["failed"] and r["differ"]["rc"] == 6 and "fixed_key values differ" in r["differ"]["msg"]
    assert r["differ"]["hint"] and r["differ"]["node"] == "n"
    assert r["no tree"]["rc"] == 2 and "not a directory" in r["no tree"]["msg"]
    assert r["not openstack"]["rc"] == 2 and "no OpenStack service config files found" in r["not openstack"]["msg"]
    assert r["bad inventory"]["rc"] == 2 and "fixed_key_inventory" in r["bad inventory"]["msg"]
    assert r["blind"]["rc"] == 6 and "could not see nova" in r["blind"]["msg"]
    msg = r["no keytools"]["msg"]
    assert "Failed to import the required Python library (keytools)" in msg and "keytools.openstack.install" in msg
    assert "\n" not in msg and r["no keytools"]["rc"] == 2
    assert confs(root) == before and not (tmp_path / "b").exists()
    for value in [*t.secrets, "ab" * 32]:
        assert value not in out


@pytest.fixture(scope="module")
def cinder_url(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('cinderdb') / 'cinder.sqlite'}"
    cinder_db.sync_schema(url)  # Cinder's own schema (cinder-manage db sync)
    return url


def test_inventory_gate_on_a_real_cinder_schema(tmp_path, cinder_url):
    import sqlalchemy as sa

    used = tmp_path / "used.sqlite"
    shutil.copy(cinder_url.removeprefix("sqlite:///"), used)
    engine = sa.create_engine(f"sqlite:///{used}")
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO volumes (id, volume_type_id, encryption_key_id, deleted) "
                             "VALUES ('v1', 't1', :k, 0)"), {"k": cinder_db.FIXED_KEY_ID})
    engine.dispose()
    rc, r, out = play(tmp_path, [
        task("not seen", "fixed_key_inventory", db_url=cinder_url),
        task("ignored", "fixed_key_inventory", db_url=cinder_url, ignore_services=["nova", "glance"]),
        task("refs", "fixed_key_inventory", db_url=f"sqlite:///{used}", ignore_services=["nova", "glance"]),
    ])
    assert r["not seen"]["failed"] and r["not seen"]["rc"] == 6 and "could not see nova" in r["not seen"]["msg"]
    assert not r["ignored"].get("failed") and r["ignored"]["inventory"]["clean"] is True
    assert r["ignored"]["ignored_services"] == ["glance", "nova"] and "cinder" in r["ignored"]["inventory"]["seen"]
    assert r["refs"]["rc"] == 6 and "1 reference(s) to the all-zeros key id" in r["refs"]["msg"]
    assert r["refs"]["inventory"]["total"] == 1


def test_every_module_is_documented(tmp_path):
    env = ansible_env(tmp_path)
    res = subprocess.run([str(BIN / "ansible-doc"), "--json", *[f"keytools.openstack.{m}" for m in MODULES]],
                         capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    docs = json.loads(res.stdout)
    assert sorted(docs) == [f"keytools.openstack.{m}" for m in MODULES]
    for name, doc in docs.items():
        d = doc["doc"]
        assert d["short_description"] and d["description"], name
        assert all(o.get("description") for o in d.get("options", {}).values()), name
        assert doc["examples"] and doc["return"], name
    assert {"inventory", "backup_dir", "node", "root"} <= set(docs["keytools.openstack.fixed_key_retire"]["doc"]["options"])


def test_galaxy_build(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(COLLECTION, src, ignore=shutil.ignore_patterns("tests", "*.tar.gz", "__pycache__"))
    res = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "build", str(src), "--output-path",
                          str(tmp_path)], capture_output=True, text=True, env=ansible_env(tmp_path), timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    artifact = tmp_path / "keytools-openstack-0.1.0.tar.gz"
    names = tarfile.open(artifact).getnames()
    assert "MANIFEST.json" in names and "plugins/module_utils/keytools_lib.py" in names
    assert "playbooks/fixed_key_retire.yml" in names and "roles/install/tasks/main.yml" in names
    assert all(f"plugins/modules/{m}.py" in names for m in MODULES)


# ansible-test builds a virtualenv (pip bootstrapped from ci-files.testing.ansible.com) for these:
# they need downloads, so they are not run offline. Every other sanity test runs.
NEEDS_DOWNLOADS = ("ansible-doc", "import", "pep8", "pylint", "runtime-metadata", "validate-modules", "yamllint")


def test_ansible_test_sanity_offline(tmp_path):
    copy = tmp_path / "ansible_collections" / "keytools" / "openstack"
    shutil.copytree(COLLECTION, copy, ignore=shutil.ignore_patterns("tests", "__pycache__"))
    skips = [a for t in NEEDS_DOWNLOADS for a in ("--skip-test", t)]
    res = subprocess.run([str(BIN / "ansible-test"), "sanity", "--local", "--python",
                          f"{sys.version_info.major}.{sys.version_info.minor}", *skips],
                         capture_output=True, text=True, cwd=copy, env=ansible_env(tmp_path), timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    ran = [line for line in res.stdout.splitlines() if line.startswith("Running sanity test")]
    assert len(ran) >= 15 and any('"compile"' in line for line in ran)
