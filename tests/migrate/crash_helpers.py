"""The kill -9 trial of a migration shared by the Cinder and Nova crash tests: start a
``keytools migrate run`` (forked main(), or a real subprocess), kill it at a random instant."""

from __future__ import annotations

import os
import random
import subprocess
import time

from tests.helpers.cli import keytools_argv
from tests.helpers.kill import Run, fork_main, spawn
from tests.helpers.paths import REPO


def start(args: list[str], env: dict[str, str], as_subprocess: bool) -> Run:
    """``as_subprocess``: through ``python -m keytools``; else keytools' main() in a forked child."""
    if as_subprocess:
        return spawn(keytools_argv(*args), {**os.environ, **env}, stderr=subprocess.PIPE, cwd=REPO)
    return fork_main(args, env)


def kill_while_working(run: Run, rng: random.Random, early: bool) -> str:
    """SIGKILL the run at a random instant: during start-up/preflight, or after it started migrating."""
    if early:
        time.sleep(rng.uniform(0.0, 0.4))
    else:
        run.read_stderr_until(lambda seen: b"Starting migration" in seen, timeout=30, poll=0.5)
        time.sleep(rng.uniform(0.0, 0.5))
    return "killed" if run.kill_9() else "finished"
