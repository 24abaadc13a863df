"""Run the fuzz targets coverage-guided: ``make fuzz`` (FUZZ_TARGET, FUZZ_INPUTS, FUZZ_SECONDS).

    python tests/fuzz/run.py --target NAME|all --inputs N --seconds S --corpus DIR
    python tests/fuzz/run.py --minimise NAME FILE     (writes FILE-min)

Each target runs in its own process under atheris (libFuzzer; keytools' own packages are
instrumented for coverage), starting from its SEEDS and the corpus directory DIR/NAME, which keeps
every input that found new coverage; half of the mutations splice in ``targets.TOKENS``. A breach
of the contract stops that target; its input is minimised (``minimise``) into
tests/fuzz/reproducers/NAME/, which the normal suite replays (tests/fuzz/test_fuzz_targets.py).
Without atheris, hypothesis runs the same fuzz_one with N examples (its example database in
DIR/NAME). Exits 1 if any target found a breach.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
REPRODUCERS = HERE / "reproducers"
INSTRUMENTED = ("keytools", "migrate", "sign", "verify", "swift_middleware", "config_checks")


def _have_atheris() -> bool:
    try:
        import atheris  # noqa: F401
    except ImportError:
        return False
    return True


def _seed_corpus(name: str, corpus: Path) -> None:
    from tests.fuzz import targets

    corpus.mkdir(parents=True, exist_ok=True)
    for seed in targets.load(name).SEEDS:
        (corpus / f"seed-{hashlib.sha1(seed).hexdigest()[:16]}").write_bytes(seed)


def _write_dict(path: Path) -> Path:
    """``targets.TOKENS`` as a libFuzzer dictionary (-dict): mutations splice them in."""
    from tests.fuzz import targets

    lines = ['"' + "".join(chr(b) if 32 <= b < 127 and b not in b'"\\' else f"\\x{b:02x}" for b in token) + '"'
             for token in targets.TOKENS if len(token) <= 64]
    path.write_text("\n".join(lines) + "\n")
    return path


def _child_atheris(name: str, libfuzzer_args: list[str]) -> None:
    """In the child: instrument keytools, import the target, hand control to libFuzzer."""
    import atheris

    with atheris.instrument_imports(include=list(INSTRUMENTED)):
        from tests.fuzz import targets

        module = targets.load(name)
        for package in INSTRUMENTED:  # the CLI imports feature packages lazily: load them now
            __import__(package)
    def mutate(data: bytes, max_size: int, seed: int) -> bytes:
        """Half of the time libFuzzer's own mutation, else splices of ``targets.TOKENS`` (nesting,
        NaN, huge numbers, NUL...): byte flips alone rarely turn a JSON value into a list."""
        rng = random.Random(seed)
        if rng.random() < 0.5:
            return bytes(atheris.Mutate(data, max_size))
        for _ in range(rng.randint(1, 4)):
            at, cut = rng.randint(0, len(data)), rng.randint(0, 16)
            token = rng.choice(targets.TOKENS) if rng.random() < 0.7 else rng.randbytes(rng.randint(1, 8))
            data = data[:at] + token + data[at + cut:]
        return data[:max_size]

    atheris.Setup([sys.argv[0], *libfuzzer_args], module.fuzz_one, custom_mutator=mutate)
    atheris.Fuzz()


def _run_atheris(name: str, inputs: int, seconds: int, corpus: Path) -> tuple[bool, str]:
    """Fuzz one target in a child process; returns (breach found, summary).

    libFuzzer's own -timeout is off: it would share SIGALRM with the harness's bound
    (``contract.bounded``), which turns a hang into an AssertionError, hence a reproducer."""
    _seed_corpus(name, corpus)
    out = REPRODUCERS / name
    out.mkdir(parents=True, exist_ok=True)
    artifacts = corpus.parent / f"{corpus.name}-artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    args = [f"-runs={inputs}", f"-max_total_time={seconds}", "-timeout=0",
            "-rss_limit_mb=3072", f"-artifact_prefix={artifacts}/", "-print_final_stats=1",
            f"-dict={_write_dict(corpus.parent / 'tokens.dict')}", str(corpus)]
    started = time.monotonic()
    proc = subprocess.run([sys.executable, __file__, "--child", name, "--", *args], cwd=REPO,
                          capture_output=True, text=True, errors="replace")
    elapsed = time.monotonic() - started
    log = proc.stdout + proc.stderr
    (corpus.parent / f"{name}.log").write_text(log)
    runs = [line for line in log.splitlines() if line.startswith("stat::number_of_executed_units")]
    count = runs[-1].split(":")[-1].strip() if runs else "?"
    if proc.returncode == 0:
        return False, f"{name}: {count} inputs in {elapsed:.0f} s, no breach"
    crashes = sorted(artifacts.glob("*"), key=lambda p: p.stat().st_mtime)
    if not crashes:
        tail = "\n".join(log.splitlines()[-20:])
        return True, f"{name}: fuzzer exited {proc.returncode} without an artifact:\n{tail}"
    crash = crashes[-1]
    kept = out / f"{crash.name}-min"
    kept.write_bytes(minimise(name, crash.read_bytes()))
    breach = [line for line in log.splitlines() if "AssertionError" in line or "Error:" in line][-3:]
    return True, f"{name}: breach after {count} inputs ({elapsed:.0f} s), reproducer {kept}\n" + "\n".join(breach)


def _breach(name: str, data: bytes) -> str | None:
    """What breach ``data`` causes (its kind, without the input-dependent argv), or None."""
    from tests.fuzz import targets

    try:
        targets.load(name).fuzz_one(data)
    except AssertionError as exc:
        text = str(exc)
        return text.split(": ", 1)[-1][:40]
    return None


def minimise(name: str, data: bytes, seconds: float = 120) -> bytes:
    """The smallest input found (removing ever smaller chunks, ddmin-style) that still causes the
    same kind of breach as ``data``. libFuzzer's -minimize_crash re-executes argv[0], which a
    Python script is not, so this is done here."""
    want = _breach(name, data)
    if want is None:
        return data
    deadline = time.monotonic() + seconds
    chunk = max(len(data) // 2, 1)
    while chunk >= 1 and time.monotonic() < deadline:
        i, shrunk = 0, False
        while i < len(data) and time.monotonic() < deadline:
            candidate = data[:i] + data[i + chunk:]
            if candidate and _breach(name, candidate) == want:
                data, shrunk = candidate, True
            else:
                i += chunk
        if not shrunk:
            chunk //= 2
    return data


def _run_hypothesis(name: str, inputs: int, seconds: int, corpus: Path) -> tuple[bool, str]:
    """Fallback without atheris: hypothesis drives fuzz_one with ``inputs`` examples."""
    from hypothesis import HealthCheck, given, seed, settings
    from hypothesis import strategies as st
    from hypothesis.database import DirectoryBasedExampleDatabase

    from tests.fuzz import targets

    module = targets.load(name)
    started = time.monotonic()
    count = 0

    @settings(max_examples=inputs, deadline=None, database=DirectoryBasedExampleDatabase(str(corpus)),
              suppress_health_check=list(HealthCheck))
    @given(st.one_of(targets.mutations(module.SEEDS), st.binary(max_size=4096)))
    def _one(data: bytes) -> None:
        nonlocal count
        count += 1
        if time.monotonic() - started > seconds:
            return
        try:
            module.fuzz_one(data)
        except AssertionError:
            failing[:] = [data]  # hypothesis replays the shrunk example last
            raise

    failing: list[bytes] = []
    try:
        _one()
    except Exception as exc:  # noqa: BLE001 - AssertionError, or a group of them
        kept = "-"
        if failing:
            out = REPRODUCERS / name
            out.mkdir(parents=True, exist_ok=True)
            kept_path = out / f"hypothesis-{hashlib.sha1(failing[0]).hexdigest()[:16]}"
            kept_path.write_bytes(failing[0])
            kept = str(kept_path)
        return True, f"{name}: breach after {count} inputs, reproducer {kept}: {exc}"
    return False, f"{name}: {count} inputs in {time.monotonic() - started:.0f} s, no breach (hypothesis)"


def main() -> int:
    if "--child" in sys.argv:
        i = sys.argv.index("--child")
        name, rest = sys.argv[i + 1], sys.argv[sys.argv.index("--") + 1:]
        sys.path.insert(0, str(REPO))
        _child_atheris(name, rest)
        return 0
    if "--minimise" in sys.argv:
        i = sys.argv.index("--minimise")
        name, path = sys.argv[i + 1], Path(sys.argv[i + 2])
        sys.path.insert(0, str(REPO))
        small = minimise(name, path.read_bytes())
        path.with_name(path.name + "-min").write_bytes(small)
        print(f"{path.name}-min: {len(small)} bytes")
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", default="all", help="a target name (tests/fuzz/targets/NAME.py) or 'all'")
    parser.add_argument("--inputs", type=int, default=10_000, help="inputs per target")
    parser.add_argument("--seconds", type=int, default=600, help="time limit per target")
    parser.add_argument("--corpus", default=str(REPO / "fuzz-corpus"), help="corpus directory (one per target)")
    parser.add_argument("--engine", choices=("auto", "atheris", "hypothesis"), default="auto")
    opts = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from tests.fuzz import targets

    chosen = targets.names() if opts.target == "all" else [opts.target]
    unknown = [n for n in chosen if n not in targets.names()]
    if unknown:
        parser.error(f"unknown target {', '.join(unknown)} (known: {', '.join(targets.names())})")
    engine = opts.engine if opts.engine != "auto" else ("atheris" if _have_atheris() else "hypothesis")
    found = False
    for name in chosen:
        corpus = Path(opts.corpus) / name
        corpus.mkdir(parents=True, exist_ok=True)
        runner = _run_atheris if engine == "atheris" else _run_hypothesis
        breach, summary = runner(name, opts.inputs, opts.seconds, corpus)
        print(summary, flush=True)
        found = found or breach
    return 1 if found else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONPATH", str(REPO))
    sys.exit(main())
