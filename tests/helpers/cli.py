"""Run the keytools CLI the two ways tests need: in-process through main() (fast, the exit-code
mapping users get) and as a real ``python -m keytools`` subprocess (kills, TTY-less runs)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

from click.testing import CliRunner

from keytools.cli import main


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def invoke(args: list[str], env: dict[str, str] | None = None, input: str | None = None) -> Result:
    """Run the keytools CLI in-process (main(), so the exit-code mapping is what users get)."""
    runner = CliRunner()
    with runner.isolation(input=input, env=env) as streams:
        out, err = streams[0], streams[1]
        code = main([str(a) for a in args])
        return Result(code, out.getvalue().decode(), err.getvalue().decode())


def keytools_argv(*args: object) -> list[str]:
    """The argv of a real keytools process: this interpreter, ``-m keytools``, then ``args``."""
    return [sys.executable, "-m", "keytools", *map(str, args)]


def run_keytools(*args: str, env: dict[str, str] | None = None, timeout: float = 300,
                 input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run keytools as a real subprocess (for kill tests, TTY-less behaviour, real exit codes)."""
    return subprocess.run(keytools_argv(*args), capture_output=True, text=True, env=env, timeout=timeout,
                          input=input)
