"""keytools sandbox: idempotent up/down, status/env, and the bad-input cases of the issue."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest

from keytools.errors import UsageError
from keytools.sandbox import manager, processes
from keytools.sandbox.state import StateDir
from tests.helpers.cli import invoke, run_keytools


def _pids(state: StateDir) -> dict[str, int | None]:
    return {s.name: s.pid for s in manager.status(state)}


def test_up_again_is_idempotent(sandbox):
    before = _pids(sandbox.state)
    assert all(before.values())
    manager.up(sandbox.state)
    assert _pids(sandbox.state) == before


def test_status_and_env_commands(sandbox, kt):
    result = kt("sandbox", "status", "--state-dir", str(sandbox.state.root), "--format", "json")
    rows = {r["service"]: r for r in json.loads(result.stdout)}
    assert rows["keystone"]["healthy"] and rows["barbican"]["healthy"]
    assert rows["keystone"]["url"].startswith("http://127.0.0.1:")
    env = kt("sandbox", "env", "--state-dir", str(sandbox.state.root))
    assert f"export OS_CLIENT_CONFIG_FILE={sandbox.clouds_yaml}" in env.stdout
    assert oct(sandbox.clouds_yaml.stat().st_mode & 0o777) == "0o600"


def test_servers_listen_on_loopback_only(sandbox):
    for name, pid in _pids(sandbox.state).items():
        proc = psutil.Process(pid)
        for p in [proc, *proc.children(recursive=True)]:
            for conn in p.net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN:
                    assert conn.laddr.ip == "127.0.0.1", (name, conn)


def test_busy_port_is_one_line_error_and_starts_nothing(tmp_path):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        proc = run_keytools("sandbox", "up", "--state-dir", tmp_path / "s", "--port-base", str(port))
    finally:
        busy.close()
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"keytools: error: port {port} on 127.0.0.1 (for keystone) is busy. "
        "Stop what uses it or choose other ports with --port-base."]
    assert not list((tmp_path / "s" / "run").glob("*.pid"))


def test_stale_pid_file_is_ignored_and_removed(tmp_path):
    state = StateDir(tmp_path)
    state.ensure()
    pidfile = state.path("run", "keystone.pid")
    # pid 1 exists but was not started by us: start time differs, so never signalled.
    pidfile.write_text(json.dumps({"pid": 1, "start_time": "0"}))
    assert processes.running_pid(state, "keystone") is None
    assert not pidfile.exists()
    pidfile.write_text("garbage")
    assert processes.stop(state, "keystone") is False


def test_missing_server_package_names_the_extra(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "barbican" else real(name, *a))
    with pytest.raises(UsageError) as info:
        manager.up(StateDir(tmp_path))
    assert "pip install 'keytools[sandbox]'" in info.value.one_line()


def test_unreadable_state_file_is_one_line_error(tmp_path):
    (tmp_path / "sandbox.json").write_text("{not json")
    proc = run_keytools("sandbox", "up", "--state-dir", tmp_path)
    assert proc.returncode == 2
    assert "unreadable sandbox state" in proc.stderr and "Traceback" not in proc.stderr


def test_killed_up_is_repaired_by_rerun_and_down_is_idempotent(tmp_path):
    """kill -9 `sandbox up` half-way (during keystone set-up), rerun it, then down twice."""
    root = tmp_path / "half"
    cmd = [sys.executable, "-m", "keytools", "sandbox", "up", "--state-dir", str(root)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (root / "keystone" / "keystone.db").exists():
        time.sleep(0.05)
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)  # the up command and its keystone-manage child
    proc.wait()
    state = StateDir(root)
    try:
        rerun = run_keytools("sandbox", "up", "--state-dir", root, "--format", "json")
        assert rerun.returncode == 0, rerun.stderr
        assert all(row["healthy"] for row in json.loads(rerun.stdout))
        check = run_keytools("--os-cloud", "sandbox-demo", "doctor", env={**os.environ,
                             "OS_CLIENT_CONFIG_FILE": str(state.clouds_yaml)})
        assert check.returncode == 0, check.stdout + check.stderr
        pids = [p for p in _pids(state).values() if p]
    finally:
        first = run_keytools("sandbox", "down", "--state-dir", root)
    assert first.returncode == 0 and "keystone" in first.stdout
    assert all(not psutil.pid_exists(p) or psutil.Process(p).status() == psutil.STATUS_ZOMBIE for p in pids)
    second = run_keytools("sandbox", "down", "--state-dir", root)
    assert second.returncode == 0 and "nothing was running" in second.stdout
    purge = run_keytools("sandbox", "down", "--state-dir", root, "--purge")
    assert purge.returncode == 0 and not root.exists()


def test_openstack_cli_uses_the_sandbox_clouds_yaml(sandbox):
    openstack = os.path.join(os.path.dirname(sys.executable), "openstack")
    proc = subprocess.run([openstack, "--os-cloud", "sandbox-demo", "secret", "list", "-f", "json"],
                          capture_output=True, text=True, env=sandbox.env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert isinstance(json.loads(proc.stdout), list)


def _policy_options() -> set[str]:
    from oslo_policy import opts

    [(group, options)] = opts.list_opts()
    assert group == "oslo_policy"
    return {o.name for o in options}


@pytest.mark.parametrize("rbac", ["legacy", "new"])
def test_policy_sections_set_only_options_oslo_policy_registers(tmp_path, rbac):
    """The installed oslo.policy (6.x) has no enforce_scope: a dead option is never written, and
    each --rbac mode sets exactly enforce_new_defaults (sandbox Barbican, Glance, scratch Barbican)."""
    from keytools import oslo_ini
    from keytools.barbican import scratch
    from keytools.sandbox import configs, glance
    from keytools.sandbox.state import SandboxConfig

    state = StateDir(tmp_path / "s")
    state.ensure()
    cfg = SandboxConfig(ports={k: 1 for k in manager.PORT_KEYS}, rbac=rbac)
    manager._passwords(cfg)
    configs.write_barbican(state, cfg)
    glance.write_config(state, cfg)
    scratch.write_config(tmp_path / "scratch", "sqlite:///x.db", [cfg.passwords["barbican_kek"]], 1)
    files = [state.path("barbican", ".barbican", "barbican.conf"), glance.config_file(state),
             tmp_path / "scratch" / ".barbican" / "barbican.conf"]
    registered = _policy_options()
    for path in files:
        policy = oslo_ini.parse_file(path).sections.get("oslo_policy", {})
        assert set(policy) <= registered, (path, set(policy) - registered)
    expected = "true" if rbac == "new" else "false"
    for path in files[:2]:
        assert oslo_ini.parse_file(path).get("oslo_policy", "enforce_new_defaults") == expected


def test_up_keeps_the_keks_barbican_conf_holds(tmp_path):
    """After a KEK rotation barbican.conf holds other KEKs than sandbox.json recorded: `up` keeps
    the file's (all of them, in order) and updates the record; an unreadable file or one without a
    KEK is refused, never overwritten with the recorded KEK."""
    from cryptography.fernet import Fernet

    from keytools import oslo_ini
    from keytools.errors import ConfigError
    from keytools.sandbox import configs
    from keytools.sandbox.state import SandboxConfig

    state = StateDir(tmp_path / "s")
    state.ensure()
    cfg = SandboxConfig(ports={k: 1 for k in manager.PORT_KEYS})
    manager._passwords(cfg)
    configs.write_barbican(state, cfg)
    conf = state.path("barbican", ".barbican", "barbican.conf")
    recorded = cfg.passwords["barbican_kek"]
    rotated = [Fernet.generate_key().decode(), recorded]  # mid-rotation: new first, old kept
    conf.write_text(conf.read_text().replace(f"kek = {recorded}", "\n".join(f"kek = {k}" for k in rotated)))
    configs.write_barbican(state, cfg)
    assert [s.value for s in oslo_ini.parse_file(conf).get_all("simple_crypto_plugin", "kek")] == rotated
    assert cfg.passwords["barbican_kek"] == rotated[0]
    before = conf.read_bytes()
    conf.write_text(before.decode().replace(f"kek = {rotated[0]}\nkek = {rotated[1]}\n", ""))
    for broken in (conf.read_bytes(), b"\x00binary"):
        conf.write_bytes(broken)
        with pytest.raises(ConfigError) as refused:
            configs.write_barbican(state, cfg)
        assert str(conf) in refused.value.one_line() and "will not" in refused.value.one_line()
        assert conf.read_bytes() == broken and recorded not in refused.value.one_line()


def test_up_after_a_kek_rotation_still_decrypts(tmp_path):
    """Rotate the KEK of a sandbox's Barbican, `sandbox down`, `sandbox up`: the secrets stored
    before still decrypt through the API (the restarted Barbican runs with the rotated KEK)."""
    from barbicanclient import client as barbican_client
    from keystoneauth1 import loading, session as ks_session

    from keytools.barbican import barbican_conf

    state = StateDir(tmp_path / "s")
    env = {"BK_PASS": "sandbox rotation test passphrase"}
    try:
        manager.up(state)
        cfg = state.load()

        def client():
            auth = loading.get_plugin_loader("password").load_from_options(
                auth_url=f"http://127.0.0.1:{cfg.ports['keystone']}/v3", username="demo",
                password=cfg.passwords["demo"], project_name="demo", user_domain_name="Default",
                project_domain_name="Default")
            return barbican_client.Client(session=ks_session.Session(auth=auth))

        ref = client().secrets.create(name="kept", payload="still readable").store()
        conf = state.path("barbican", ".barbican", "barbican.conf")
        old = barbican_conf.load(conf).keks
        rotate = invoke(["barbican", "kek", "rotate", "--config", str(conf), "--backup-out", str(tmp_path / "pre.ktbak"),
                         "--passphrase-env", "BK_PASS", "--sample", "1", "-f", "json"], env=env)
        assert rotate.exit_code == 0, rotate.output
        new = barbican_conf.load(conf).keks
        assert len(new) == 1 and new != old
        assert invoke(["sandbox", "down", "--state-dir", str(state.root)]).exit_code == 0
        up = invoke(["sandbox", "up", "--state-dir", str(state.root)])  # what rewrites barbican.conf
        assert up.exit_code == 0, up.output
        assert client().secrets.get(ref).payload == "still readable"
        assert barbican_conf.load(conf).keks == new and state.load().passwords["barbican_kek"] == new[0]
    finally:
        manager.down(state)
