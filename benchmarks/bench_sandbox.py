#!/usr/bin/env python3
"""Time `keytools sandbox up` from installed packages to ready (target <= 15 s on 2 cores),
cold (fresh state dir) and warm (restart of an initialised state dir), SQLite and MariaDB."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from timing import print_values, timed, write_results

KEYTOOLS = [sys.executable, "-m", "keytools"]


def timed_up(state: Path, *extra: str) -> float:
    return timed(lambda: subprocess.run([*KEYTOOLS, "sandbox", "up", "--state-dir", str(state), *extra], check=True,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))


def down(state: Path, purge: bool = False) -> None:
    subprocess.run([*KEYTOOLS, "sandbox", "down", "--state-dir", str(state), *(["--purge"] if purge else [])],
                   check=True, stdout=subprocess.DEVNULL)


def main() -> None:
    results = {}
    for db in ("sqlite", "mariadb"):
        with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as tmp:
            state = Path(tmp) / "s"
            try:
                results[f"{db}_cold_s"] = round(timed_up(state, "--db", db), 2)
                down(state)
                results[f"{db}_warm_s"] = round(timed_up(state), 2)
            finally:
                down(state, purge=True)
    print(f"{'case':<16} {'seconds':>8}  (target <= 15 s)")
    print_values(results, width=16, value_width=8, digits=2)
    write_results("sandbox", results)


if __name__ == "__main__":
    main()
