"""kill -9 at random instants of a Nova migration (two cells), then a rerun: every instance on its
own secret holding fixed_key, no dangling id, no secret shared, extra secrets reported as orphans.
Same pattern as test_migrate_crash.py (forked runs of keytools' main(), one real subprocess)."""

from __future__ import annotations

import json
import os
import random

from keytools import keymanager
from keytools.cinder_db import FIXED_KEY_ID
from migrate import journal as jr
from tests.helpers.db_seed import instance_keys, seed_instances
from tests.migrate.crash_helpers import kill_while_working, start

TRIALS = 12
MAX_TRIALS = 24  # more trials only until two kills landed mid-migration (a loaded machine is slower)
SUBPROCESS_TRIALS = {5}


def _args(api, key_file, state, *extra):
    return ["--os-cloud", "sandbox-demo", "migrate", "run", "--admin-cloud", "sandbox-admin", "--nova-api-db-url", api, "--fixed-key-file",
            str(key_file), "--state-dir", str(state), "--concurrency", "2", *extra]


def test_nova_kill_9_trials_then_rerun_converges(kt, sandbox, nova_dbs, key_file, fixed_key_hex, creator_session,
                                                 tmp_path):
    rng = random.Random(int(os.environ.get("KEYTOOLS_TEST_SEED", "7")))
    state = tmp_path / "st"
    env = {"OS_CLIENT_CONFIG_FILE": str(sandbox.clouds_yaml)}
    client = keymanager.barbican_client(creator_session)
    endpoint = keymanager.barbican_endpoint(creator_session)
    key = bytes.fromhex(fixed_key_hex)
    outcomes = {"killed": 0, "finished": 0, "killed_mid_migration": 0}
    args = _args(nova_dbs["api"], key_file, state)
    trial = 0
    while trial < TRIALS or (outcomes["killed_mid_migration"] < 2 and trial < MAX_TRIALS):
        rows = {"cell1": seed_instances(nova_dbs["cell1"], 2), "cell2": seed_instances(nova_dbs["cell2"], 2)}
        early = trial % 4 == 3
        outcome = kill_while_working(start(args, env, as_subprocess=trial in SUBPROCESS_TRIALS), rng, early)
        outcomes[outcome] += 1
        done_before = sum(instance_keys(nova_dbs[c])[u] != FIXED_KEY_ID for c, ids in rows.items() for u in ids)
        if outcome == "killed" and 0 < done_before < 4:
            outcomes["killed_mid_migration"] += 1
        r = kt(*args, "--format", "json")
        assert r.exit_code == 0, f"trial {trial}: {r.output}"
        orphans = {o["secret_id"] for o in json.loads(r.stdout)["orphans"]}
        used = set()
        for cell, ids in rows.items():
            current = instance_keys(nova_dbs[cell])
            for uid in ids:
                kid = current[uid]
                assert kid != FIXED_KEY_ID, f"trial {trial}: instance {uid} left on the all-zeros id"
                assert client.secrets.get(f"{endpoint}/v1/secrets/{kid}").payload == key  # no dangling id
                assert kid not in used
                used.add(kid)
                named = {s.secret_ref.rpartition("/")[2]
                         for s in client.secrets.list(name=jr.secret_name("instances", uid))}
                assert kid in named and named - {kid} <= orphans, f"unreported orphans for {uid}"
        trial += 1
    assert outcomes["killed"] >= TRIALS // 2 and outcomes["killed_mid_migration"] >= 2, outcomes
    for path in state.iterdir():
        assert fixed_key_hex not in path.read_text()
    r = kt(*args, "--cleanup", "--format", "json")
    assert r.exit_code == 0, r.output
    r = kt("--os-cloud", "sandbox-demo", "migrate", "verify", "--nova-api-db-url", nova_dbs["api"], "--fixed-key-file",
           str(key_file), "--state-dir", str(state), "--format", "json")
    assert r.exit_code == 0 and json.loads(r.stdout)["checked"] == trial * 4, r.output
    print(f"nova kill -9 trials ({trial}): {outcomes}")
