"""Start keytools, then kill -9 it when something happens: the one way the crash tests do it.

A run is a real process: either ``spawn(argv)`` (a subprocess, e.g. ``keytools_argv(...)``) or
``fork_main(args)``, a child forked from the (already imported) test process that runs keytools'
main() as a user would, so a kill trial costs a fraction of a second instead of two seconds of
imports. ``kill_when(run, ready)`` waits for a condition (a file appears, a log line...) and
SIGKILLs; ``Run.read_stderr_until`` waits for the run's own output instead.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO


@dataclass
class Run:
    """A started keytools process; ``stderr_fd`` reads its stderr when it was captured."""

    pid: int
    stderr_fd: int | None = None
    proc: subprocess.Popen | None = None
    _status: int | None = None  # os.waitpid status of a forked run, once reaped

    def finished(self) -> bool:
        """Has it exited? (Reaps it if so: from then on a kill is no longer delivered.)"""
        if self.proc is not None:
            return self.proc.poll() is not None
        if self._status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self._status = status
        return self._status is not None

    def read_stderr_until(self, done: Callable[[bytes], bool], timeout: float, poll: float) -> bytes:
        """Read its stderr until ``done(everything read)``, end of file or ``timeout`` seconds."""
        assert self.stderr_fd is not None, "stderr was not captured"
        seen = b""
        deadline = time.monotonic() + timeout
        while not done(seen) and time.monotonic() < deadline:
            ready, _, _ = select.select([self.stderr_fd], [], [], poll)
            if ready:
                chunk = os.read(self.stderr_fd, 65536)
                if not chunk:
                    break
                seen += chunk
        return seen

    def kill_9(self) -> bool:
        """SIGKILL it, reap it, close its pipes. True when the signal was delivered: a run that
        exited but was not reaped yet still counts (call ``finished()`` first to tell)."""
        delivered = False
        if self.returncode is None:  # not reaped: its pid is still its own, a zombie's included
            try:
                os.kill(self.pid, signal.SIGKILL)
                delivered = True
            except ProcessLookupError:
                pass
        if self.proc is not None:
            self.proc.wait()
            for stream in (self.proc.stdout, self.proc.stderr):
                if stream is not None:
                    stream.close()
        else:
            if self._status is None:
                self._status = os.waitpid(self.pid, 0)[1]
            if self.stderr_fd is not None:
                os.close(self.stderr_fd)
        return delivered

    @property
    def returncode(self) -> int | None:
        """Like Popen's: the exit code, or -N when signal N ended it; None while running."""
        if self.proc is not None:
            return self.proc.returncode
        return None if self._status is None else os.waitstatus_to_exitcode(self._status)

    @property
    def exited_normally(self) -> bool:
        """It ended by itself (an exit code), not by a signal."""
        code = self.returncode
        return code is not None and code >= 0


def spawn(argv: list[str], env: dict[str, str] | None = None, *, stdout: int | IO = subprocess.DEVNULL,
          stderr: int | IO = subprocess.DEVNULL, cwd: str | os.PathLike | None = None) -> Run:
    """Start ``argv`` (``env`` None: this process's environment)."""
    proc = subprocess.Popen([str(a) for a in argv], env=env, stdout=stdout, stderr=stderr, cwd=cwd)
    return Run(proc.pid, proc.stderr.fileno() if proc.stderr else None, proc)


def fork_main(args: list[str], env: dict[str, str]) -> Run:
    """keytools' main(args) in a forked child with ``env`` added to its environment and a fresh
    request id, stdout to /dev/null, stderr to a pipe (``Run.stderr_fd``), not pytest's capture."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: run the CLI as a user would
        code = 70
        try:
            os.dup2(write_fd, 2)
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            sys.stderr = os.fdopen(2, "w", buffering=1)
            sys.stdout = os.fdopen(1, "w")
            os.environ.update(env)
            import uuid

            from keytools import logs
            from keytools.cli import main

            logs.REQUEST_ID = f"req-{uuid.uuid4()}"

            code = main(args)
        finally:
            os._exit(code)
    os.close(write_fd)
    return Run(pid, read_fd)


def kill_when(run: Run, ready: Callable[[], object], *, timeout: float = 60.0, poll: float = 0.02,
              must_reach: bool = False) -> bool:
    """Poll ``ready()`` every ``poll`` seconds; SIGKILL ``run`` once it holds (or once the run
    ended or ``timeout`` passed). ``must_reach``: fail the test instead when the run ends or the
    time is up before ``ready()``. Returns whether the signal was delivered (see Run.kill_9)."""
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            if run.finished():
                if must_reach:
                    err = run.proc.stderr.read() if run.proc is not None and run.proc.stderr else b""
                    raise AssertionError(f"the run ended before it could be killed: {run.returncode} {err!r}")
                break
            if time.monotonic() > deadline:
                if must_reach:
                    raise AssertionError("the run never reached the kill point")
                break
            time.sleep(poll)
    finally:
        delivered = run.kill_9()
    return delivered
