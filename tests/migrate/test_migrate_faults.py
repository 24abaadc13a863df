"""Injected Barbican faults: a small proxy on 127.0.0.1 in front of the real Barbican
(tests/helpers/fault_proxy.py) answers 500, hangs, or stores the secret and then loses the answer;
a closed port stands for refused connections."""

from __future__ import annotations

import json
import socket

import pytest

from keytools.cinder_db import FIXED_KEY_ID
from keytools.errors import EXIT_UNREACHABLE
from migrate import journal as jr
from tests.helpers.db_seed import keys, seed
from tests.helpers.fault_proxy import FaultProxy


@pytest.fixture
def faulty(sandbox):
    proxy = FaultProxy(sandbox.url("barbican"))
    yield proxy
    proxy.close()


def _run(kt, url, key_file, state, endpoint, *extra):
    return kt("--os-cloud", "sandbox-demo", "migrate", "run", "--db-url", url, "--fixed-key-file", key_file,
              "--state-dir", state, "--barbican-endpoint", endpoint, "--concurrency", "1", "--format", "json", *extra)


def test_transient_500_and_hang_are_retried(kt, faulty, cinder_url, key_file, tmp_path, creator_session):
    s = seed(cinder_url, volumes=3, backups=1)
    faulty.plan = ["500", "500", "ok", "hang", "lost"]
    faulty.hang_seconds = 1.6
    r = _run(kt, cinder_url, key_file, tmp_path / "st", faulty.url, "--timeout", "1")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["errors"] == 0 and out["migrated"]["volumes"] == 3 and out["migrated"]["backups"] == 1
    vols = keys(cinder_url, "volumes")
    assert FIXED_KEY_ID not in vols.values()
    # the "lost" POST stored a secret whose answer never came: found by name and used, not duplicated
    from keytools import keymanager
    client = keymanager.barbican_client(creator_session)
    for vid in s.volumes:
        named = client.secrets.list(name=jr.secret_name("volumes", vid))
        assert vols[vid] in {x.secret_ref.rpartition("/")[2] for x in named}
    total_named = sum(len(client.secrets.list(name=jr.secret_name(t, i)))
                      for t, ids in (("volumes", s.volumes), ("backups", s.backups)) for i in ids)
    # the hung POST may also have been stored by Barbican after the client gave up: at most one extra,
    # and it is reported as an orphan rather than silently kept
    assert total_named - 4 == len(out["orphans"])


def test_persistent_failure_aborts_after_four_errors_cleanly(kt, faulty, cinder_url, key_file, tmp_path):
    seed(cinder_url, volumes=6)
    faulty.default = "500"
    r = _run(kt, cinder_url, key_file, tmp_path / "st", faulty.url, "--retries", "1")
    assert r.exit_code == EXIT_UNREACHABLE, r.output
    assert r.stderr.count("Error migrating encryption key:") == 4
    assert "Aborting encryption key migration (too many errors)." in r.stderr
    assert "There are still 6 volume(s) using the ConfKeyManager's all-zeros encryption key ID." in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("keytools: error: migration failed (4 error(s), aborted)")
    assert "Traceback" not in r.output
    assert set(keys(cinder_url, "volumes").values()) == {FIXED_KEY_ID}  # no row points at an unstored secret
    faulty.default = "ok"
    r = _run(kt, cinder_url, key_file, tmp_path / "st", faulty.url)
    assert r.exit_code == 0 and FIXED_KEY_ID not in keys(cinder_url, "volumes").values()


def test_refused_connection_stops_before_any_change(kt, cinder_url, key_file, tmp_path):
    seed(cinder_url, volumes=1)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    r = _run(kt, cinder_url, key_file, tmp_path / "st", f"http://127.0.0.1:{port}")
    assert r.exit_code == EXIT_UNREACHABLE, r.output
    assert "cannot reach Barbican" in r.stderr
    # cinder's sequence when its Barbican client cannot be created (it contacts Barbican to do so)
    msgs = [line.split("] ", 1)[1] for line in r.stderr.splitlines() if " keytools.migrate [" in line]
    assert msgs[0] == "Starting migration of ConfKeyManager keys."
    assert msgs[1].startswith("Aborting encryption key migration due to error creating Barbican client: ")
    assert msgs[2:] == ["There are still 1 volume(s) using the ConfKeyManager's all-zeros encryption key ID.",
                        "No backups are known to be using the ConfKeyManager's encryption_key_id."]
    assert "Migrating " not in r.stderr and "Error migrating" not in r.stderr
    assert set(keys(cinder_url, "volumes").values()) == {FIXED_KEY_ID}


def _messages(stderr: str) -> list[str]:
    """The message part of keytools.migrate's oslo.log lines."""
    return [line.split("] ", 1)[1] for line in stderr.splitlines() if " keytools.migrate [" in line]


@pytest.mark.parametrize("concurrency", ["1", "8"])
@pytest.mark.parametrize("ok_first", [0, 3])
def test_error_budget_is_cinders_at_any_concurrency(kt, faulty, cinder_url, key_file, tmp_path, concurrency,
                                                    ok_first):
    """At most 4 'Error migrating encryption key' lines, the abort line right after the 4th and
    no error line after it, whatever the concurrency; failing from the first row, exactly the 4
    rows cinder would have tried are tried."""
    seed(cinder_url, volumes=16)
    faulty.plan = ["ok"] * ok_first
    faulty.default = "500"
    r = _run(kt, cinder_url, key_file, tmp_path / "st", faulty.url, "--retries", "0", "--concurrency", concurrency)
    assert r.exit_code == EXIT_UNREACHABLE, r.output
    msgs = _messages(r.stderr)
    errors = [i for i, m in enumerate(msgs) if m.startswith("Error migrating encryption key: ")]
    aborts = [i for i, m in enumerate(msgs) if m.startswith("Aborting encryption key migration (too many errors).")]
    assert len(errors) == 4 and len(aborts) == 1 and aborts[0] == errors[-1] + 1
    assert not any(m.startswith("Error migrating") for m in msgs[aborts[0]:])
    out = json.loads(r.stdout)
    attempted = sum(m.startswith("Migrating VolumeMigration ") for m in msgs)
    assert out["errors"] == 4 and out["aborted"] and out["migrated"]["volumes"] == ok_first
    assert attempted == ok_first + 4 + out["abandoned"]
    if ok_first == 0:
        assert attempted == 4 and out["abandoned"] == 0  # cinder: call_count == MAX_KEY_MIGRATION_ERRORS + 1
    left = 16 - ok_first
    assert msgs[-2:] == [f"There are still {left} volume(s) using the ConfKeyManager's all-zeros encryption key ID.",
                         "No backups are known to be using the ConfKeyManager's encryption_key_id."]
    assert list(keys(cinder_url, "volumes").values()).count(FIXED_KEY_ID) == left
    # migrate status reads the same story back from this log
    log = tmp_path / "ctl-3-keytools.log"
    log.write_text(r.stderr)
    r = kt("migrate", "status", "--log", str(log), "--format", "json")
    host = json.loads(r.stdout)["hosts"][0]
    assert (host["errors"], host["aborted"], host["migrated"]) == (4, True, ok_first)
