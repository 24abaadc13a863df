"""Fault injection for the crash-safety tests: slow a restore down so a test can kill it midway.

``KEYTOOLS_FAULT_RESTORE_DELAY=<seconds>`` pauses between restore steps (SQLite page batches,
MySQL statements). Unset in normal use; it changes no outcome, only timing.
"""

from __future__ import annotations

import os
import time

ENV = "KEYTOOLS_FAULT_RESTORE_DELAY"


def step_delay() -> float:
    try:
        return max(0.0, float(os.environ.get(ENV, "0") or 0))
    except ValueError:
        return 0.0


def pause(delay: float) -> None:
    if delay:
        time.sleep(delay)
