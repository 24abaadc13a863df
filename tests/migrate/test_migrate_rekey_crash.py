"""kill -9 of ``migrate rekey`` at every step, then a rerun: at every moment each header opens with the
key its row points at, and after the rerun with that key only (one keyslot, fixed_key opens nothing).

Each trial re-keys two fresh volumes (LUKS1 and LUKS2 image files; one on the all-zeros id, one on a
migrated secret holding fixed_key, with a snapshot sharing it) in keytools' main() forked from this
process (tests/helpers/kill.py), killed when the journal reaches a chosen step (secret intent, stored,
keyslot add intent, added, swapped, done) or at a random instant.
"""

from __future__ import annotations

import json
import os
import random
import time

import pytest

from keytools import keymanager
from keytools.cinder_db import FIXED_KEY_ID
from migrate import journal as jr
from tests.helpers.db_seed import keys, seed
from tests.helpers.kill import fork_main, kill_when
from tests.migrate.luks_helpers import luks_format, opens
from tests.migrate.rekey_helpers import barbican, headers_open_with_db_keys, rekey_args

__all__ = ["barbican"]  # a fixture

TRIALS = 21
STEPS = ("intent", "stored", "add", "added", "swapped", "done", "reencrypt", None)  # None: a random instant


def _ops(state) -> list[str]:
    out = []
    for path in state.glob("rekey-*.jsonl"):
        out += [doc.get("op") for doc in jr.records(path)]
    return out


def _cryptsetup_running(devs) -> bool:
    """An orphaned cryptsetup (its keytools parent was killed) still working on our headers."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = open(f"/proc/{pid}/cmdline", "rb").read()
        except OSError:
            continue
        if b"cryptsetup" in cmd and str(devs).encode() in cmd:
            return True
    return False


@pytest.fixture
def fixed_secret(creator_session, fixed_key_hex):
    """A migrated volume's secret: fixed_key's bytes in Barbican."""
    client = keymanager.barbican_client(creator_session)
    ref = client.secrets.create(name="rekey-crash-migrated", algorithm="AES", bit_length=256,
                                secret_type="symmetric", payload=bytes.fromhex(fixed_key_hex)).store()
    return ref.rpartition("/")[2]


def test_kill_9_at_every_step_then_rerun_converges(kt, sandbox, cinder_url, key_file, fixed_key_hex, tmp_path,
                                                    barbican, fixed_secret):
    rng = random.Random(int(os.environ.get("KEYTOOLS_TEST_SEED", "22")))
    fixed = bytes.fromhex(fixed_key_hex)
    devs, state = tmp_path / "devs", tmp_path / "st"
    devs.mkdir()
    env = {"OS_CLIENT_CONFIG_FILE": str(sandbox.clouds_yaml)}
    landed: dict[str, int] = {}
    for trial in range(TRIALS):
        vols = seed(cinder_url, volumes=1).volumes + \
            seed(cinder_url, volumes=1, snapshots_per_volume=1, key_id=fixed_secret).volumes
        for i, vid in enumerate(vols):
            luks_format(devs / f"volume-{vid}", fixed.hex().encode(), ("luks1", "luks2")[(i + trial) % 2])
        step = STEPS[trial % len(STEPS)]
        extra = ["--reencrypt-data"] if step == "reencrypt" or trial % 3 == 0 else []
        before = len(_ops(state))
        want = rng.randint(1, 2)
        run = fork_main(rekey_args(cinder_url, key_file, state, devs, "--concurrency", "1", *extra), env)
        if step is None:
            time.sleep(rng.uniform(0.05, 0.6))
            delivered = run.kill_9()
        else:
            delivered = kill_when(run, lambda s=step, n=want, b=before: _ops(state)[b:].count(s) >= n,
                                  timeout=30, poll=0.003)
        landed_at = (_ops(state)[before:] or ["start"])[-1] if delivered else "finished"
        landed[landed_at] = landed.get(landed_at, 0) + 1
        deadline = time.monotonic() + 10
        while _cryptsetup_running(devs) and time.monotonic() < deadline:
            time.sleep(0.02)
        # the invariant at the instant of the kill: the database's key opens every header
        current = keys(cinder_url, "volumes")
        for vid in vols:
            kid = current[vid]
            key = fixed if kid in (FIXED_KEY_ID, fixed_secret) else barbican.payload(kid)
            assert opens(devs / f"volume-{vid}", key.hex().encode()), (trial, step, vid)
        r = kt(*rekey_args(cinder_url, key_file, state, devs, *extra, "-f", "json"))
        assert r.exit_code == 0, (trial, step, r.output)
        assert all(v["status"] == "rekeyed" for v in json.loads(r.stdout)["volumes"]), r.stdout
        headers_open_with_db_keys(cinder_url, devs, barbican, fixed, vols)
        current = keys(cinder_url, "volumes")
        assert all(current[v] not in (FIXED_KEY_ID, fixed_secret) for v in vols)
    # every step was hit by some kill, and the old secret kept for the snapshots is still there
    print("kill landed after:", landed)
    assert {"intent", "stored", "add", "added", "swapped", "done"} <= set(landed), landed
    assert barbican.payload(fixed_secret) == fixed
    assert set(keys(cinder_url, "snapshots").values()) == {fixed_secret}
