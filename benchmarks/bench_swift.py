#!/usr/bin/env python3
"""PUT+GET of 1 MiB objects through the same proxy pipeline with Swift's ``keymaster`` (inline
secret) vs keytools' keymaster (the same secret, from Barbican), in one run against the same
one-replica Swift. Target: ours >= 0.98x Swift's throughput, and zero Barbican requests after
start (every Barbican request of our proxy goes through a counting forwarder).

Rounds are interleaved (A B, B A, ...) so machine noise hits both sides alike.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "swift"))

from swift_helpers import ProxyProcess, our_keymaster, swift_keymaster  # noqa: E402

from keytools.keymanager import barbican_client  # noqa: E402
from keytools.sandbox import bootstrap, configs, manager  # noqa: E402
from keytools.sandbox.state import StateDir  # noqa: E402
from tests.helpers.fault_proxy import FaultProxy  # noqa: E402
from timing import ratio, stopwatch, write_results  # noqa: E402

MIB = 1024 * 1024


def put_get(session: requests.Session, url: str, names: list[str], body: bytes) -> float:
    """Seconds for PUT then GET of every name (content checked)."""
    with stopwatch() as watch:
        for name in names:
            resp = session.put(f"{url}/{name}", data=body)
            resp.raise_for_status()
            got = session.get(f"{url}/{name}")
            got.raise_for_status()
            if got.content != body:
                raise SystemExit(f"content mismatch for {name}")
    return watch.seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--state-dir", help="reuse a running sandbox with Swift (default: a fresh one)")
    parser.add_argument("--objects", type=int, default=2, help="objects per proxy per round")
    parser.add_argument("--rounds", type=int, default=40,
                        help="interleaved rounds (short rounds spread machine noise evenly)")
    args = parser.parse_args()

    tmp = tempfile.TemporaryDirectory(prefix="bench-swift-")
    state = StateDir(args.state_dir or Path(tmp.name) / "sandbox")
    own_sandbox = args.state_dir is None
    proxies: list[ProxyProcess] = []
    forwarder = None
    try:
        manager.up(state, with_services=["swift"])
        cfg = state.load()
        key_id = cfg.extra["swift_key_id"]
        admin = bootstrap.admin_session(cfg, project="service")
        secret = barbican_client(admin, endpoint=configs.url(cfg, "barbican")).secrets.get(
            f"{configs.url(cfg, 'barbican')}/v1/secrets/{key_id}").payload
        forwarder = FaultProxy(configs.url(cfg, "barbican"))
        work = Path(tmp.name) / "proxies"
        theirs = ProxyProcess(state, cfg, work, "bench-swift-keymaster", swift_keymaster(secret))
        ours = ProxyProcess(state, cfg, work, "bench-keytools-keymaster",
                            our_keymaster(cfg, forwarder.url, key_id=key_id))
        proxies += [theirs, ours]
        theirs.wait_ready()
        ours.wait_ready()
        barbican_at_start = forwarder.count

        body = os.urandom(MIB)
        sides = {"swift keymaster": theirs, "keytools keymaster": ours}
        sessions = {label: requests.Session() for label in sides}
        for label, proxy in sides.items():  # create the containers, warm up connections and caches
            sessions[label].put(f"{proxy.url}/v1/AUTH_bench/c").raise_for_status()
            put_get(sessions[label], f"{proxy.url}/v1/AUTH_bench/c", [f"warm-{label[:5]}"], body)
        seconds: dict[str, list[float]] = {label: [] for label in sides}
        order = list(sides)
        for rnd in range(args.rounds):
            for label in (order if rnd % 2 == 0 else order[::-1]):
                names = [f"{label[:5]}-{rnd}-{i}" for i in range(args.objects)]
                seconds[label].append(put_get(sessions[label], f"{sides[label].url}/v1/AUTH_bench/c",
                                              names, body))
        barbican_after = forwarder.count

        per_round_mib = 2 * args.objects  # PUT + GET
        results: dict[str, object] = {"object_mib": 1, "objects_per_round": args.objects,
                                      "rounds": args.rounds}
        print(f"{'keymaster':<20} {'MiB/s (PUT+GET)':>16} {'median round s':>15}")
        rates = {}
        for label, times in seconds.items():
            rate = per_round_mib * len(times) / sum(times)
            rates[label] = rate
            print(f"{label:<20} {rate:>16.1f} {statistics.median(times):>15.3f}")
            results[label.replace(" ", "_") + "_mib_s"] = round(rate, 2)
        ours_vs_swift = rates["keytools keymaster"] / rates["swift keymaster"]
        per_round = [t / o for t, o in zip(seconds["swift keymaster"], seconds["keytools keymaster"])]
        results.update({
            "ratio_ours_vs_swift": ratio(rates["keytools keymaster"], rates["swift keymaster"], 3),
            "median_round_ratio": round(statistics.median(per_round), 3),
            "barbican_requests_at_start": barbican_at_start,
            "barbican_requests_during_benchmark": barbican_after - barbican_at_start,
            "target_ratio": 0.98,
        })
        print(f"throughput ratio keytools/swift: {ours_vs_swift:.3f} (median per round {statistics.median(per_round):.3f};"
              f" target >= 0.98)")
        print(f"Barbican requests: {barbican_at_start} at start, "
              f"{barbican_after - barbican_at_start} during {2 * args.rounds * args.objects} object requests")
        write_results("swift", results)
        return 0 if barbican_after == barbican_at_start else 1
    finally:
        for proxy in proxies:
            proxy.stop()
        if forwarder:
            forwarder.close()
        if own_sandbox:
            manager.down(state)
        tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
