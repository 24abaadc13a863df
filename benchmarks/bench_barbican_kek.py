#!/usr/bin/env python3
"""Restore drill and KEK rotation per 1,000 secrets / 1,000 project KEKs, on real Barbican code.

The data is made by Barbican itself: a scratch Barbican (noauth, loopback) on an empty SQLite
database stores N secrets, each in its own project, so Barbican creates N project KEKs. Then:
- the scratch drill (backup of barbican.conf, scratch copy, scratch Barbican, every secret
  decrypted + metadata + ACL through the API), in seconds per 1,000 secrets;
- the KEK rotation (plan, backup, stage, barbican-manage rewrap_pkek, validate = every project KEK
  unwraps with the new KEK alone + a drill with only the new KEK, retire), per stage.

``--secrets N`` (default 1000). Writes bench-results/barbican_kek.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import requests  # noqa: E402
from cryptography.fernet import Fernet  # noqa: E402

from keytools.barbican import kek, scratch  # noqa: E402
from keytools.barbican.archive import KeySource  # noqa: E402
from keytools.barbican.scratch_drill import ScratchDrill  # noqa: E402
from timing import stopwatch, write_results  # noqa: E402


def populate(work: Path, connection: str, master: str, count: int) -> float:
    """``count`` secrets, one project each (so ``count`` project KEKs), stored through Barbican's API."""
    with scratch.run(work, connection, [master], workers=1, create_schema=True) as server:
        session = requests.Session()
        with stopwatch() as watch:
            for i in range(count):
                resp = session.post(f"{server.url}/v1/secrets", headers=server.headers(f"bench-project-{i:05d}"),
                                    json={"name": f"bench-{i}", "payload": os.urandom(16).hex(),
                                          "payload_content_type": "text/plain"}, timeout=60)
                resp.raise_for_status()
        return watch.seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--secrets", type=int, default=1000)
    args = parser.parse_args()
    n = args.secrets
    with tempfile.TemporaryDirectory(prefix="bench-kek-") as tmp:
        root = Path(tmp)
        db = root / "barbican.db"
        master = Fernet.generate_key().decode()
        connection = f"sqlite:///{db}"
        build = root / "build"
        build.mkdir()
        store_s = populate(build, connection, master, n)
        conf = root / "barbican.conf"
        conf.write_text(f"[database]\nconnection = {connection}\n\n[simple_crypto_plugin]\nkek = {master}\n")
        os.chmod(conf, 0o600)
        with stopwatch() as drill:
            report = ScratchDrill(config=str(conf)).run()
        drill_s = drill.seconds
        assert report.result == "pass" and report.secrets_checked == n, report.problems[:3]
        steps = {s.name: s.seconds for s in report.steps}
        rotation = kek.Rotation([str(conf)], str(root / "pre.ktbak"), KeySource.random())
        with stopwatch() as rotate:
            rot = rotation.run()
        rotate_s = rotate.seconds
        assert rotation.error is None and rot.finished, rotation.error
        stages = {s.stage: s.seconds for s in rot.stages}
        check = kek.check_project_keks(connection, [Fernet.generate_key().decode()])
        assert check.total >= n
    per_k = 1000.0 / n
    result = {
        "secrets": n, "project_keks": n,
        "store_through_api_s": round(store_s, 2),
        "drill_s": round(drill_s, 2), "drill_s_per_1000_secrets": round(drill_s * per_k, 2),
        "drill_steps_s": steps,
        "rotation_s": round(rotate_s, 2), "rotation_s_per_1000": round(rotate_s * per_k, 2),
        "rotation_stages_s": stages,
        "rewrap_s_per_1000_project_keks": round(stages["rewrap"] * per_k, 2),
    }
    write_results("barbican_kek", result)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
