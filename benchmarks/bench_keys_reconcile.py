"""keys reconcile of 100,000 secrets and 100,000 references on MariaDB, next to listing secrets
through the Barbican API project by project.

A private sandbox on MariaDB (Barbican's schema made by Barbican itself). Secrets are inserted
into Barbican's own tables (the API at ~45 ms a POST would take over an hour for 100,000), spread
over ``--projects`` projects; each secret is referenced by one Cinder volume (schema from
cinder-manage). keytools reconcile runs as a real process (``/usr/bin/time``: wall, peak RSS).
The baseline is what an operator without database access does: list every project's secrets
through the API (``GET /v1/secrets?limit=100&offset=...``, one project-scoped token each). It is
measured on ``--api-projects`` real Keystone projects holding ``--api-per-project`` secrets each
and extrapolated linearly to the full count (stated as such in the results).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import uuid
from collections.abc import Iterable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa  # noqa: E402

from benchmarks.timing import print_values, process_usage, stopwatch, write_results  # noqa: E402


def seed_barbican(url: str, projects: list[str], n: int) -> list[tuple[str, str]]:
    """``n`` secrets spread over ``projects`` (Keystone ids), in Barbican's tables: (id, project)."""
    eng = sa.create_engine(url)
    ids = [str(uuid.uuid4()) for _ in range(n)]
    now = dt.datetime.utcnow() - dt.timedelta(days=60)
    with eng.begin() as conn:
        meta = sa.MetaData()
        s, p = (sa.Table(t, meta, autoload_with=conn) for t in ("secrets", "projects"))
        internal = {}
        for ext in projects:
            row = conn.execute(sa.select(p.c.id).where(p.c.external_id == ext)).first()
            if row is None:
                pid = str(uuid.uuid4())
                conn.execute(sa.insert(p).values(id=pid, external_id=ext, created_at=now, updated_at=now,
                                                 deleted=False, status="ACTIVE"))
                internal[ext] = pid
            else:
                internal[ext] = row.id
        insert_batched(conn, s, ({"id": sid, "name": None, "secret_type": "symmetric", "algorithm": "aes",
                                  "bit_length": 256, "project_id": internal[projects[i % len(projects)]],
                                  "creator_id": "u-bench", "created_at": now, "updated_at": now, "deleted": False,
                                  "status": "ACTIVE"} for i, sid in enumerate(ids)))
    eng.dispose()
    return [(sid, projects[i % len(projects)]) for i, sid in enumerate(ids)]


def insert_batched(conn: sa.Connection, table: sa.Table, rows: Iterable[dict], size: int = 5000) -> None:
    batch: list[dict] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            conn.execute(sa.insert(table), batch)
            batch.clear()
    if batch:
        conn.execute(sa.insert(table), batch)


def seed_cinder(url: str, keys: list[tuple[str, str]]) -> None:
    """One volume per (key, project), owned by the secrets' creator in the secret's project."""
    eng = sa.create_engine(url)
    with eng.begin() as conn:
        from tests.helpers.db_seed import _ensure_volume_type

        meta = sa.MetaData()
        v = sa.Table("volumes", meta, autoload_with=conn)
        type_id = _ensure_volume_type(conn, meta)
        insert_batched(conn, v, ({"id": str(uuid.uuid4()), "user_id": "u-bench", "project_id": project,
                                  "volume_type_id": type_id,
                                  "host": "ctl@lvm#lvm", "encryption_key_id": k, "deleted": False, "size": 1,
                                  "status": "available"} for k, project in keys))
    eng.dispose()


def api_listing(sandbox_keystone: str, admin, project_ids: list[str]) -> tuple[float, int]:
    """List every secret of each project through the API as admin scoped to it: (seconds, count)."""
    from keystoneauth1 import session as ks_session
    from keystoneauth1.identity import v3

    count = 0
    with stopwatch() as sw:
        for pid in project_ids:
            s = ks_session.Session(auth=v3.Token(auth_url=sandbox_keystone, token=admin.get_token(), project_id=pid))
            base = s.get_endpoint(service_type="key-manager", interface="public").rstrip("/")
            offset = 0
            while True:
                page = s.get(f"{base}/v1/secrets?limit=100&offset={offset}").json()
                got = len(page.get("secrets", []))
                count += got
                offset += got
                if got < 100:
                    break
    return sw.seconds, count


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--secrets", type=int, default=100_000)
    ap.add_argument("--projects", type=int, default=100)
    ap.add_argument("--api-projects", type=int, default=2)
    ap.add_argument("--api-per-project", type=int, default=1000)
    args = ap.parse_args()

    from keystoneclient.v3 import client as ks_client

    from keytools import auth
    from keytools.cinder_db import sync_schema
    from keytools.sandbox import configs, manager
    from keytools.sandbox.state import StateDir

    tmp = Path(tempfile.mkdtemp(prefix="bench-keys-"))
    state = StateDir(tmp / "sandbox")
    results: dict = {"machine": {"cpus": os.cpu_count()}, "sizes": vars(args)}
    manager.up(state, db="mariadb")
    try:
        cfg = state.load()
        os.environ["OS_CLIENT_CONFIG_FILE"] = str(state.clouds_yaml)
        admin = auth.session_from_cloud("sandbox-admin")
        keystone = ks_client.Client(session=admin, interface="public")
        role = next(r for r in keystone.roles.list(name="admin") if r.name == "admin")
        real = []
        for i in range(args.api_projects):
            p = keystone.projects.create(name=f"bench-keys-{i}-{uuid.uuid4().hex[:4]}", domain="default")
            keystone.roles.grant(role, user=admin.get_user_id(), project=p)
            real.append(p.id)
        barbican_url = configs.db_url(state, cfg, "barbican")
        cinder_url = configs.db_url(state, cfg, "cinder")
        sync_schema(cinder_url)
        with stopwatch() as seeding:
            api_ids = seed_barbican(barbican_url, real, args.api_projects * args.api_per_project)
            fake = [f"p-bench-{i}" for i in range(args.projects - args.api_projects)]
            other = seed_barbican(barbican_url, fake, args.secrets - len(api_ids))
            seed_cinder(cinder_url, api_ids + other)
        results["seed_s"] = round(seeding.seconds, 1)
        argv = [sys.executable, "-m", "keytools", "keys", "reconcile", "--barbican-db-url", barbican_url,
                "--db-url", cinder_url, "--ignore-service", "nova,glance,swift", "-f", "json"]
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
        wall, rss, cpu = process_usage(argv, env)
        results["reconcile"] = {"secrets": args.secrets, "references": args.secrets, "wall_s": wall,
                                "peak_rss_mib": round(rss / 1024, 1), "cpu_s": round(cpu, 1)}
        seconds, listed = api_listing(configs.keystone_url(cfg), admin, real)
        per_secret = seconds / max(listed, 1)
        results["api_listing"] = {"listed": listed, "projects": len(real), "wall_s": round(seconds, 2),
                                  "extrapolated_to_secrets": args.secrets,
                                  "extrapolated_wall_s": round(per_secret * args.secrets, 1),
                                  "note": "measured on the real projects, extrapolated linearly; it lists "
                                          "only and still has to be compared with every service"}
        print_values({"seed (s)": results["seed_s"], "reconcile wall (s)": wall,
                      "reconcile peak RSS (MiB)": results["reconcile"]["peak_rss_mib"],
                      f"API listing of {listed} secrets (s)": round(seconds, 2),
                      f"API listing extrapolated to {args.secrets} (s)": results["api_listing"]["extrapolated_wall_s"]})
        write_results("keys_reconcile", results)
    finally:
        manager.down(state)
    return 0


if __name__ == "__main__":
    sys.exit(main())
