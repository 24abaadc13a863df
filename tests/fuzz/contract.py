"""The contract every fuzz target checks: what keytools may never do, whatever it is given.

A run breaks the contract when it exits 70 (a bug), prints a traceback, takes longer than its
bound (a hang), prints a report that does not parse, or shows a planted secret. Each breach is an
AssertionError, which the fuzzer records as a crash and minimises into a reproducer.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Iterable, Iterator
from typing import Any

from keytools.errors import EXIT_INTERNAL
from tests.helpers.cli import Result, invoke

# Exit codes keytools documents (README "Exit codes"); anything else (70 included) is a breach.
DOCUMENTED = {0, 1, 2, 3, 4, 5, 6}
RUN_SECONDS = 20  # generous: an in-process run of a parser takes milliseconds


class Hang(AssertionError):
    """A single run took longer than its bound."""


@contextlib.contextmanager
def bounded(seconds: int = RUN_SECONDS) -> Iterator[None]:
    """Raise ``Hang`` if the body runs longer than ``seconds`` (SIGALRM: main thread only)."""
    def _alarm(signum: int, frame: Any) -> None:
        raise Hang(f"no answer after {seconds} s")

    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous if previous is not None else signal.SIG_DFL)


def strict_json(text: str) -> Any:
    """Parse ``text`` as any JSON parser would (no NaN/Infinity): AssertionError if it cannot."""
    def _constant(name: str) -> Any:
        raise AssertionError(f"JSON output holds {name}, which no JSON parser reads")

    try:
        return json.loads(text, parse_constant=_constant)
    except ValueError as exc:
        raise AssertionError(f"JSON output does not parse: {exc}") from None


def run(args: list[str], *, secrets: Iterable[str] = (), json_output: bool = False,
        allowed: set[int] = DOCUMENTED, input: str | None = None, seconds: int = RUN_SECONDS) -> Result:
    """Run keytools in-process on ``args`` and check the contract; returns the result."""
    with bounded(seconds):
        result = invoke(args, input=input)
    check(result, args, secrets=secrets, json_output=json_output, allowed=allowed)
    return result


def check(result: Result, args: list[str], *, secrets: Iterable[str] = (), json_output: bool = False,
          allowed: set[int] = DOCUMENTED) -> None:
    where = f"keytools {' '.join(map(str, args))[:300]}"
    assert result.exit_code != EXIT_INTERNAL, f"{where}: exit 70: {result.stderr[-600:]}"
    assert result.exit_code in allowed, f"{where}: undocumented exit {result.exit_code}: {result.stderr[-600:]}"
    assert "Traceback (most recent call last)" not in result.output, f"{where}: traceback in output"
    for secret in secrets:
        assert secret not in result.output, f"{where}: a planted secret appears in the output"
    errors = [line for line in result.stderr.splitlines() if line.startswith("keytools: error:")]
    assert len(errors) <= 1, f"{where}: more than one error line"
    if result.exit_code != 0 and errors:
        assert result.stderr.rstrip("\n").endswith(errors[0]), f"{where}: the error is not one last line"
    if json_output and result.exit_code in (0, 1) and result.stdout.strip():
        strict_json(result.stdout)


_WORKDIR: list[str] = []


WORKDIR_ENV = "KEYTOOLS_FUZZ_WORKDIR"


def workdir() -> str:
    """A private (0700) directory for this process's inputs, removed at exit. Under run.py it is
    inside the directory ``$KEYTOOLS_FUZZ_WORKDIR``, which run.py removes once the fuzzer ends:
    libFuzzer ends the process with C exit(), which runs no Python atexit handler."""
    if not _WORKDIR:
        import atexit
        import shutil
        import tempfile

        path = tempfile.mkdtemp(prefix="keytools-fuzz-", dir=os.environ.get(WORKDIR_ENV) or None)
        atexit.register(shutil.rmtree, path, True)
        _WORKDIR.append(path)
    return _WORKDIR[0]


def write(name: str, data: bytes) -> str:
    """Write ``data`` to ``name`` in the work directory (replacing it); returns the path."""
    path = os.path.join(workdir(), name)
    with open(path, "wb") as handle:
        handle.write(data)
    return path
