"""Fault injection for the crash-safety tests: slow a restore down so a test can kill it midway.

``KEYTOOLS_FAULT_RESTORE_DELAY=<seconds>`` pauses between restore steps (SQLite page batches;
MySQL: once after the DELETEs that open the data transaction, then after each INSERT); ``KEYTOOLS_FAULT_BACKUP_DELAY`` pauses a backup after the archive's first
segment. Unset in normal use; they change no outcome, only timing.
"""

from __future__ import annotations

import os
import time

ENV = "KEYTOOLS_FAULT_RESTORE_DELAY"
BACKUP_ENV = "KEYTOOLS_FAULT_BACKUP_DELAY"


def step_delay(name: str = ENV) -> float:
    try:
        return max(0.0, float(os.environ.get(name, "0") or 0))
    except ValueError:
        return 0.0


def pause(delay: float) -> None:
    if delay:
        time.sleep(delay)


KEK_ENV = "KEYTOOLS_FAULT_KEK_PAUSE"  # "<stage>:<seconds>": pause inside that rotation stage
KEK_MARK_ENV = "KEYTOOLS_FAULT_KEK_MARK"  # a file created when the pause begins (the test kills then)


def kek_pause(stage: str) -> None:
    """Pause inside a KEK rotation stage, after its first change and before it is recorded."""
    wanted, _, seconds = os.environ.get(KEK_ENV, "").partition(":")
    if wanted != stage:
        return
    mark = os.environ.get(KEK_MARK_ENV)
    if mark:
        with open(mark, "w") as handle:
            handle.write(stage)
    pause(float(seconds or 0))


STORE_ENV = "KEYTOOLS_FAULT_STORE_PAUSE"  # "<point>:<seconds>": pause at that point of a store move


def store_pause(point: str) -> None:
    """Pause a store move at ``point`` ("secret": after each secret, "commit": inside a secret's
    transaction, before its commit), so the crash tests can kill it there."""
    wanted, _, seconds = os.environ.get(STORE_ENV, "").partition(":")
    if wanted == point:
        pause(float(seconds or 0))
