#!/usr/bin/env python3
"""keytools audit vs the documented manual check (a shell loop of ``crudini --get`` per option).

A generated puppet-generated tree of 5,000 files (500 controllers x 7 files + 1,500 computes),
some nodes with problems. keytools audit runs as a real subprocess (Python start-up included)
over the whole tree; the crudini loop asks for every option the rules read, one ``crudini --get``
per option and file, as an operator following the documentation would. The loop needs about
1 s per file, so it runs on a sample of files (every service represented) and is extrapolated
per file to 5,000; the table says so.

Writes bench-results/config_checks.json. Targets: >= 100x faster, >= 20,000 files/min.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.config_checks.cc_treegen import NodeSpec, build  # noqa: E402
from timing import best_of, ratio, stopwatch, timed, write_results  # noqa: E402

CONTROLLERS, COMPUTES = 500, 1500  # 500 * 7 + 1500 * 1 = 5,000 files
SAMPLE_PER_SERVICE = 4
VENV_BIN = Path(sys.executable).parent

KM = ["key_manager fixed_key", "keymgr fixed_key", "key_manager backend", "key_manager api_class",
      "keymgr api_class", "keymgr encryption_api_url", "keymgr encryption_auth_url", "barbican verify_ssl",
      "barbican barbican_endpoint", "barbican auth_endpoint", "barbican barbican_endpoint_type",
      "keystone_authtoken www_authenticate_uri", "keystone_authtoken auth_url"]
# options the rules read, per file kind (what a manual audit with crudini must ask for)
CHECKED = {
    "cinder.conf": KM,
    "nova.conf": KM + ["glance verify_glance_signatures", "libvirt images_type", "DEFAULT compute_driver"],
    "glance-api.conf": KM,
    "proxy-server.conf": ["pipeline:main pipeline", "filter:kms_keymaster use", "filter:kms_keymaster "
                          "encryption_root_secret", "filter:encryption use", "filter:encryption disable_encryption",
                          "filter:proxy-logging use"],
    "keymaster.conf": ["keymaster encryption_root_secret", "kms_keymaster encryption_root_secret"],
    "barbican.conf": ["simple_crypto_plugin kek", "crypto enabled_crypto_plugins",
                      "secretstore enabled_secretstore_plugins", "secretstore enable_multiple_secret_stores"],
}
PROBLEM_SETS = [set(), set(), set(), {"fixed_key"}, {"verify_ssl_off"}, {"kek_sample"}, {"swift_bad_order"}]


def make_tree(base: Path) -> list[Path]:
    rnd = random.Random(7)
    nodes = [NodeSpec(f"ctl-{i}", "controller", set(rnd.choice(PROBLEM_SETS))) for i in range(CONTROLLERS)]
    nodes += [NodeSpec(f"cmp-{i}", "compute", set(rnd.choice(PROBLEM_SETS[:4]))) for i in range(COMPUTES)]
    return build(base, nodes).files


def time_keytools(base: Path, runs: int = 3) -> tuple[float, int]:
    last: dict[str, subprocess.CompletedProcess] = {}

    def audit() -> None:
        last["proc"] = subprocess.run([str(VENV_BIN / "keytools"), "audit", "--per-node", str(base), "--format",
                                       "json"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)

    best = best_of(runs, audit)
    proc = last["proc"]
    return best, proc.returncode if json.loads(proc.stdout)["files_checked"] else -1


def time_crudini(sample: list[Path]) -> tuple[float, int]:
    lines = ["set -u", f'CRUDINI="{VENV_BIN / "crudini"}"']
    calls = 0
    for f in sample:
        for opt in CHECKED[f.name]:
            section, option = opt.split(" ", 1)
            lines.append(f'"$CRUDINI" --get "{f}" "{section}" "{option}" >/dev/null 2>&1 || true')
            calls += 1
    with tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False) as script:
        script.write("\n".join(lines) + "\n")
    try:
        return timed(lambda: subprocess.run(["bash", script.name], check=True)), calls
    finally:
        os.unlink(script.name)


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="kt-bench-cc-"))
    try:
        with stopwatch() as generation:
            files = make_tree(tmp)
        gen = generation.seconds
        assert len(files) == 5000, len(files)
        kt_s, kt_code = time_keytools(tmp)
        by_kind: dict[str, list[Path]] = {}
        for f in files:
            by_kind.setdefault(f.name, []).append(f)
        rnd = random.Random(1)
        sample = [f for kind in sorted(by_kind) for f in rnd.sample(by_kind[kind], SAMPLE_PER_SERVICE)]
        cr_s, calls = time_crudini(sample)
        # extrapolate per file kind, weighted by how many files of each kind the tree holds
        per_call = cr_s / calls
        cr_full = sum(len(by_kind[k]) * len(CHECKED[k]) for k in by_kind) * per_call
        result = {
            "files": len(files),
            "nodes": CONTROLLERS + COMPUTES,
            "tree_generation_s": round(gen, 2),
            "keytools_audit_s": round(kt_s, 3),
            "keytools_files_per_min": round(len(files) / kt_s * 60),
            "keytools_exit_code": kt_code,
            "crudini_sample_files": len(sample),
            "crudini_sample_calls": calls,
            "crudini_sample_s": round(cr_s, 2),
            "crudini_s_per_call": round(per_call, 4),
            "crudini_full_tree_s_extrapolated": round(cr_full, 1),
            "crudini_files_per_min_extrapolated": round(len(files) / cr_full * 60),
            "speedup": ratio(cr_full, kt_s, 1),
            "targets": {"speedup_min": 100, "files_per_min_min": 20000},
        }
        result["targets_met"] = result["speedup"] >= 100 and result["keytools_files_per_min"] >= 20000
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rows = [("keytools audit (subprocess, whole tree)", f"{result['keytools_audit_s']:.2f} s",
             f"{result['keytools_files_per_min']:,} files/min"),
            (f"crudini --get loop ({calls} calls on {len(sample)} files, extrapolated)",
             f"{result['crudini_full_tree_s_extrapolated']:.0f} s",
             f"{result['crudini_files_per_min_extrapolated']:,} files/min")]
    print(f"config_checks: {result['files']} files on {result['nodes']} nodes")
    for name, t, rate in rows:
        print(f"  {name:<62} {t:>10} {rate:>20}")
    print(f"  speedup {result['speedup']}x (target >= 100x); targets met: {result['targets_met']}")
    write_results("config_checks", result)


if __name__ == "__main__":
    main()
