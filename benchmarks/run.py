#!/usr/bin/env python3
"""`make bench`: run every benchmarks/bench_*.py in turn; each prints its table and writes
bench-results/<name>.json. A failing benchmark is reported and the others still run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    failed = []
    for bench in sorted(HERE.glob("bench_*.py")):
        print(f"\n===== {bench.stem} =====", flush=True)
        if subprocess.run([sys.executable, str(bench), *sys.argv[1:]], cwd=HERE.parent).returncode:
            failed.append(bench.stem)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
