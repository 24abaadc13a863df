"""The Swift playbook (keytools.openstack.swift_retire_key) on two proxy configs against the
sandbox's real Swift, with ``ansible_connection=local`` (the storage servers listen on this
machine's loopback, which a network namespace does not see).

Key A wrote objects into one account through a proxy that only knows A; key B (active) into
another. While the scanned account holds objects under A, every proxy refuses and nothing changes;
once only the clean account is listed, A's line goes from both configs (0600, .bak kept) and each
proxy's restart handler runs once; a rerun changes nothing."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from swift_helpers import NOAUTH_PIPELINE, ProxyProcess, our_keymaster

from keytools.sandbox import configs
from keytools.sandbox import swift as sandbox_swift
from tests.fleet.fleet_helpers import ansible_env, recap

USED, CLEAN = "AUTH_ansibleused", "AUTH_ansibleclean"


def put(url: str, account: str) -> None:
    assert requests.put(f"{url}/v1/{account}/c").status_code in (201, 202)
    assert requests.put(f"{url}/v1/{account}/c/o", data=os.urandom(1000)).status_code == 201


@pytest.fixture(scope="module")
def keys(swift_sandbox, make_secret, swift_workdir, proxies):
    cfg = swift_sandbox.config
    key_a, key_b = make_secret(os.urandom(32)), make_secret(os.urandom(32))
    barbican = swift_sandbox.url("barbican")
    only_a = ProxyProcess(swift_sandbox.state, cfg, swift_workdir / "ansible", "ans-A",
                          our_keymaster(cfg, barbican, key_id=key_a))
    only_b = ProxyProcess(swift_sandbox.state, cfg, swift_workdir / "ansible", "ans-B",
                          our_keymaster(cfg, barbican, key_id_2=key_b, active_root_secret_id="2"))
    proxies.extend([only_a, only_b])
    put(only_a.wait_ready().url, USED)
    put(only_b.wait_ready().url, CLEAN)
    both = sandbox_swift.proxy_sections(swift_sandbox.state, cfg, 1, NOAUTH_PIPELINE,
                                        our_keymaster(cfg, barbican, key_id=key_a, key_id_2=key_b,
                                                      active_root_secret_id="2"))
    return configs.ini_text(both), key_a


def run(tmp: Path, confs: dict[str, Path], accounts: list[str]) -> subprocess.CompletedProcess:
    inventory = tmp / "inventory.ini"
    inventory.write_text("[swift_proxies]\n" + "".join(
        f"{name} ansible_connection=local keytools_swift_proxy_config={conf} "
        f"keytools_swift_restart_command='sh -c \"echo restart >> {conf.parent}/restarts.log\"'\n"
        for name, conf in confs.items()) + f"\n[all:vars]\nkeytools_python={sys.executable}\n")
    extra = json.dumps({"keytools_swift_old_key": "key_id", "keytools_swift_accounts": accounts})
    return subprocess.run([str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(inventory),
                           "keytools.openstack.swift_retire_key", "-e", extra],
                          capture_output=True, text=True, env=ansible_env(tmp), cwd=tmp, timeout=600)


def test_retire_key_on_every_proxy(keys, tmp_path):
    text, key_a = keys
    confs = {}
    for name in ("proxy1", "proxy2"):
        conf = tmp_path / name / "proxy-server.conf"
        conf.parent.mkdir()
        conf.write_text(text)
        conf.chmod(0o600)
        confs[name] = conf

    refused = run(tmp_path, confs, [USED, CLEAN])
    assert refused.returncode != 0
    assert "still encrypted under key_id" in refused.stdout and '"rc": 6' in refused.stdout
    assert all(c.read_text() == text and not (c.parent / "restarts.log").exists() for c in confs.values())

    done = run(tmp_path, confs, [CLEAN])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    for conf in confs.values():
        now = conf.read_text()
        assert "\nkey_id = " not in now and "key_id_2 = " in now and stat.S_IMODE(conf.stat().st_mode) == 0o600
        (backup,) = conf.parent.glob("proxy-server.conf.keytools-*.bak")
        assert backup.read_text() == text and stat.S_IMODE(backup.stat().st_mode) == 0o600
        assert (conf.parent / "restarts.log").read_text().count("restart") == 1
    assert "password" not in done.stdout

    again = run(tmp_path, confs, [CLEAN])
    assert again.returncode == 0 and all(c["changed"] == 0 for c in recap(again.stdout).values())
    assert all((c.parent / "restarts.log").read_text().count("restart") == 1 for c in confs.values())
