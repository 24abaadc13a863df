#!/usr/bin/env python3
"""``keytools migrate rekey`` beside bare cryptsetup on the same headers, in the same run.

For each PBKDF (cryptsetup's default, argon2id on LUKS2; and the tests' fast pbkdf2 with 1000
iterations) one LUKS2 header is formatted with the hex of fixed_key and copied 2N times: N copies
are re-keyed by bare ``cryptsetup luksChangeKey`` (the single step cinder's ``_rekey_volume`` uses),
N by ``keytools migrate rekey`` (a subprocess, start-up included, with Barbican and a Cinder
database from cinder-manage): seconds per volume for each. Then ``--reencrypt-data`` on a larger
LUKS2 image against bare ``cryptsetup reencrypt --force-offline-reencrypt`` on a copy: MiB/s.

Uses the sandbox in ``--state-dir`` (or brings one up in a temp dir); prints a table, writes
bench-results/rekey.json.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from timing import print_values, ratio, stopwatch, write_results

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

FAST = ["--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"]
MIB = 1024 * 1024


def cryptsetup(*args: str, stdin: bytes = b"", extra: bytes | None = None) -> None:
    fds: tuple[int, ...] = ()
    argv = ["cryptsetup", *args]
    if extra is not None:
        r, w = os.pipe()
        os.write(w, extra)
        os.close(w)
        fds = (r,)
        argv = [a.replace("{fd}", str(r)) for a in argv]
    try:
        subprocess.run(argv, input=stdin, check=True, capture_output=True, pass_fds=fds)
    finally:
        for fd in fds:
            os.close(fd)


def make_headers(work: Path, key: bytes, pbkdf: list[str], n: int, size: int) -> list[Path]:
    """One LUKS2 header made with ``pbkdf``, copied ``n`` times (the same header for everyone)."""
    first = work / "master.img"
    with open(first, "wb") as handle:
        handle.truncate(size)
    cryptsetup("luksFormat", "-q", "--type", "luks2", *pbkdf, "--key-file", "-", str(first), stdin=key.hex().encode())
    copies = []
    for i in range(n):
        dest = work / f"copy-{i}.img"
        shutil.copyfile(first, dest)
        copies.append(dest)
    first.unlink()
    return copies


def keytools(state: str, *args: str) -> float:
    """Run ``migrate rekey``; returns its own ``seconds`` (the run without interpreter start-up)."""
    env = {**os.environ, "OS_CLIENT_CONFIG_FILE": str(Path(state) / "clouds.yaml")}
    proc = subprocess.run([sys.executable, "-m", "keytools", "--os-cloud", "sandbox-demo", "migrate", "rekey",
                           *args, "--format", "json"], check=True, capture_output=True, env=env)
    doc = json.loads(proc.stdout)
    assert all(v["status"] == "rekeyed" for v in doc["volumes"]), doc
    return doc["seconds"]


def rekey_round(work: Path, state: str, key: bytes, key_file: Path, pbkdf: list[str], n: int) -> dict:
    from keytools.cinder_db import sync_schema
    from tests.helpers.db_seed import seed

    work.mkdir()
    heads = make_headers(work, key, pbkdf, 2 * n, 18 * MIB)
    bare, ours = heads[:n], heads[n:]
    with stopwatch() as sw_bare:
        for path in bare:
            cryptsetup("luksChangeKey", "-q", *pbkdf, "--key-file", "-", str(path), "/dev/fd/{fd}",
                       stdin=key.hex().encode(), extra=secrets.token_bytes(32).hex().encode())
    db = f"sqlite:///{work / 'cinder.sqlite'}"
    sync_schema(db)
    vols = seed(db, volumes=n).volumes
    devs = work / "devs"
    devs.mkdir()
    for vid, path in zip(vols, ours):
        path.rename(devs / f"volume-{vid}")
    with stopwatch() as sw_ours:
        inner = keytools(state, "--db-url", db, "--fixed-key-file", str(key_file), "--state-dir", str(work / "st"),
                         "--luks", str(devs / "volume-{id}"), "--concurrency", "1", *pbkdf)
    return {"volumes": n, "luksChangeKey_s_per_volume": round(sw_bare.seconds / n, 3),
            "keytools_s_per_volume": round(sw_ours.seconds / n, 3),
            "keytools_in_run_s_per_volume": round(inner / n, 3),
            "ratio_bare_over_keytools": ratio(sw_bare.seconds, sw_ours.seconds),
            "ratio_bare_over_keytools_in_run": ratio(sw_bare.seconds, inner)}


def reencrypt_round(work: Path, state: str, key: bytes, key_file: Path, mib: int) -> dict:
    from keytools.cinder_db import sync_schema
    from tests.helpers.db_seed import seed

    work.mkdir()
    size = (16 + mib) * MIB  # 16 MiB of LUKS2 header, then the data
    bare, ours = make_headers(work, key, FAST, 2, size)
    with stopwatch() as sw_bare:
        cryptsetup("reencrypt", "-q", "--force-offline-reencrypt", *FAST, "--key-file", "-", str(bare),
                   stdin=key.hex().encode())
    db = f"sqlite:///{work / 'cinder.sqlite'}"
    sync_schema(db)
    (vid,) = seed(db, volumes=1).volumes
    devs = work / "devs"
    devs.mkdir()
    ours.rename(devs / f"volume-{vid}")
    with stopwatch() as sw_ours:
        inner = keytools(state, "--db-url", db, "--fixed-key-file", str(key_file), "--state-dir", str(work / "st"),
                         "--luks", str(devs / "volume-{id}"), "--reencrypt-data", *FAST)
    return {"data_mib": mib, "cryptsetup_reencrypt_s": round(sw_bare.seconds, 2),
            "cryptsetup_reencrypt_mib_s": round(mib / sw_bare.seconds, 1),
            "keytools_rekey_reencrypt_s": round(sw_ours.seconds, 2),
            "keytools_rekey_reencrypt_in_run_s": round(inner, 2),
            "keytools_rekey_reencrypt_mib_s": round(mib / sw_ours.seconds, 1),
            "keytools_rekey_reencrypt_in_run_mib_s": round(mib / inner, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--state-dir", help="a running sandbox (default: bring one up in a temp dir)")
    ap.add_argument("--volumes", type=int, default=8, help="volumes per side with the fast PBKDF")
    ap.add_argument("--default-volumes", type=int, default=3, help="volumes per side with cryptsetup's default")
    ap.add_argument("--reencrypt-mib", type=int, default=256)
    args = ap.parse_args()
    from keytools.sandbox import manager
    from keytools.sandbox.state import StateDir

    tmp = Path(tempfile.mkdtemp(prefix="bench-rekey-"))
    state = args.state_dir
    try:
        if state is None:
            state = str(tmp / "sandbox")
            manager.up(StateDir(Path(state)))
        key = secrets.token_bytes(32)
        key_file = tmp / "fixed_key.hex"
        key_file.write_text(key.hex() + "\n")
        key_file.chmod(0o600)
        results = {"load_before": os.getloadavg()[0],
                   "fast_pbkdf2_1000": rekey_round(tmp / "fast", state, key, key_file, FAST, args.volumes),
                   "default_pbkdf": rekey_round(tmp / "default", state, key, key_file, [], args.default_volumes),
                   "reencrypt": reencrypt_round(tmp / "reencrypt", state, key, key_file, args.reencrypt_mib),
                   "load_after": os.getloadavg()[0]}
    finally:
        if args.state_dir is None and (tmp / "sandbox").exists():
            manager.down(StateDir(tmp / "sandbox"))
        shutil.rmtree(tmp, ignore_errors=True)
    flat = {f"{group}.{k}": v for group, doc in results.items() if isinstance(doc, dict) for k, v in doc.items()}
    flat.update({k: v for k, v in results.items() if not isinstance(v, dict)})
    print_values(flat)
    print(f"written to {write_results('rekey', results)}")


if __name__ == "__main__":
    main()
