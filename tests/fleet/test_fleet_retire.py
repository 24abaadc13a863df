"""The fixed_key retirement playbook on a real fleet: 5 network namespaces, each with its own sshd
and its own config tree at the same path, driven by ansible-core over SSH.

Preview, retire, rerun; and the faults: nodes holding different values, a node unreachable in the
middle of the run, a stale inventory, a node without keytools, a tree that is not OpenStack's.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import sysconfig
import threading

import pytest

from tests.fleet.fleet_helpers import BACKUPS, PG, backups, build_wheel, conf_files, recap, start_fleet
from tests.helpers.netns_fleet import missing_tools

pytestmark = pytest.mark.skipif(bool(missing_tools()), reason=f"netns fleet needs: {', '.join(missing_tools())}")

PLAYBOOK = "keytools.openstack.fixed_key_retire"
IGNORE = "['cinder','nova','glance']"  # these tests have no databases: the skip is explicit (and recorded)


@pytest.fixture(scope="module")
def fleet_and_trees(tmp_path_factory):
    fleet, trees = start_fleet(tmp_path_factory.mktemp("fleet-trees"), 5, keytools_ignore_services=IGNORE)
    try:
        yield fleet, trees
    finally:
        fleet.stop()
        assert fleet.leftovers() == []


@pytest.fixture
def fleet(fleet_and_trees):
    """The running fleet with every host's tree as generated and the default inventory."""
    fleet, trees = fleet_and_trees
    for h in fleet.hosts:
        if h.proc is None or h.proc.poll() is not None:
            fleet.revive(h)
        trees.populate(h.name, h.root)
    fleet.write_inventory()
    return fleet


@pytest.fixture
def trees(fleet_and_trees):
    return fleet_and_trees[1]


def snapshot(fleet):
    return {h.name: conf_files(h.root) for h in fleet.hosts}


def no_secret_in(trees, *texts):
    for value in trees.secrets:
        for text in texts:
            assert value not in text


def test_preview_retire_rerun(fleet, trees):
    before = snapshot(fleet)
    one_batch = ("-e", '{"keytools_serial": ["100%"]}')  # the preview and the rerun need no batches
    preview = fleet.ansible(PLAYBOOK, "--check", "--diff", *one_batch)
    assert preview.returncode == 0, preview.stdout[-3000:] + preview.stderr[-2000:]
    assert snapshot(fleet) == before and all(backups(h.root) == [] for h in fleet.hosts)
    assert "-fixed_key=***" in preview.stdout.replace(" ", "")  # the masked diff
    assert "would change: node1, node2, node3, node4, node5" in preview.stdout
    no_secret_in(trees, preview.stdout, preview.stderr)

    run = fleet.ansible(PLAYBOOK, "-v")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    counts = recap(run.stdout)
    assert all(counts[h.name]["changed"] == 1 and counts[h.name]["failed"] == 0 for h in fleet.hosts), counts
    no_secret_in(trees, run.stdout, run.stderr)
    for h in fleet.hosts:
        files = conf_files(h.root)
        assert not any(b"fixed_key" in data for data in files.values()), h.name
        changed = [k for k in files if files[k] != before[h.name][k]]
        saved = backups(h.root)
        assert changed and len(saved) == len(changed), (h.name, changed, saved)
        assert stat.S_IMODE(saved[0].stat().st_mode) == 0o600
        doc = json.loads(saved[0].read_text())
        assert doc["node"] == h.name and doc["ignored_services"] == ["cinder", "glance", "nova"]
        assert doc["path"].startswith(str(fleet.mount))  # the node's own path, as the node sees it

    again = fleet.ansible(PLAYBOOK, *one_batch)
    assert again.returncode == 0, again.stdout[-2000:]
    assert all(c["changed"] == 0 for c in recap(again.stdout).values()), again.stdout[-2000:]


def test_different_fixed_keys_stop_before_any_change(fleet, trees):
    trees.give_other_fixed_key("node4", fleet.host("node4").root)
    before = snapshot(fleet)
    run = fleet.ansible(PLAYBOOK)
    assert run.returncode != 0
    assert "fixed_key values differ across nodes (2 distinct" in run.stdout and "nothing was changed" in run.stdout
    assert snapshot(fleet) == before and all(backups(h.root) == [] for h in fleet.hosts)
    assert all(c["changed"] == 0 for c in recap(run.stdout).values())
    no_secret_in(trees, run.stdout, run.stderr)


def test_unreachable_mid_run_stops_in_its_batch(fleet, trees):
    """node3 dies once the retirement has started: node1 and node2 (earlier batches) are retired
    with their backups, node3's batch stops the run, node4 and node5 are untouched."""
    before = snapshot(fleet)
    env = fleet.env() | {"PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([str(os.path.join(os.path.dirname(sys.executable), "ansible-playbook")), PLAYBOOK],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=fleet.base)
    lines: list[str] = []
    err: list[str] = []
    drain = threading.Thread(target=lambda: err.append(proc.stderr.read()), daemon=True)
    drain.start()
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("PLAY [Retire fixed_key"):
            fleet.kill_host(fleet.host("node3"))  # sshd gone, then the ControlPersist master ended
    proc.wait(timeout=120)
    drain.join(timeout=10)
    out = "".join(lines)
    assert proc.returncode != 0, out[-3000:]
    counts = recap(out)
    assert counts["node3"]["unreachable"] == 1 or counts["node3"]["failed"] == 1, counts
    assert "changed: node1, node2" in out and "not yet run: node4, node5" in out, out[-3000:]
    for name in ("node1", "node2"):
        root = fleet.host(name).root
        assert backups(root) and not any(b"fixed_key" in d for d in conf_files(root).values())
        assert counts[name]["changed"] == 1
    for name in ("node3", "node4", "node5"):
        root = fleet.host(name).root
        assert conf_files(root) == before[name] and backups(root) == [], name
        assert counts[name]["changed"] == 0
    no_secret_in(trees, out, "".join(err))


def test_stale_inventory_stops_before_any_change(fleet):
    before = snapshot(fleet)
    fleet.write_inventory(ghosts={"node9": "10.251.255.254"})  # listed, but no such host
    run = fleet.ansible(PLAYBOOK)
    assert run.returncode != 0
    assert "node9" in run.stdout and "UNREACHABLE" in run.stdout
    assert snapshot(fleet) == before and all(backups(h.root) == [] for h in fleet.hosts)


def test_node_without_keytools_and_a_tree_that_is_not_openstack(fleet):
    """node2 runs the modules with a python that has no keytools; node5's tree holds no OpenStack
    config: both fail where fixed_key is looked up, each with its one line, before any change."""
    root = fleet.host("node5").root
    for child in (root / PG).iterdir():
        subprocess.run(["rm", "-rf", str(child)], check=True)
    (root / PG / "README").write_text("not an OpenStack tree\n")
    before = snapshot(fleet)
    fleet.write_inventory(host_vars={"node2": "keytools_python=/usr/bin/python3 keytools_environment={}"})
    run = fleet.ansible(PLAYBOOK)
    assert run.returncode != 0
    fatal = {line.split("]")[0][len("fatal: ["):]: line for line in run.stdout.splitlines() if line.startswith("fatal: [")}
    assert "Failed to import the required Python library (keytools)" in fatal["node2"]
    assert "keytools.openstack.install role" in fatal["node2"]
    assert "no OpenStack service config files found" in fatal["node5"] and '"rc": 2' in fatal["node5"]
    assert snapshot(fleet) == before and all(backups(h.root) == [] for h in fleet.hosts)
    assert not (root / BACKUPS).exists()


@pytest.mark.slow  # builds a wheel with build isolation (pip fetches setuptools from the index)
def test_install_role_then_modules_run_with_its_venv(fleet, tmp_path):
    """The install role puts keytools (a wheel of this checkout) into its own virtualenv on node1;
    a module then runs with that virtualenv's python and no PYTHONPATH."""
    wheel = build_wheel(tmp_path)
    if wheel is None:
        pytest.skip("no package index for the wheel's build backend (setuptools>=77)")
    venv = fleet.mount / "keytools-venv"
    book = tmp_path / "install.yml"
    book.write_text(json.dumps([{
        "hosts": "node1", "gather_facts": False,
        "roles": [{"role": "keytools.openstack.install", "keytools_venv": str(venv),
                   "keytools_venv_python": sys._base_executable, "keytools_package": str(wheel),
                   "keytools_pip_extra_args": "--no-deps --no-index",
                   "keytools_extra_site_dirs": [sysconfig.get_paths()["purelib"]]}],
        "post_tasks": [{"name": "info with the installed keytools", "keytools.openstack.fixed_key_info": {
            "node": "{{ inventory_hostname }}", "root": "{{ keytools_config_root }}"},
            "vars": {"ansible_python_interpreter": f"{venv}/bin/python"}, "register": "info"},
            {"ansible.builtin.assert": {"that": ["info.is_set", "info.sha256 | length == 1"]}}],
    }]))
    run = fleet.ansible(str(book), "-v")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert f"{venv}/lib/" in run.stdout  # keytools.__file__ inside the virtualenv (the role's check)
    assert recap(run.stdout)["node1"]["failed"] == 0
    assert (fleet.host("node1").root / "keytools-venv" / "bin" / "python").exists()
