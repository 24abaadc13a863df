"""The benchmarks' one timing and results module.

Every bench_*.py measures keytools and its baseline side by side in one run with these helpers,
so the figures in benchmarks/README.md are taken the same way: wall time by ``time.perf_counter``
(never asserted on: benchmarks report, tests do not time), best of N rounds against machine
noise, ratios as baseline over keytools, and one JSON file per benchmark in bench-results/.
"""

from __future__ import annotations

import json
import resource
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "bench-results"


def timed(fn: Callable[[], object]) -> float:
    """Wall seconds of one call of ``fn``."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@dataclass
class Stopwatch:
    seconds: float = 0.0


@contextmanager
def stopwatch() -> Iterator[Stopwatch]:
    """``with stopwatch() as sw: ...`` then ``sw.seconds``: wall seconds of a block."""
    watch = Stopwatch()
    start = time.perf_counter()
    try:
        yield watch
    finally:
        watch.seconds = time.perf_counter() - start


def best_of(runs: int, fn: Callable[[], object]) -> float:
    """The fastest of ``runs`` calls of ``fn`` (wall seconds): the least disturbed by other load."""
    return min(timed(fn) for _ in range(runs))


def call_usage(fn: Callable[[], object]) -> tuple[float, None, float]:
    """Wall and CPU seconds (all threads) of one call in this process, as (wall, None, cpu) to
    line up with ``process_usage`` (no peak RSS for an in-process call)."""

    def cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    start, start_cpu = time.perf_counter(), cpu()
    fn()
    return time.perf_counter() - start, None, cpu() - start_cpu


def process_usage(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, int, float]:
    """Wall seconds, peak RSS (KiB) and CPU seconds (user + system) of one child, from /usr/bin/time."""
    result = subprocess.run(["/usr/bin/time", "-f", "%e %M %U %S", *argv], capture_output=True, text=True,
                            env=env)
    if result.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed: {result.stderr.strip()[-400:]}")
    wall, rss, user, system = result.stderr.strip().splitlines()[-1].split()
    return float(wall), int(rss), float(user) + float(system)


def ratio(numerator: float, denominator: float, digits: int = 2) -> float:
    """``numerator / denominator`` rounded; for times pass (baseline, keytools) so > 1 means
    keytools is faster, for rates (keytools, baseline). A denominator under 1 ms counts as 1 ms."""
    return round(numerator / max(denominator, 1e-3), digits)


def write_results(name: str, doc: dict, path: str | Path | None = None) -> Path:
    """Write ``doc`` as bench-results/<name>.json (or ``path``); returns where."""
    out = Path(path) if path else RESULTS_DIR / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    return out


def print_values(values: dict[str, object], width: int | None = None, value_width: int = 0,
                 digits: int | None = None, sep: str = " ") -> None:
    """A two-column table: one ``name value`` line per entry, names padded to ``width`` (default:
    the longest), values right-aligned to ``value_width``; floats with ``digits`` decimals."""
    width = width or max(map(len, values), default=0)
    for name, value in values.items():
        shown = f"{value:.{digits}f}" if digits is not None and isinstance(value, float) else str(value)
        print(f"{name:<{width}}{sep}{shown:>{value_width}}")
