#!/usr/bin/env python3
"""Glance image migration rate next to Cinder's and Nova's, on the same Barbican, in one run.

A sandbox with Keystone, Barbican (MariaDB, 4 workers) and glance-api; N volumes in a Cinder
database, N instances in two Nova cells (nova-manage schema) and N images created through
glance-api with ``cinder_encryption_key_id`` = all zeros, in two projects. Each service is
migrated by ``keytools migrate run --service X`` (the CLI, in a subprocess) at the same
concurrency, one after the other; a Glance row costs three more HTTP calls than a database row
(Keystone members once per project, re-read, PATCH, re-read).

Options: --rows N (default 200) --concurrency C (default 4). Writes bench-results/migrate-glance.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

import bench_migrate as bm  # noqa: E402 - the Cinder/Nova helpers of the main migrate benchmark
from timing import stopwatch, write_results  # noqa: E402

ZEROS = "00000000-0000-0000-0000-000000000000"


def create_images(sessions: list, rows: int) -> float:
    """``rows`` images on the all-zeros id, spread over the given projects' sessions; returns s."""
    def one(n: int) -> None:
        session = sessions[n % len(sessions)]
        base = session.get_endpoint(service_type="image", interface="public").rstrip("/")
        session.post(f"{base}/v2/images", json={
            "name": f"bench-{n}", "disk_format": "raw", "container_format": "bare",
            "cinder_encryption_key_id": ZEROS, "cinder_encryption_key_deletion_policy": "on_image_deletion"})

    with stopwatch() as watch:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(one, range(rows)))
    return watch.seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=4)
    args = ap.parse_args()

    from keytools import auth
    from keytools.sandbox import bootstrap, configs, manager
    from keytools.sandbox.state import StateDir
    from tests.helpers.db_seed import seed, seed_instances

    tmp = Path(tempfile.mkdtemp(prefix="bench-glance-"))
    key_file = tmp / "fixed_key.hex"
    key_file.write_text(os.urandom(32).hex())
    key_file.chmod(0o600)
    state = StateDir(tmp / "sandbox")
    results: dict = {"machine": {"cpus": os.cpu_count()}, "rows": args.rows, "concurrency": args.concurrency}
    manager.up(state, db="mariadb", with_services=["glance"])
    cfg = state.load()
    results["barbican_workers"] = cfg.barbican_workers
    env = {**os.environ, "OS_CLIENT_CONFIG_FILE": str(state.clouds_yaml)}
    os.environ["OS_CLIENT_CONFIG_FILE"] = str(state.clouds_yaml)
    try:
        server_url = configs.db_url(state, cfg, "cinder")
        cinder_url = bm.create_db(server_url, "cinder_bench_glance")
        seed(cinder_url, volumes=args.rows)
        api, cell1, cell2 = bm.create_nova(server_url, tmp)
        seed_instances(cell1, args.rows // 2)
        seed_instances(cell2, args.rows - args.rows // 2)
        sessions = [auth.session_from_cloud("sandbox-demo"), bootstrap.admin_session(cfg, "service")]
        results["glance_image_create_s"] = round(create_images(sessions, args.rows), 1)
        common = ["--fixed-key-file", str(key_file), "--concurrency", str(args.concurrency), "--format", "json",
                  "--no-progress"]
        sources = {"cinder": ["--db-url", cinder_url], "nova": ["--nova-api-db-url", api],
                   "glance": ["--glance-cloud", "sandbox-admin"]}
        for service, source in sources.items():
            print(f"keytools migrate run --service {service}: {args.rows} rows, c={args.concurrency}", flush=True)
            run = bm.run_cli(["--log-format", "json", "--os-cloud", "sandbox-demo", "migrate", "run", "--service",
                              service, *source, "--state-dir", str(tmp / f"st-{service}"), *common], env)
            res = run["result"]
            results[service] = {"rc": run["rc"], "migrated": res.get("migrated"), "errors": res.get("errors"),
                                "seconds": res.get("seconds"), "rows_per_s": res.get("rate_per_s"),
                                "wall_s_with_startup": round(run["elapsed"], 1),
                                "peak_rss_mib": round(run["peak_rss_mib"], 1),
                                "client_cpu_ms_per_row": round(run["cpu_s"] / max(args.rows, 1) * 1000, 1)}
            print(f"  {res.get('rate_per_s')} rows/s, rc {run['rc']}", flush=True)
    finally:
        manager.down(state)
    write_results("migrate-glance", results)
    print(f"\n{'service':8} {'rows/s':>7} {'seconds':>8} {'cpu ms/row':>10}")
    for service in ("cinder", "nova", "glance"):
        r = results.get(service, {})
        print(f"{service:8} {r.get('rows_per_s')!s:>7} {r.get('seconds')!s:>8} {r.get('client_cpu_ms_per_row')!s:>10}")
    return 0 if all(results.get(s, {}).get("rc") == 0 for s in ("cinder", "nova", "glance")) else 1


if __name__ == "__main__":
    sys.exit(main())
