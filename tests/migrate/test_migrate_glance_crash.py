"""kill -9 of a Glance migration at random instants, then a rerun: every image off the all-zeros
id, on a secret that holds fixed_key (never a dangling id), no secret shared by two images, every
extra secret reported as an orphan, and --cleanup deletes only orphans.

The killed runs are real processes forked from this (already imported) test process, running the
library exactly as the CLI does, each with its own sessions; each is SIGKILLed while it works.
"""

from __future__ import annotations

import os
import random
import select
import signal
import sys
import time

import pytest

from keytools import keymanager
from keytools.cinder_db import FIXED_KEY_ID
from keytools.project_members import ProjectMembers
from migrate import glance_migrate as gm
from migrate import journal as jr
from migrate.barbican import Barbican
from migrate.glance_images import GlanceImages
from tests.migrate import glance_helpers as gh

TRIALS = 12
IMAGES_PER_TRIAL = 5


@pytest.fixture(scope="module")
def cloud(sandbox_with):
    return sandbox_with("glance")


def _run(clouds_yaml: str, state: str, key: bytes, cleanup: bool = False) -> gm.GlanceOutcome:
    from keytools import auth

    os.environ["OS_CLIENT_CONFIG_FILE"] = clouds_yaml
    admin = auth.session_from_cloud("sandbox-admin")
    glance = GlanceImages(admin)
    with jr.Journal(gm.journal_path(state, glance)) as journal:
        return gm.GlanceMigrator(glance, Barbican(auth.session_from_cloud("sandbox-demo")), ProjectMembers(admin),
                                 journal, key, concurrency=2).run(cleanup=cleanup)


def _fork_run(clouds_yaml: str, state: str, key: bytes) -> tuple[int, int]:
    """Start a run in a child; its log lines come back through the returned pipe."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 70
        try:
            import logging

            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            os.dup2(write_fd, 2)
            handler = logging.StreamHandler(os.fdopen(2, "w", buffering=1))
            logging.getLogger("keytools.migrate").addHandler(handler)
            logging.getLogger("keytools.migrate").setLevel(logging.INFO)
            _run(clouds_yaml, state, key)
            code = 0
        except BaseException:  # noqa: BLE001 - the child only reports through its exit code
            code = 1
        finally:
            os._exit(code)
    os.close(write_fd)
    return pid, read_fd


def _wait_for_work(fd: int, deadline: float) -> None:
    """Read the child's log until it starts migrating an image (or ends)."""
    seen = b""
    while b"Migrating image" not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                return
            seen += chunk


def test_kill_9_trials_then_rerun_converges(cloud, admin_session, creator_session, fixed_key_hex, tmp_path):
    rng = random.Random(int(os.environ.get("KEYTOOLS_TEST_SEED", "13")))
    key = bytes.fromhex(fixed_key_hex)
    tenants = gh.make_tenants(cloud, admin_session)
    state = str(tmp_path / "st")
    client = keymanager.barbican_client(creator_session)
    endpoint = keymanager.barbican_endpoint(creator_session)
    outcomes = {"killed_mid_run": 0, "killed_before_any": 0, "finished": 0}
    all_images: list[str] = []
    for trial in range(TRIALS):
        owner = tenants.a1.session if trial % 2 else tenants.b1.session
        images = [gh.create_image(owner, f"crash-{trial}-{n}") for n in range(IMAGES_PER_TRIAL)]
        all_images += images
        pid, fd = _fork_run(str(cloud.clouds_yaml), state, key)
        if trial % 4 == 3:  # early: during start-up, listing or the first secret
            time.sleep(rng.uniform(0.0, 0.6))
        else:
            _wait_for_work(fd, time.monotonic() + 30)
            time.sleep(rng.uniform(0.0, 0.6))
        try:
            os.kill(pid, signal.SIGKILL)
            killed = True
        except ProcessLookupError:
            killed = False
        _, status = os.waitpid(pid, 0)
        os.close(fd)
        if os.WIFEXITED(status):
            killed = False
        done_before = sum(gh.get_image(admin_session, i)["cinder_encryption_key_id"] != FIXED_KEY_ID
                          for i in images)
        if not killed:
            outcomes["finished"] += 1
        elif done_before == 0:
            outcomes["killed_before_any"] += 1
        else:
            outcomes["killed_mid_run"] += 1
        rerun = _run(str(cloud.clouds_yaml), state, key)
        assert rerun.errors == 0 and rerun.remaining == 0, f"trial {trial}: {rerun.as_dict()}"
        reported = {o["secret_id"] for o in rerun.orphans}
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
    assert outcomes["killed_mid_run"] >= TRIALS // 4 and outcomes["finished"] <= TRIALS // 4, outcomes
    for path in (tmp_path / "st").iterdir():  # the journal never holds key material
        assert fixed_key_hex not in path.read_text()
    final = _run(str(cloud.clouds_yaml), state, key, cleanup=True)
    for image_id in all_images:
        kid = gh.get_image(admin_session, image_id)["cinder_encryption_key_id"]
        assert client.secrets.get(f"{endpoint}/v1/secrets/{kid}").payload == key
        named = {s.secret_ref.rpartition("/")[2] for s in client.secrets.list(name=jr.secret_name("images", image_id))}
        assert named == {kid}, "cleanup left an orphan or deleted a used secret"
    print(f"orphans deleted: {final.deleted_orphans}")
    sys.stdout.flush()
