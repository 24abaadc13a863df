"""kill -9 of a Glance migration at random instants, then a rerun: every image off the all-zeros
id, on a secret that holds fixed_key (never a dangling id), no secret shared by two images, every
extra secret reported as an orphan, and --cleanup deletes only orphans.

The killed runs are real ``keytools migrate run --service glance`` processes forked from this
(already imported) test process (main(), as a user runs it); each is SIGKILLed while it works.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time

import pytest

from keytools import keymanager
from keytools.cinder_db import FIXED_KEY_ID
from migrate import journal as jr
from tests.helpers.kill import fork_main
from tests.migrate import glance_helpers as gh

TRIALS = int(os.environ.get("KT_GLANCE_TRIALS", "12"))
IMAGES_PER_TRIAL = 8


@pytest.fixture(scope="module")
def cloud(sandbox_with):
    return sandbox_with("glance")


def _args(key_file, state: str, *extra: str) -> list[str]:
    return ["--os-cloud", "sandbox-demo", "migrate", "run", "--service", "glance", "--glance-cloud", "sandbox-admin",
            "--fixed-key-file", str(key_file), "--state-dir", state, "--concurrency", "2", *extra]


def test_kill_9_trials_then_rerun_converges(kt, cloud, admin_session, creator_session, fixed_key_hex, key_file,
                                            tmp_path):
    rng = random.Random(int(os.environ.get("KEYTOOLS_TEST_SEED", "13")))
    key = bytes.fromhex(fixed_key_hex)
    tenants = gh.make_tenants(cloud, admin_session)
    state = str(tmp_path / "st")
    client = keymanager.barbican_client(creator_session)
    endpoint = keymanager.barbican_endpoint(creator_session)
    outcomes = {"killed_early": 0, "killed_mid_run": 0, "of_which_partly_done": 0, "finished": 0}
    all_images: list[str] = []
    for trial in range(TRIALS):
        owner = tenants.a1.session if trial % 2 else tenants.b1.session
        images = [gh.create_image(owner, f"crash-{trial}-{n}") for n in range(IMAGES_PER_TRIAL)]
        all_images += images
        run = fork_main(_args(key_file, state), {"OS_CLIENT_CONFIG_FILE": str(cloud.clouds_yaml)})
        early = trial % 4 == 3
        if early:  # during start-up, the checks or the listing
            time.sleep(rng.uniform(0.0, 0.3))
        else:
            # kill right after a random number of per-image log lines (2 per image, Migrating/
            # Migrated): three images beyond the two in flight are still to come, so the run is
            # still working when killed
            events = rng.randint(1, 2 * IMAGES_PER_TRIAL - 6)
            run.read_stderr_until(lambda seen: seen.count(b" image ") >= events, timeout=30, poll=0.2)
        killed = run.kill_9() and not run.exited_normally
        done_before = sum(gh.get_image(admin_session, i)["cinder_encryption_key_id"] != FIXED_KEY_ID
                          for i in images)
        if not killed:
            outcomes["finished"] += 1
        elif early:
            outcomes["killed_early"] += 1
        else:
            outcomes["killed_mid_run"] += 1
            outcomes["of_which_partly_done"] += 0 < done_before < len(images)
        res = kt(*_args(key_file, state, "-f", "json"))
        assert res.exit_code == 0, f"trial {trial}: {res.output}"
        rerun = json.loads(res.stdout)
        assert rerun["errors"] == 0 and rerun["remaining"] == {"images": 0}, f"trial {trial}: {rerun}"
        reported = {o["secret_id"] for o in rerun["orphans"]}
        used: set[str] = set()
        for image_id in images:
            kid = gh.get_image(admin_session, image_id)["cinder_encryption_key_id"]
            assert kid != FIXED_KEY_ID
            assert client.secrets.get(f"{endpoint}/v1/secrets/{kid}").payload == key  # never dangling
            named = {s.secret_ref.rpartition("/")[2] for s in client.secrets.list(name=jr.secret_name("images", image_id))}
            assert kid in named
            assert named - {kid} <= reported, f"trial {trial}: unreported orphans for image {image_id}"
            used.add(kid)
        assert len(used) == len(images)  # no secret shared by two images
    print(f"glance kill -9 trials: {outcomes}")
    assert outcomes["killed_early"] + outcomes["killed_mid_run"] >= TRIALS * 2 // 3, outcomes
    assert outcomes["killed_mid_run"] >= TRIALS // 3, outcomes
    for path in (tmp_path / "st").iterdir():  # the journal never holds key material
        assert fixed_key_hex not in path.read_text()
    res = kt(*_args(key_file, state, "--cleanup", "-f", "json"))
    assert res.exit_code == 0, res.output
    final = json.loads(res.stdout)
    for image_id in all_images:
        kid = gh.get_image(admin_session, image_id)["cinder_encryption_key_id"]
        assert client.secrets.get(f"{endpoint}/v1/secrets/{kid}").payload == key
        named = {s.secret_ref.rpartition("/")[2] for s in client.secrets.list(name=jr.secret_name("images", image_id))}
        assert named == {kid}, "cleanup left an orphan or deleted a used secret"
    print(f"orphans deleted: {final['deleted_orphans']}")
    sys.stdout.flush()
