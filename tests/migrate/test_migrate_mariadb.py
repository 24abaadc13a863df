"""migrate on MariaDB: Cinder's schema by cinder-manage on a real MariaDB server, Barbican on MariaDB
with 4 workers; two concurrent ``python -m keytools migrate run`` processes, then verify."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from keytools import keymanager
from keytools.cinder_db import FIXED_KEY_ID, sync_schema
from keytools.sandbox import configs
from migrate.db import CinderDB
from tests.helpers.cli import run_keytools
from tests.helpers.db_seed import keys, seed
from tests.helpers.paths import REPO


@pytest.fixture(scope="module")
def maria_cinder(mariadb_sandbox) -> str:
    url = configs.db_url(mariadb_sandbox.state, mariadb_sandbox.config, "cinder")
    sync_schema(url)
    return url


def test_mariadb_concurrent_runs_case_sensitive_hosts_and_verify(mariadb_sandbox, maria_cinder, key_file,
                                                                 fixed_key_hex, tmp_path):
    a = seed(maria_cinder, volumes=10, snapshots_per_volume=1, host="ctl-0@lvm#lvm", backups=3, backup_host="ctl-0")
    upper = seed(maria_cinder, volumes=2, host="CTL-0@lvm#lvm")  # cinder matches hosts case-sensitively
    db = CinderDB(maria_cinder)
    assert {i.id for i in db.items("volumes", host="ctl-0")} == set(a.volumes)
    db.dispose()
    env = mariadb_sandbox.env()
    args = ["--log-format", "json", "--os-cloud", "sandbox-demo", "migrate", "run", "--db-url", maria_cinder,
            "--fixed-key-file", str(key_file), "--host", "ctl-0", "--concurrency", "4", "--format", "json"]
    procs = [subprocess.Popen([sys.executable, "-m", "keytools", *args, "--state-dir", str(tmp_path / f"st{n}")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
             for n in range(2)]
    results = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err[-2000:]
        assert fixed_key_hex not in out + err
    counts: dict[str, int] = {}
    for _, err in results:
        for line in err.splitlines():
            doc = json.loads(line) if line.startswith("{") else {}
            if doc.get("event") == "migrated":
                counts[doc["id"]] = counts.get(doc["id"], 0) + 1
    assert sorted(counts) == sorted(a.volumes + a.backups) and set(counts.values()) == {1}
    vols, snaps = keys(maria_cinder, "volumes"), keys(maria_cinder, "snapshots")
    assert all(vols[v] == FIXED_KEY_ID for v in upper.volumes)
    assert FIXED_KEY_ID not in {vols[v] for v in a.volumes} | {snaps[s] for s in a.snapshots}
    session = mariadb_sandbox.session("demo")
    client = keymanager.barbican_client(session)
    endpoint = keymanager.barbican_endpoint(session)
    key = bytes.fromhex(fixed_key_hex)
    for v in a.volumes[:5]:
        assert client.secrets.get(f"{endpoint}/v1/secrets/{vols[v]}").payload == key
    for n in range(2):
        p = run_keytools("--os-cloud", "sandbox-demo", "migrate", "verify", "--db-url", maria_cinder,
                         "--fixed-key-file", str(key_file), "--state-dir", str(tmp_path / f"st{n}"),
                         "--format", "json", env=env)
        assert p.returncode == 0, p.stderr[-2000:]
        assert json.loads(p.stdout)["problems"] == []
    p = run_keytools("migrate", "status", "--db-url", maria_cinder, "--format", "json", env=env)
    assert json.loads(p.stdout)["remaining"] == {"volumes": 2, "snapshots": 0, "backups": 0}


@pytest.fixture(scope="module")
def maria_nova(mariadb_sandbox) -> dict[str, str]:
    """nova_api, cell0 and two cells on the private MariaDB, made by nova-manage."""
    import sqlalchemy as sa

    from keytools.nova_db import create_databases

    server = configs.db_url(mariadb_sandbox.state, mariadb_sandbox.config, "cinder")
    names = {"api": "kt_nova_api", "cell0": "kt_nova_cell0", "cell1": "kt_nova_cell1", "cell2": "kt_nova_cell2"}
    eng = sa.create_engine(server)
    with eng.begin() as conn:
        for name in names.values():
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
            conn.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    eng.dispose()
    urls = {k: server.replace("/cinder?", f"/{v}?") for k, v in names.items()}
    create_databases(urls["api"], urls["cell0"], {"cell1": urls["cell1"], "cell2": urls["cell2"]})
    return urls


def test_mariadb_nova_cells_concurrent_runs_and_verify(mariadb_sandbox, maria_nova, key_file, fixed_key_hex,
                                                       tmp_path):
    from tests.helpers.db_seed import instance_keys, seed_instances

    ids = seed_instances(maria_nova["cell1"], 6) + seed_instances(maria_nova["cell2"], 6)
    other = seed_instances(maria_nova["cell2"], 2, deleted=True)
    env = mariadb_sandbox.env()
    args = ["--log-format", "json", "--os-cloud", "sandbox-demo", "migrate", "run", "--admin-cloud", "sandbox-admin", "--nova-api-db-url",
            maria_nova["api"], "--fixed-key-file", str(key_file), "--concurrency", "4", "--format", "json"]
    procs = [subprocess.Popen([sys.executable, "-m", "keytools", *args, "--state-dir", str(tmp_path / f"st{n}")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
             for n in range(2)]
    results = [p.communicate(timeout=300) for p in procs]
    counts: dict[str, int] = {}
    for p, (out, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err[-2000:]
        assert fixed_key_hex not in out + err
        for line in err.splitlines():
            doc = json.loads(line) if line.startswith("{") else {}
            if doc.get("event") == "migrated":
                counts[doc["id"]] = counts.get(doc["id"], 0) + 1
    assert sorted(counts) == sorted(ids) and set(counts.values()) == {1}  # two runs, never twice
    current = {**instance_keys(maria_nova["cell1"]), **instance_keys(maria_nova["cell2"])}
    assert FIXED_KEY_ID not in {current[i] for i in ids} and {current[i] for i in other} == {FIXED_KEY_ID}
    for n in range(2):
        p = run_keytools("--os-cloud", "sandbox-demo", "migrate", "verify", "--nova-api-db-url", maria_nova["api"],
                         "--fixed-key-file", str(key_file), "--state-dir", str(tmp_path / f"st{n}"),
                         "--format", "json", env=env)
        assert p.returncode == 0 and json.loads(p.stdout)["problems"] == [], p.stderr[-2000:]
    p = run_keytools("fixed-key", "inventory", "--nova-api-db-url", maria_nova["api"], "--ignore-service",
                     "cinder,glance", "--format", "json", env=env)
    assert p.returncode == 0 and json.loads(p.stdout)["clean"], p.stdout + p.stderr
