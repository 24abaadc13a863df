#!/usr/bin/env python3
"""ConfKeyManager -> Barbican migration throughput, side by side in one run, on a Barbican whose
database is MariaDB (4 workers; SQLite would serialise every write):

- Barbican's ceiling: raw secret POST + ACL PUT per second at the best of several concurrencies;
- a serial cinder-style loop (create secret, ACL, update row + snapshots, one at a time, one
  session: what cinder-volume does at start-up), measured on a sample of rows;
- ``keytools migrate run`` (the CLI, in a subprocess) on the full data set: 10,000 volumes with
  one snapshot each + 1,000 backups by default; its rate and peak RSS;
- peak RSS again with 100,000 volumes, time-boxed (the table is scanned in pages, so memory
  should not follow the row count).

Options: --volumes N --backups N --loop-sample N --big N --big-seconds S --concurrency C.
Prints a table, writes bench-results/migrate.json.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
KEYTOOLS = [sys.executable, "-m", "keytools"]

from timing import ratio, stopwatch, timed, write_results  # noqa: E402


def create_db(server_url: str, name: str) -> str:
    import sqlalchemy as sa

    from keytools.cinder_db import sync_schema

    engine = sa.create_engine(server_url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
        conn.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    engine.dispose()
    url = server_url.replace("/cinder?", f"/{name}?")
    sync_schema(url)
    return url


def ceiling(session, key: bytes, per_level: int, levels: list[int], read_back: bool = False) -> dict[str, float]:
    """Secrets/s for POST + ACL (+ payload GET when ``read_back``, what keytools must also do)
    at several concurrencies, on one shared session as keytools uses."""
    from keytools import keymanager

    client = keymanager.barbican_client(session)
    from requests.adapters import HTTPAdapter

    adapter = HTTPAdapter(pool_maxsize=max(levels) + 2)
    session.session.mount("http://", adapter)
    rates = {}
    for level in levels:
        def one(_: int) -> None:
            ref = client.secrets.create(algorithm="AES", bit_length=len(key) * 8, secret_type="symmetric",
                                        mode=None, payload=key).store()
            client.acls.create(entity_ref=ref, users=["bench-user"]).submit()
            if read_back:
                session.get(f"{ref}/payload", headers={"Accept": "application/octet-stream"})

        with stopwatch() as watch:
            with ThreadPoolExecutor(max_workers=level) as pool:
                list(pool.map(one, range(per_level)))
        rates[str(level)] = per_level / watch.seconds
        print(f"  {'POST+ACL+GET' if read_back else 'POST+ACL'} c={level}: {rates[str(level)]:.1f} /s", flush=True)
    return rates


def serial_loop(session, url: str, key: bytes, limit: int) -> float:
    """cinder's KeyMigrator loop: per row create + ACL + UPDATE (+ snapshots), one at a time."""
    import sqlalchemy as sa

    from keytools import keymanager
    from keytools.cinder_db import FIXED_KEY_ID

    client = keymanager.barbican_client(session)
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT id, user_id FROM volumes WHERE encryption_key_id = :z AND deleted = 0 "
                                    "LIMIT :n"), {"z": FIXED_KEY_ID, "n": limit}).all()
    with stopwatch() as watch:
        for row in rows:
            ref = client.secrets.create(algorithm="AES", bit_length=len(key) * 8, secret_type="symmetric",
                                        mode=None, payload=key).store()
            client.acls.create(entity_ref=ref, users=[row.user_id]).submit()
            key_id = ref.rpartition("/")[2]
            with engine.begin() as conn:
                conn.execute(sa.text("UPDATE volumes SET encryption_key_id = :k WHERE id = :i"),
                             {"k": key_id, "i": row.id})
                conn.execute(sa.text("UPDATE snapshots SET encryption_key_id = :k WHERE volume_id = :i "
                                     "AND deleted = 0"), {"k": key_id, "i": row.id})
    engine.dispose()
    return len(rows) / watch.seconds


def run_cli(args: list[str], env: dict[str, str], seconds: float | None = None) -> dict:
    """Run keytools as a subprocess; return its JSON result (if it finished) and its peak RSS."""
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen([*KEYTOOLS, *args], stdout=subprocess.PIPE, stderr=log, env=env, cwd=REPO)
    timer = None
    if seconds:
        timer = threading.Timer(seconds, lambda: proc.send_signal(signal.SIGKILL))
        timer.start()
    with stopwatch() as watch:
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
    elapsed = watch.seconds
    proc.returncode = os.waitstatus_to_exitcode(status)
    if timer:
        timer.cancel()
    log.seek(0)
    lines = log.read().decode(errors="replace").splitlines()
    migrated = sum(1 for line in lines if '"event": "migrated"' in line)
    try:
        result = json.loads(out) if out.strip() else {}
    except ValueError:
        result = {}
    if proc.returncode not in (0, -9):
        print("\n".join(lines[-20:]), file=sys.stderr)
    return {"result": result, "rc": proc.returncode, "elapsed": elapsed, "peak_rss_mib": usage.ru_maxrss / 1024,
            "cpu_s": usage.ru_utime + usage.ru_stime,
            "migrated_lines": migrated}


def create_nova(server_url: str, tmp: Path) -> tuple[str, str, str]:
    """nova_api + cell0 + two cells on the same MariaDB, made by nova-manage; returns the api URL."""
    import sqlalchemy as sa

    from keytools.nova_db import create_databases

    engine = sa.create_engine(server_url)
    names = ("nova_bench_api", "nova_bench_cell0", "nova_bench_cell1", "nova_bench_cell2")
    with engine.begin() as conn:
        for name in names:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
            conn.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    engine.dispose()
    urls = {n: server_url.replace("/cinder?", f"/{n}?") for n in names}
    create_databases(urls[names[0]], urls[names[1]], {"cell1": urls[names[2]], "cell2": urls[names[3]]})
    return urls[names[0]], urls[names[2]], urls[names[3]]


def side_by_side(server_url: str, key_file: Path, tmp: Path, env: dict[str, str], rows: int,
                 concurrency: int) -> dict:
    """The same number of rows migrated for Cinder (volumes) and for Nova (instances in two cells)
    on the same Barbican and the same MariaDB server, in the order cinder, nova, nova, cinder (the
    machine is shared and its load drifts: each service gets an early and a late slot)."""
    from tests.helpers.db_seed import seed, seed_instances

    out: dict = {"rows": rows, "concurrency": concurrency, "order": ["cinder", "nova", "nova", "cinder"]}
    cinder_url = create_db(server_url, "cinder_bench_services")
    api, cell1, cell2 = create_nova(server_url, tmp)
    common = ["--fixed-key-file", str(key_file), "--concurrency", str(concurrency), "--format", "json",
              "--no-progress"]
    runs: dict[str, list[dict]] = {"cinder": [], "nova": []}
    for n, service in enumerate(out["order"]):
        if service == "cinder":
            seed(cinder_url, volumes=rows)
            source = ["--db-url", cinder_url]
        else:
            seed_instances(cell1, rows // 2)
            seed_instances(cell2, rows - rows // 2)
            source = ["--nova-api-db-url", api, "--admin-cloud", "sandbox-admin"]  # --acl project lists admins
        print(f"keytools migrate run --service {service}: {rows} rows, concurrency {concurrency}:", flush=True)
        run = run_cli(["--log-format", "json", "--os-cloud", "sandbox-demo", "migrate", "run", *source,
                       "--state-dir", str(tmp / f"st-{service}"), *common], env)
        res = run["result"]
        runs[service].append({"rc": run["rc"], "migrated": res.get("migrated"), "errors": res.get("errors"),
                              "seconds": res.get("seconds"), "rows_per_s": res.get("rate_per_s"),
                              "peak_rss_mib": round(run["peak_rss_mib"], 1)})
        print(f"  {res.get('rate_per_s')} rows/s, rc {run['rc']}", flush=True)
    for service, rs in runs.items():
        rates = [r["rows_per_s"] or 0.0 for r in rs]
        out[service] = {"runs": rs, "rows_per_s": round(sum(rates) / len(rates), 1)}
    return out


def _report_services(results: dict) -> int:
    write_results("migrate-services", results)
    sv = results.get("services", {})
    for service in ("cinder", "nova"):
        if service in sv:
            each = ", ".join(str(r["rows_per_s"]) for r in sv[service]["runs"])
            print(f"{service:8} {sv[service]['rows_per_s']} rows/s mean ({each}; {sv['rows']} rows per run, "
                  f"c={sv['concurrency']})")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--volumes", type=int, default=10_000)
    ap.add_argument("--backups", type=int, default=1_000)
    ap.add_argument("--loop-sample", type=int, default=300, help="rows the serial loop migrates")
    ap.add_argument("--ceiling-per-level", type=int, default=200)
    ap.add_argument("--big", type=int, default=100_000, help="volumes for the RSS run (0: skip)")
    ap.add_argument("--big-seconds", type=float, default=60.0, help="time box of the big run")
    ap.add_argument("--concurrency", type=int, default=0, help="keytools concurrency (0: best ceiling level)")
    ap.add_argument("--services-rows", type=int, default=500,
                    help="rows for the Cinder-vs-Nova side-by-side run (0: skip)")
    ap.add_argument("--only-services", action="store_true",
                    help="only the Cinder-vs-Nova side-by-side run (skip ceilings, loop, full and big runs)")
    args = ap.parse_args()

    from keytools import auth
    from keytools.sandbox import configs, manager
    from keytools.sandbox.state import StateDir
    from tests.helpers.db_seed import seed

    key = os.urandom(32)
    tmp = Path(tempfile.mkdtemp(prefix="bench-migrate-"))
    key_file = tmp / "fixed_key.hex"
    key_file.write_text(key.hex())
    key_file.chmod(0o600)
    state = StateDir(tmp / "sandbox")
    results: dict = {"machine": {"cpus": os.cpu_count()}, "sizes": vars(args)}
    with stopwatch() as up:
        manager.up(state, db="mariadb")
        cfg = state.load()
    results["sandbox_up_s"] = round(up.seconds, 1)
    results["barbican_workers"] = cfg.barbican_workers
    env = {**os.environ, "OS_CLIENT_CONFIG_FILE": str(state.clouds_yaml)}
    os.environ["OS_CLIENT_CONFIG_FILE"] = str(state.clouds_yaml)
    try:
        server_url = configs.db_url(state, cfg, "cinder")
        session = auth.session_from_cloud("sandbox-demo")
        if args.services_rows:
            results["services"] = side_by_side(server_url, key_file, tmp, env, args.services_rows,
                                               args.concurrency or 4)
        if args.only_services:
            return _report_services(results)

        print("Barbican ceiling (POST + ACL):", flush=True)
        levels = [1, 2, 4, 8]
        rates = ceiling(session, key, args.ceiling_per_level, levels)
        best_level = max(rates, key=rates.get)
        results["ceiling"] = {"per_level": {k: round(v, 1) for k, v in rates.items()},
                              "best": round(rates[best_level], 1), "best_concurrency": int(best_level)}

        print(f"Serial cinder-style loop on {args.loop_sample} volumes:", flush=True)
        loop_url = create_db(server_url, "cinder_bench_loop")
        seed(loop_url, volumes=args.loop_sample, snapshots_per_volume=1)
        loop_rate = serial_loop(session, loop_url, key, args.loop_sample)
        results["serial_loop"] = {"rows": args.loop_sample, "rows_per_s": round(loop_rate, 1)}
        print(f"  {loop_rate:.1f} rows/s", flush=True)

        print("Barbican ceiling with the read-back keytools does (POST + ACL + payload GET):", flush=True)
        rb = ceiling(session, key, args.ceiling_per_level, [2, 4, 8], read_back=True)
        results["ceiling_with_read_back"] = {"per_level": {k: round(v, 1) for k, v in rb.items()},
                                             "best": round(max(rb.values()), 1)}

        concurrency = args.concurrency or 4
        print(f"keytools migrate run: {args.volumes} volumes (+{args.volumes} snapshots) + {args.backups} backups, "
              f"concurrency {concurrency}:", flush=True)
        main_url = create_db(server_url, "cinder_bench_main")
        results["seed_s"] = round(timed(lambda: seed(main_url, volumes=args.volumes, snapshots_per_volume=1,
                                                     backups=args.backups)), 1)
        run = run_cli(["--log-format", "json", "--os-cloud", "sandbox-demo", "migrate", "run", "--db-url", main_url,
                       "--fixed-key-file", str(key_file), "--state-dir", str(tmp / "st-main"),
                       "--concurrency", str(concurrency), "--format", "json", "--no-progress"], env)
        res = run["result"]
        rows = args.volumes + args.backups
        kt_rate = res.get("rate_per_s") or 0.0
        results["keytools"] = {"rc": run["rc"], "rows": rows, "migrated": res.get("migrated"),
                               "errors": res.get("errors"), "seconds": res.get("seconds"),
                               "wall_s_with_startup": round(run["elapsed"], 1), "rows_per_s": kt_rate,
                               "concurrency": concurrency, "peak_rss_mib": round(run["peak_rss_mib"], 1),
                               "client_cpu_ms_per_row": round(run["cpu_s"] / rows * 1000, 1)}
        print(f"  {kt_rate} rows/s, rc {run['rc']}, peak RSS {run['peak_rss_mib']:.0f} MiB", flush=True)

        if args.big:
            print(f"Peak RSS with {args.big} volumes (time box {args.big_seconds:.0f} s):", flush=True)
            big_url = create_db(server_url, "cinder_bench_big")
            seed(big_url, volumes=args.big, batch=5000)
            big = run_cli(["--log-format", "json", "--os-cloud", "sandbox-demo", "migrate", "run", "--db-url",
                           big_url, "--fixed-key-file", str(key_file), "--state-dir", str(tmp / "st-big"),
                           "--concurrency", str(concurrency), "--format", "json", "--no-progress"], env,
                          seconds=args.big_seconds)
            results["big"] = {"volumes": args.big, "time_box_s": args.big_seconds, "rc": big["rc"],
                              "migrated_in_box": big["migrated_lines"], "peak_rss_mib": round(big["peak_rss_mib"], 1)}
            print(f"  migrated {big['migrated_lines']} in the box, peak RSS {big['peak_rss_mib']:.0f} MiB", flush=True)
        print("Again after the keytools run (the machine is shared: load drifts):", flush=True)
        again = ceiling(session, key, args.ceiling_per_level, [results["ceiling"]["best_concurrency"]])
        seed(loop_url, volumes=args.loop_sample, snapshots_per_volume=1)
        loop_again = serial_loop(session, loop_url, key, args.loop_sample)
        print(f"  serial loop: {loop_again:.1f} rows/s", flush=True)
        results["after"] = {"ceiling": round(max(again.values()), 1), "serial_loop": round(loop_again, 1)}
    finally:
        manager.down(state)

    ceil = results["ceiling"]["best"]
    kt = results["keytools"]["rows_per_s"]
    loop = results["serial_loop"]["rows_per_s"]
    results["speedup_vs_loop"] = ratio(kt, loop) if loop else None
    results["fraction_of_ceiling"] = ratio(kt, ceil) if ceil else None
    ceil_rb = results["ceiling_with_read_back"]["best"]
    results["fraction_of_ceiling_with_read_back"] = ratio(kt, ceil_rb) if ceil_rb else None
    loop_mean = (loop + results["after"]["serial_loop"]) / 2
    results["speedup_vs_loop_mean"] = ratio(kt, loop_mean) if loop_mean else None
    print()
    print(f"{'measure':44} {'value':>12}")
    print(f"{'Barbican ceiling POST+ACL (best c=' + str(results['ceiling']['best_concurrency']) + ')':44} "
          f"{ceil:>9.1f} /s")
    print(f"{'Barbican ceiling POST+ACL+GET (read-back)':44} {ceil_rb:>9.1f} /s")
    print(f"{'serial cinder-style loop (before / after)':44} {loop:>6.1f} / {results['after']['serial_loop']:.1f} /s")
    print(f"{'keytools migrate run (c=' + str(results['keytools']['concurrency']) + ')':44} {kt:>9.1f} /s")
    print(f"{'speed-up vs loop':44} {results['speedup_vs_loop']:>10}x")
    print(f"{'fraction of Barbican ceiling':44} {results['fraction_of_ceiling']:>11}")
    print(f"{'fraction of ceiling incl. read-back':44} {results['fraction_of_ceiling_with_read_back']:>11}")
    print(f"{'client CPU per row (keytools process)':44} {results['keytools']['client_cpu_ms_per_row']:>8} ms")
    print(f"{'peak RSS, ' + str(args.volumes + args.backups) + ' rows':44} {results['keytools']['peak_rss_mib']:>8} MiB")
    if "big" in results:
        print(f"{'peak RSS, ' + str(args.big) + ' rows (time-boxed)':44} {results['big']['peak_rss_mib']:>8} MiB")
    print(f"wrote {write_results('migrate', results)}")
    return 0 if results["keytools"]["rc"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
