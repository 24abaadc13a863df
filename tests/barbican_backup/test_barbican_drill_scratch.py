"""The non-destructive drill: a scratch Barbican (Barbican's own server code) on a scratch copy,
proving through its API that every secret decrypts with its metadata and ACLs. Production only read."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from barbican_backup_helpers import PASSPHRASE, barbican_conf, conf_copy, store_secrets

from keytools import keymanager
from keytools.barbican import scratch
from keytools.barbican.db_sqlite import stats_of
from tests.helpers.cli import keytools_argv
from tests.helpers.kill import kill_when, spawn

ENV = {"BK_PASS": PASSPHRASE}


def prod_db(sandbox) -> Path:
    return sandbox.state.path("barbican", "barbican.db")


def prod_state(sandbox) -> tuple[str | None, dict[str, int]]:
    with sqlite3.connect(f"file:{prod_db(sandbox)}?mode=ro", uri=True) as conn:
        stats = stats_of(conn)
    return stats.digest, stats.counts


def one_error(stderr: str) -> bool:
    """Exactly one error line (the last), no traceback; log lines may precede it."""
    lines = stderr.strip().splitlines()
    return bool(lines) and lines[-1].startswith("keytools: error") and "Traceback" not in stderr \
        and sum("keytools: error" in line for line in lines) == 1


def drill_dirs(where: Path, before: frozenset[Path] = frozenset()) -> list[Path]:
    """Scratch dirs in ``where`` (beside the database the drill is for) that appeared since
    ``before`` (other drills of the same database may be running)."""
    return [p for p in where.glob(scratch.PREFIX + "*") if p not in before]


@pytest.fixture
def others(sandbox) -> frozenset[Path]:
    return frozenset(drill_dirs(prod_db(sandbox).parent))


@pytest.fixture(scope="module")
def populated(sandbox):
    """Secrets with user metadata, an ACL, a container with a consumer, an order: what must come back."""
    session = sandbox.session("admin")
    client = keymanager.barbican_client(session)
    made = store_secrets(session, "scratch")
    ref = next(iter(made))
    endpoint = keymanager.barbican_endpoint(session)
    sid = ref.rsplit("/", 1)[-1]
    session.put(f"{endpoint}/v1/secrets/{sid}/metadata", json={"metadata": {"owner": "drill", "tier": "gold"}})
    acl = client.acls.create(entity_ref=ref, users=["drill-reader"], project_access=False)
    acl.submit()
    container = client.containers.create(name="drill-container", secrets={"one": client.secrets.get(ref)})
    cref = container.store()
    session.post(f"{cref}/consumers", json={"name": "drill-consumer", "URL": "http://127.0.0.1/consumer"})
    order = client.orders.create_key(name="drill-order", algorithm="aes", bit_length=256, mode="cbc")
    order.submit()
    return {"secrets": made, "acl_secret": sid, "container": cref}


def test_scratch_drill_proves_everything_and_only_reads_production(sandbox, populated, kt, others):
    before = prod_state(sandbox)
    result = kt("barbican", "drill", "--config", barbican_conf(sandbox), "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["result"] == "pass" and report["mode"] == "scratch" and all(s["ok"] for s in report["steps"])
    assert report["secrets_checked"] == report["secrets_total"] == before[1]["secrets"] >= 6
    for name in ("secrets", "containers", "orders", "container_consumers"):
        assert report["api_counts"][name] == report["manifest_counts"][name] == before[1][name], name
    assert report["api_counts"]["container_consumers"] >= 1 and report["problems"] == []
    assert prod_state(sandbox) == before  # production only read
    assert not drill_dirs(prod_db(sandbox).parent, others) and scratch.port_is_free(report["port"])  # scratch gone
    kek = (barbican_conf(sandbox)).read_text().split("kek = ", 1)[1].split()[0]
    assert kek not in result.output


def test_sample_is_reproducible_with_seed(sandbox, populated, kt):
    runs = [kt("barbican", "drill", "--config", barbican_conf(sandbox), "--sample", "2", "--seed", "7", "-f", "json")
            for _ in range(2)]
    reports = [json.loads(r.stdout) for r in runs]
    assert all(r.exit_code == 0 for r in runs), runs[0].output
    assert [r["secrets_checked"] for r in reports] == [2, 2] and reports[0]["seed"] == 7
    table = kt("barbican", "drill", "--config", barbican_conf(sandbox), "--sample", "1", "--seed", "3")
    assert table.exit_code == 0 and "sample of 1 (seed 3)" in table.stdout and "drill PASS" in table.stdout


def test_drill_from_an_archive_alone(sandbox, populated, kt, tmp_path, others):
    archive = tmp_path / "b.ktbak"
    made = kt("barbican", "backup", "--config", barbican_conf(sandbox), "--out", archive,
              "--passphrase-env", "BK_PASS", env=ENV)
    assert made.exit_code == 0, made.output
    # "another machine": nothing of the sandbox is needed, not even its barbican.conf
    result = kt("barbican", "drill", "--archive", archive, "--passphrase-env", "BK_PASS", "-f", "json", env=ENV)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["source"] == f"archive {archive}" and report["secrets_checked"] == report["secrets_total"]
    assert not any("back up" in s["name"] for s in report["steps"])
    wrong = tmp_path / "wrong.pass"
    wrong.write_text("not the passphrase at all\n")
    os.chmod(wrong, 0o600)
    bad = kt("barbican", "drill", "--archive", archive, "--passphrase-file", wrong)
    assert bad.exit_code == 2 and "wrong passphrase" in bad.stderr and one_error(bad.stderr)
    blob = archive.read_bytes()
    truncated = tmp_path / "t.ktbak"
    truncated.write_bytes(blob[: len(blob) // 2])
    corrupt = tmp_path / "c.ktbak"
    corrupt.write_bytes(blob[:-100] + bytes(b ^ 0xFF for b in blob[-100:-99]) + blob[-99:])
    for damaged in (truncated, corrupt):
        res = kt("barbican", "drill", "--archive", damaged, "--passphrase-env", "BK_PASS", env=ENV)
        assert res.exit_code == 2 and "Traceback" not in res.output, res.output
        assert str(damaged) in res.stderr and one_error(res.stderr), res.stderr
    nopass = kt("barbican", "drill", "--archive", archive)
    assert nopass.exit_code == 2 and "passphrase" in nopass.stderr
    assert not drill_dirs(tmp_path) and not drill_dirs(prod_db(sandbox).parent, others)


def test_a_secret_that_no_longer_decrypts_is_a_loss(sandbox, populated, kt, tmp_path):
    db = tmp_path / "damaged.db"
    shutil.copy(prod_db(sandbox), db)
    victim = populated["acl_secret"]
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE encrypted_data SET cypher_text = 'AAAA' WHERE secret_id = ?", (victim,))
    conf = conf_copy(barbican_conf(sandbox), tmp_path / "damaged.conf", connection=f"sqlite:///{db}")
    result = kt("barbican", "drill", "--config", conf)
    assert result.exit_code == 1, result.output
    assert f"LOST: secret {victim}: payload does not decrypt" in result.stdout and "drill FAIL" in result.stdout
    other_kek = conf_copy(barbican_conf(sandbox), tmp_path / "otherkek.conf", connection=f"sqlite:///{db}",
                          kek="dGhpcyBpcyBub3QgdGhlIGtlayBvZiB0aGlzIGNsb3Vk")
    wrong = kt("barbican", "drill", "--config", other_kek, "-f", "json")
    assert wrong.exit_code == 1
    assert json.loads(wrong.stdout)["problems"], wrong.output


def test_busy_port_and_bad_options(sandbox, kt):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        busy = kt("barbican", "drill", "--config", barbican_conf(sandbox), "--port", str(port))
    assert busy.exit_code == 2 and f"--port {port}" in busy.stderr and "busy" in busy.stderr, busy.output
    for args, word in ((["--sample", "0"], "--sample"), (["--keep"], "--in-place"),
                       (["--in-place", "--sample", "3"], "--in-place"), (["--passphrase-env", "X"], "--archive")):
        res = kt("barbican", "drill", "--config", barbican_conf(sandbox), *args)
        assert res.exit_code == 2 and word in res.stderr, (args, res.output)


def test_without_the_sandbox_extra_one_line_says_what_to_install(sandbox, kt, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gunicorn" else real(name, *a))
    res = kt("barbican", "drill", "--config", barbican_conf(sandbox))
    assert res.exit_code == 2 and "pip install 'keytools[sandbox]'" in res.stderr, res.output
    assert one_error(res.stderr)


def test_killed_drill_leaves_nothing_after_a_rerun(sandbox, populated, others, tmp_path):
    """The scratch copy (decrypted database, KEKs) is beside the production database, never in the
    shared temp dir; a killed drill's is removed by the rerun."""
    shared = tmp_path / "shared-tmp"  # a TMPDIR of the test's own: nothing may land there
    shared.mkdir(mode=0o700)
    env = {**os.environ, "OS_CLIENT_CONFIG_FILE": str(sandbox.clouds_yaml), "TMPDIR": str(shared)}
    argv = keytools_argv("barbican", "drill", "--config", barbican_conf(sandbox), "-f", "json")
    here = prod_db(sandbox).parent

    def server_up() -> bool:
        return any((d / "server.json").exists() for d in drill_dirs(here, others))

    kill_when(spawn(argv, env, stdout=subprocess.PIPE, stderr=subprocess.PIPE), server_up, must_reach=True)
    assert list(shared.iterdir()) == []
    left = drill_dirs(here, others)
    assert left  # the decrypted copy is still there, 0700 ...
    assert all(oct(d.stat().st_mode & 0o777) == "0o700" for d in left)
    server = json.loads((left[0] / "server.json").read_text())
    deadline = time.monotonic() + 20  # ... but the scratch Barbican died with the drill (PDEATHSIG)
    while not scratch.port_is_free(server["port"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert scratch.port_is_free(server["port"])
    rerun = subprocess.run(argv, env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert not drill_dirs(here, others)  # the rerun removed the killed drill's scratch copy
    assert list(shared.iterdir()) == []
