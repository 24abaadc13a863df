"""kill -9 at random points, then a rerun: every row migrated, every secret equal to fixed_key, no
dangling id, orphans reported; and two runs at once never migrate a row twice.

The killed runs are real processes: most are forked from this (already imported) test process and
run keytools' main() so a trial costs a fraction of a second instead of two seconds of imports; a
few are ``python -m keytools`` subprocesses. Each is killed with SIGKILL while it works
(tests/migrate/crash_helpers.py, tests/helpers/kill.py).
"""

from __future__ import annotations

import json
import os
import random

import pytest
import sqlalchemy as sa

from keytools import keymanager
from keytools.cinder_db import FIXED_KEY_ID
from migrate import journal as jr
from tests.helpers.db_seed import Seeded, keys, seed
from tests.helpers.kill import fork_main
from tests.migrate.crash_helpers import kill_while_working, start

TRIALS = 22
SUBPROCESS_TRIALS = {0, 11}  # these go through 'python -m keytools'


def _args(url, key_file, state, *extra):
    return ["--os-cloud", "sandbox-demo", "migrate", "run", "--db-url", url, "--fixed-key-file", str(key_file),
            "--state-dir", str(state), "--concurrency", "2", *extra]


def _check_invariants(url: str, rows: Seeded, client, endpoint: str, key: bytes, reported_orphans: set[str]):
    vols, snaps, baks = keys(url, "volumes"), keys(url, "snapshots"), keys(url, "backups")
    eng = sa.create_engine(url)
    with eng.connect() as c:
        parents = dict(c.execute(sa.text("SELECT id, volume_id FROM snapshots")).all())
    eng.dispose()
    used = set()
    for table, ids, current in (("volumes", rows.volumes, vols), ("backups", rows.backups, baks)):
        for row_id in ids:
            kid = current[row_id]
            assert kid != FIXED_KEY_ID, f"{table} {row_id} left on the all-zeros id"
            payload = client.secrets.get(f"{endpoint}/v1/secrets/{kid}").payload  # no dangling id
            assert payload == key
            used.add(kid)
            named = {s.secret_ref.rpartition("/")[2] for s in client.secrets.list(name=jr.secret_name(table, row_id))}
            assert kid in named
            extra = named - {kid}
            assert extra <= reported_orphans, f"unreported orphan secrets {extra} for {table} {row_id}"
    assert len(used) == len(rows.volumes) + len(rows.backups)  # no secret shared by two rows
    for sid in rows.snapshots:
        assert snaps[sid] == vols[parents[sid]]


def test_kill_9_trials_then_rerun_converges(kt, sandbox, cinder_url, key_file, fixed_key_hex, creator_session,
                                            tmp_path):
    rng = random.Random(int(os.environ.get("KEYTOOLS_TEST_SEED", "4")))
    state = tmp_path / "st"
    env = {"OS_CLIENT_CONFIG_FILE": str(sandbox.clouds_yaml)}
    client = keymanager.barbican_client(creator_session)
    endpoint = keymanager.barbican_endpoint(creator_session)
    key = bytes.fromhex(fixed_key_hex)
    outcomes = {"killed_mid_run": 0, "killed_before_start": 0, "finished": 0}
    for trial in range(TRIALS):
        rows = seed(cinder_url, volumes=3, snapshots_per_volume=1, backups=1)
        early = trial % 5 == 4
        run = start(_args(cinder_url, key_file, state), env, as_subprocess=trial in SUBPROCESS_TRIALS)
        state_ = kill_while_working(run, rng, early)
        before = keys(cinder_url, "volumes")
        done_before = sum(before[v] != FIXED_KEY_ID for v in rows.volumes)
        if state_ == "finished":
            outcomes["finished"] += 1
        elif early and done_before == 0:
            outcomes["killed_before_start"] += 1
        else:
            outcomes["killed_mid_run"] += 1
        r = kt(*_args(cinder_url, key_file, state, "--format", "json"))
        assert r.exit_code == 0, f"trial {trial}: {r.output}"
        out = json.loads(r.stdout)
        orphans = {o["secret_id"] for o in out["orphans"]}
        _check_invariants(cinder_url, rows, client, endpoint, key, orphans)
    assert outcomes["killed_mid_run"] >= TRIALS // 3, outcomes
    # the journal never held key material
    for path in state.iterdir():
        text = path.read_text()
        assert fixed_key_hex not in text and fixed_key_hex.upper() not in text
    # orphans left by the kills are deleted on request, and never a secret a row uses
    r = kt(*_args(cinder_url, key_file, state, "--cleanup", "--format", "json"))
    assert r.exit_code == 0
    vols = keys(cinder_url, "volumes")
    for kid in set(vols.values()):
        assert client.secrets.get(f"{endpoint}/v1/secrets/{kid}").payload == key
    print(f"kill -9 trials: {outcomes}; orphans deleted: {json.loads(r.stdout)['deleted_orphans']}")


@pytest.mark.parametrize("shared_journal", [True, False])
def test_two_concurrent_runs_never_migrate_a_row_twice(sandbox, cinder_url, key_file, fixed_key_hex,
                                                       creator_session, tmp_path, shared_journal):
    rows = seed(cinder_url, volumes=8, snapshots_per_volume=1, backups=2)
    env = {"OS_CLIENT_CONFIG_FILE": str(sandbox.clouds_yaml)}
    outs = []
    procs = []
    for n in range(2):
        state = tmp_path / ("st" if shared_journal else f"st{n}")
        procs.append(fork_main(["--log-format", "json", *_args(cinder_url, key_file, state)], env))
    for run in procs:
        pid, fd = run.pid, run.stderr_fd
        data = b""
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            data += chunk
        _, status = os.waitpid(pid, 0)
        os.close(fd)
        assert os.waitstatus_to_exitcode(status) == 0, data.decode()[-2000:]
        outs.append(data.decode())
    migrated: dict[str, int] = {}
    lost = 0
    for text in outs:
        for line in text.splitlines():
            if not line.startswith("{"):
                continue
            doc = json.loads(line)
            if doc.get("event") == "migrated":
                migrated[doc["id"]] = migrated.get(doc["id"], 0) + 1
            lost += doc.get("event") == "lost_race"
    everything = rows.volumes + rows.backups
    assert sorted(migrated) == sorted(everything) and set(migrated.values()) == {1}
    client = keymanager.barbican_client(creator_session)
    endpoint = keymanager.barbican_endpoint(creator_session)
    key = bytes.fromhex(fixed_key_hex)
    _check_invariants(cinder_url, rows, client, endpoint, key, _all_orphans(cinder_url, key_file, tmp_path,
                                                                            shared_journal))


def _all_orphans(url, key_file, tmp_path, shared):
    from tests.helpers.cli import invoke

    found = set()
    for state in ([tmp_path / "st"] if shared else [tmp_path / "st0", tmp_path / "st1"]):
        r = invoke(["migrate", "plan", "--db-url", url, "--fixed-key-file", str(key_file), "--state-dir", str(state),
                    "--format", "json"])
        found |= {o["secret_id"] for o in json.loads(r.stdout)["orphans"]}
    return found
