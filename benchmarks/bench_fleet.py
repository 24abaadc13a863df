#!/usr/bin/env python3
"""The keytools.openstack collection on a real fleet: 5 and 20 network namespaces on this machine,
each with its own sshd and config tree, driven by ansible-core over SSH (tests/helpers/netns_fleet).

For each size: a bare ``ansible nodes -m ansible.builtin.stat`` (Ansible's own cost per host: the
baseline), the fleet audit playbook (every node audits itself, trees collected, one SARIF/JUnit
report) and the fixed_key retirement playbook (inventory gate, fixed_key_info, the gate, batches of
1, 10 %, 25 %, post-audit) on fresh trees. Wall time, best of ROUNDS; per-host overhead =
(playbook - bare stat) / hosts. ControlPersist is warm for every measurement (one stat first).

Writes bench-results/fleet.json. Needs root, ip, unshare and /usr/sbin/sshd.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.fleet.fleet_helpers import recap, start_fleet  # noqa: E402
from tests.helpers.netns_fleet import missing_tools  # noqa: E402
from timing import ratio, timed, write_results  # noqa: E402

SIZES = (5, 20)
ROUNDS = 2
IGNORE = "['cinder','nova','glance']"


def measure(hosts: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="kt-bench-fleet-") as tmp:
        return _measure(Path(tmp), hosts)


def _measure(tmp: Path, hosts: int) -> dict[str, float]:
    fleet, trees = start_fleet(tmp, hosts, keytools_ignore_services=IGNORE)
    try:
        def ok(run):  # noqa: ANN001, ANN202
            if run.returncode != 0:
                raise RuntimeError(run.stdout[-2000:] + run.stderr[-1000:])
            return run

        def stat() -> None:
            ok(fleet.ansible("nodes", "-m", "ansible.builtin.stat", "-a", "path=/", tool="ansible"))

        def audit() -> None:
            ok(fleet.ansible("keytools.openstack.fleet_audit", "-e", f"keytools_report_dir={fleet.base}"))

        def retire() -> None:
            run = ok(fleet.ansible("keytools.openstack.fixed_key_retire"))
            if sum(c["changed"] for c in recap(run.stdout).values()) != hosts:
                raise RuntimeError("not every node was retired")

        stat()  # warm: ControlPersist masters up
        t_stat = min(timed(stat) for _ in range(ROUNDS))
        t_audit = min(timed(audit) for _ in range(ROUNDS))
        t_retire = []
        for _ in range(ROUNDS):
            for h in fleet.hosts:
                trees.populate(h.name, h.root)
            t_retire.append(timed(retire))
        return {"stat_s": round(t_stat, 2), "audit_s": round(t_audit, 2), "retire_s": round(min(t_retire), 2)}
    finally:
        fleet.stop()


def main() -> None:
    if missing_tools():
        print(f"bench_fleet: skipped, a netns fleet needs {', '.join(missing_tools())}")
        return
    results = {}
    for n in SIZES:
        r = measure(n)
        r["audit_per_host_overhead_s"] = round((r["audit_s"] - r["stat_s"]) / n, 3)
        r["retire_per_host_overhead_s"] = round((r["retire_s"] - r["stat_s"]) / n, 3)
        r["audit_over_stat"] = ratio(r["audit_s"], r["stat_s"])
        r["retire_over_stat"] = ratio(r["retire_s"], r["stat_s"])
        results[str(n)] = r
    small, big = results[str(SIZES[0])], results[str(SIZES[-1])]
    span = SIZES[-1] - SIZES[0]
    marginal = {k: round((big[k] - small[k]) / span, 3) for k in ("stat_s", "audit_s", "retire_s")}
    doc = {"hosts": list(SIZES), "rounds": ROUNDS, "results": results, "marginal_s_per_extra_host": marginal}
    print(f"{'hosts':>5} {'bare stat':>10} {'audit':>8} {'retire':>8} {'audit-stat/host':>16} {'retire-stat/host':>17}")
    for n in SIZES:
        r = results[str(n)]
        print(f"{n:>5} {r['stat_s']:>9.2f}s {r['audit_s']:>7.2f}s {r['retire_s']:>7.2f}s "
              f"{r['audit_per_host_overhead_s']:>15.3f}s {r['retire_per_host_overhead_s']:>16.3f}s")
    print(f"marginal seconds per extra host ({SIZES[0]}->{SIZES[-1]}): stat {marginal['stat_s']}, "
          f"audit {marginal['audit_s']}, retire {marginal['retire_s']}")
    write_results("fleet", doc)


if __name__ == "__main__":
    main()
