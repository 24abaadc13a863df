#!/usr/bin/env python3
"""Volume types against a real cinder-api: what adding cinder-api to the sandbox costs, and
keytools' idempotent create (find + validate + 3-4 calls) beside bare cinderclient (2 calls).

Runs its own throwaway sandbox (SQLite) in a temp dir; prints a table, writes
bench-results/volume_types.json.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from timing import print_values, timed, write_results

KEYTOOLS = [sys.executable, "-m", "keytools"]
N = 10


def sh(*args: str, env: dict[str, str] | None = None) -> None:
    subprocess.run([*KEYTOOLS, *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env=env)


def main() -> None:
    from keytools import auth
    from keytools.volume_types import check, cinder_api, manage, spec

    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-vt-") as tmp:
        state = str(Path(tmp) / "s")
        try:
            results["sandbox_up_core_s"] = timed(lambda: sh("sandbox", "up", "--state-dir", state))
            results["add_cinder_api_s"] = timed(
                lambda: sh("sandbox", "up", "--state-dir", state, "--with", "cinder"))
            os.environ["OS_CLIENT_CONFIG_FILE"] = str(Path(state) / "clouds.yaml")
            session = auth.session_from_cloud("sandbox-admin")
            cinder = cinder_api.client(session)
            cinder_api.list_types(cinder)  # warm the token and connection
            run = uuid.uuid4().hex[:6]
            wanted = spec.build()

            raw = []
            for i in range(N):
                def bare(i: int = i) -> None:
                    t = cinder.volume_types.create(f"raw-{run}-{i}")
                    cinder.volume_encryption_types.create(t.id, wanted.as_body())
                raw.append(timed(bare))
            created = [timed(lambda i=i: manage.ensure(cinder, manage.Request(f"kt-{run}-{i}", wanted)))
                       for i in range(N)]
            unchanged = [timed(lambda i=i: manage.ensure(cinder, manage.Request(f"kt-{run}-{i}", wanted)))
                         for i in range(N)]
            results["cinderclient_create_ms"] = statistics.median(raw) * 1000
            results["keytools_create_ms"] = statistics.median(created) * 1000
            results["keytools_unchanged_ms"] = statistics.median(unchanged) * 1000
            types = len(cinder_api.list_types(cinder, with_encryption=False))
            results["check_all_types_s"] = timed(lambda: check.run(session, []))
            results["check_types_count"] = types
            cli = [timed(lambda: sh("--os-cloud", "sandbox-admin", "volume-type", "create", "--template", "256"))
                   for _ in range(3)]
            results["cli_create_template_s"] = statistics.median(cli)
        finally:
            sh("sandbox", "down", "--state-dir", state, "--purge")

    print(f"{'case':<26} {'value':>10}")
    print_values(results, width=26, value_width=10, digits=2)
    write_results("volume_types", {k: round(v, 2) if isinstance(v, float) else v for k, v in results.items()})


if __name__ == "__main__":
    main()
