#!/usr/bin/env python3
"""Barbican PKCS#11 (SoftHSM2): moving secrets, and the API on the HSM store next to simple_crypto.

- ``keytools barbican store migrate``'s library (``Mover.run``): secrets moved per second from
  simple_crypto to p11_crypto, on SQLite and (with MariaDB installed) on MariaDB, each an
  ``up --with hsm`` sandbox; the secrets are stored through the API on the software store first
- API store + retrieve of one secret, in the same run: on the software store and on the pkcs11
  store, each the project's preferred store (so both pay the same preference lookup), alternating
  software, pkcs11, software, pkcs11, best of 3 rounds of N each time

Writes bench-results/barbican_hsm.json. ``--no-mariadb`` skips MariaDB; ``--secrets N``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from keytools.barbican import store_migrate  # noqa: E402
from keytools.sandbox import manager  # noqa: E402
from keytools.sandbox.state import StateDir  # noqa: E402
from tests.barbican_backup import store_helpers as h  # noqa: E402
from tests.conftest import Sandbox  # noqa: E402
from timing import stopwatch, write_results  # noqa: E402

ROUNDS = 3


def api_round(bc, base: str, n: int) -> float:
    """Seconds per store+retrieve of one secret (best of ROUNDS rounds of n)."""
    best = None
    for _ in range(ROUNDS):
        with stopwatch() as sw:
            for i in range(n):
                ref = bc.secrets.create(name=f"bench-{i}", payload=uuid.uuid4().hex).store()
                bc.secrets.get(ref).payload  # noqa: B018 - the retrieve being timed
        best = sw.seconds if best is None else min(best, sw.seconds)
    return best / n


def one_db(db: str, secrets: int, api_n: int) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-hsm-{db}-"))
    state = StateDir(tmp / "sandbox")
    try:
        manager.up(state, db=db, with_services=["hsm"])
        sb = Sandbox(state)
        os.environ["SOFTHSM2_CONF"] = str(state.path("hsm", "softhsm2.conf"))
        per = max(1, secrets // len(h.PROJECTS))
        with stopwatch() as seed:
            seeded = h.seed(sb, per_project=per, extras=False)
        n = len(seeded.all_ids())
        mover = store_migrate.Mover(str(h.conf_path(sb)))
        with stopwatch() as move:
            report = mover.run()
        assert report.moved == n and report.ok and report.verified == n, report.as_dict()
        out = {"secrets": n, "seed_through_api_s": round(seed.seconds, 2), "move_s": round(move.seconds, 2),
               "moved_per_s": round(n / move.seconds, 1)}
        bc = h.client(sb, "demo")
        base = sb.url("barbican", "/v1/secrets/")
        timings: dict[str, float] = {}
        for store in ("software", "pkcs11", "software", "pkcs11"):  # both preferred explicitly (the
            h.prefer_store(sb, "demo", store, True)  # same lookup per request), twice, best kept
            try:
                timings[store] = min(timings.get(store, float("inf")), api_round(bc, base, api_n))
            finally:
                h.prefer_store(sb, "demo", store, False)
        simple, p11 = timings["software"], timings["pkcs11"]
        out.update({"api_store_retrieve_ms_simple_crypto": round(simple * 1000, 1),
                    "api_store_retrieve_ms_p11_crypto": round(p11 * 1000, 1),
                    "p11_over_simple": round(p11 / simple, 2)})
        return out
    finally:
        manager.down(state)
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--secrets", type=int, default=150)
    parser.add_argument("--api", type=int, default=20, help="store+retrieve per round")
    parser.add_argument("--no-mariadb", action="store_true")
    args = parser.parse_args()
    result = {"sqlite": one_db("sqlite", args.secrets, args.api)}
    if not args.no_mariadb and (shutil.which("mariadbd") or os.path.exists("/usr/sbin/mariadbd")):
        result["mariadb"] = one_db("mariadb", args.secrets, args.api)
    write_results("barbican_hsm", result)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
