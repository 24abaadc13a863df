#!/usr/bin/env python3
"""key-usage and reencrypt rates next to a plain Swift client's download + upload of the same
objects through the same proxy pipeline, in one run against the same one-replica Swift.

N objects of S KiB are written under key A; then, with a proxy config that has A and B (B active):
1. ``keytools swift key-usage`` (raw HEADs + listings): objects/s;
2. a plain client (HTTP GET of every object, then PUT of the bytes into another container, as
   ``swift download`` + ``swift upload`` would do) through the A+B proxy: objects/s and MiB/s;
3. ``keytools swift reencrypt --from-key-id key_id``: objects/s and MiB/s.
reencrypt's overhead = its time / the plain client's time (it also decrypts and re-encrypts every
byte, as the plain client's proxy does, but in one process with no client-side transfer).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "swift"))

from swift_helpers import ProxyProcess, our_keymaster  # noqa: E402

from keytools.keymanager import barbican_client  # noqa: E402
from keytools.sandbox import bootstrap, configs, manager  # noqa: E402
from keytools.sandbox.state import StateDir  # noqa: E402
from timing import ratio, stopwatch, write_results  # noqa: E402

MIB = 1024 * 1024
ACCOUNT = "AUTH_benchrot"


def keytools(*args: str) -> dict:
    with stopwatch() as watch:
        out = subprocess.run([sys.executable, "-m", "keytools", *args, "-f", "json"], capture_output=True,
                             text=True, check=True)
        doc = json.loads(out.stdout)
    doc["_seconds"] = watch.seconds
    return doc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--state-dir", help="reuse a running sandbox with Swift (default: a fresh one)")
    parser.add_argument("--objects", type=int, default=200)
    parser.add_argument("--kib", type=int, default=256, help="object size")
    args = parser.parse_args()
    tmp = tempfile.TemporaryDirectory(prefix="bench-swiftrot-")
    state = StateDir(args.state_dir or Path(tmp.name) / "sandbox")
    own = args.state_dir is None
    proxies: list[ProxyProcess] = []
    try:
        manager.up(state, with_services=["swift"])
        cfg = state.load()
        admin = bootstrap.admin_session(cfg, project="service")
        client = barbican_client(admin, endpoint=configs.url(cfg, "barbican"))
        key_a = cfg.extra["swift_key_id"]
        ref = client.secrets.create(name="bench-rot-b", payload=os.urandom(32), algorithm="aes",
                                    bit_length=256, secret_type="symmetric").store()
        key_b = ref.rstrip("/").rsplit("/", 1)[-1]
        from keystoneclient.v3 import client as ks_client
        swift_user = next(u for u in ks_client.Client(session=admin, interface="public").users.list(name="swift"))
        client.acls.create(entity_ref=ref, users=[swift_user.id], project_access=True).submit()
        work = Path(tmp.name) / "proxies"
        pa = ProxyProcess(state, cfg, work, "bench-rot-a", our_keymaster(cfg, key_id=key_a))
        pab = ProxyProcess(state, cfg, work, "bench-rot-ab", our_keymaster(
            cfg, key_id=key_a, key_id_2=key_b, active_root_secret_id="2"))
        proxies += [pa, pab]
        pa.wait_ready()
        pab.wait_ready()
        s = requests.Session()
        base_a, base_ab = f"{pa.url}/v1/{ACCOUNT}", f"{pab.url}/v1/{ACCOUNT}"
        s.put(f"{base_a}/data").raise_for_status()
        s.put(f"{base_ab}/copy").raise_for_status()
        body_size = args.kib * 1024
        for i in range(args.objects):
            s.put(f"{base_a}/data/o{i:05d}", data=os.urandom(body_size)).raise_for_status()
        total_mib = args.objects * body_size / MIB
        common = ["--proxy-config", str(pab.conf), "--account", ACCOUNT, "--state-dir", str(work / "st")]

        usage = keytools("swift", "key-usage", *common)
        with stopwatch() as watch:
            for i in range(args.objects):
                got = s.get(f"{base_ab}/data/o{i:05d}")
                got.raise_for_status()
                s.put(f"{base_ab}/copy/o{i:05d}", data=got.content).raise_for_status()
        plain = watch.seconds
        reenc = keytools("swift", "reencrypt", *common, "--from-key-id", "key_id")
        after = keytools("swift", "key-usage", *common)
        moved = {k["option"]: k["objects"] for k in after["keys"]}
        if reenc["rewritten"] != args.objects or moved.get("key_id"):
            raise SystemExit(f"reencrypt did not move everything: {reenc} {moved}")
        rows = {
            "key-usage (scan)": (usage["_seconds"], None),
            "plain client GET+PUT": (plain, total_mib),
            "reencrypt": (reenc["_seconds"], total_mib),
        }
        results: dict[str, object] = {"objects": args.objects, "object_kib": args.kib}
        print(f"{'step':<24} {'seconds':>8} {'objects/s':>10} {'MiB/s':>8}")
        for label, (secs, mib) in rows.items():
            rate = args.objects / secs
            mib_s = (mib / secs) if mib else None
            shown = "-" if mib_s is None else f"{mib_s:.1f}"
            print(f"{label:<24} {secs:>8.2f} {rate:>10.1f} {shown:>8}")
            key = label.split(" ")[0].replace("-", "_")
            results[f"{key}_seconds"] = round(secs, 3)
            results[f"{key}_objects_per_s"] = round(rate, 1)
            if mib_s:
                results[f"{key}_mib_per_s"] = round(mib_s, 2)
        overhead = reenc["_seconds"] / plain
        results["reencrypt_time_vs_plain_client"] = ratio(reenc["_seconds"], plain, 3)
        print(f"reencrypt takes {overhead:.2f}x the plain client's download+upload time "
              "(process start and key loading included)")
        write_results("swift_rotation", results)
        return 0
    finally:
        for proxy in proxies:
            proxy.stop()
        if own:
            manager.down(state)
        tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
