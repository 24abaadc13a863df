"""Start and stop the sandbox's server processes, tracked by pid files.

A pid file records the process's start time (from /proc), so a pid file left behind by a crash,
whose pid the kernel has since given to another process, is recognised as stale and never signalled.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

from keytools.errors import ServiceUnavailable, UsageError
from keytools.fileutil import atomic_write
from keytools.sandbox.state import StateDir


def _pid_file(state: StateDir, name: str) -> Path:
    return state.path("run", f"{name}.pid")


def _start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat: the process's start time in clock ticks since boot."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def running_pid(state: StateDir, name: str) -> int | None:
    """The pid of ``name`` if it runs and belongs to this state dir; stale pid files are removed."""
    pidfile = _pid_file(state, name)
    try:
        record = json.loads(pidfile.read_text())
        pid, started = int(record["pid"]), str(record["start_time"])
    except (OSError, ValueError, KeyError, TypeError):
        with contextlib.suppress(OSError):
            pidfile.unlink()
        return None
    if _start_time(pid) == started and not _is_zombie(pid):
        return pid
    with contextlib.suppress(OSError):
        pidfile.unlink()
    return None


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def start(state: StateDir, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None,
          cwd: str | os.PathLike[str] | None = None) -> int:
    """Launch ``argv`` detached (own session), output to logs/<name>.log, and record its pid."""
    log_path = state.path("logs", f"{name}.log")
    full_env = dict(os.environ)
    full_env.update(env or {})
    full_env["KEYTOOLS_SANDBOX_DIR"] = str(state.root)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(list(argv), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=full_env, cwd=cwd, start_new_session=True, close_fds=True)
    pidfile = _pid_file(state, name)
    record = {"pid": proc.pid, "start_time": _start_time(proc.pid), "argv": list(argv)[-1:]}
    atomic_write(pidfile, json.dumps(record), mode=0o600)
    return proc.pid


def stop(state: StateDir, name: str, timeout: float = 15.0) -> bool:
    """Stop ``name`` (its whole process group): SIGTERM, then SIGKILL after ``timeout``."""
    pid = running_pid(state, name)
    if pid is None:
        return False
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            break
        time.sleep(0.1)
    else:
        _signal_group(pid, signal.SIGKILL)
        time.sleep(0.2)
    # gunicorn workers die with their master; make sure nothing of the group survives.
    _signal_group(pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        _pid_file(state, name).unlink()
    return True


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    if not Path(f"/proc/{pid}").exists():
        return False
    return not _is_zombie(pid)


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports free on 127.0.0.1 right now."""
    socks, ports = [], []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
            ports.append(sock.getsockname()[1])
    finally:
        for sock in socks:
            sock.close()
    return ports


def require_free(port: int, what: str) -> None:
    if not port_is_free(port):
        raise UsageError(f"port {port} on 127.0.0.1 (for {what}) is busy",
                         "Stop what uses it or choose other ports with --port-base")


def wait_http(url: str, name: str, state: StateDir, timeout: float = 60.0,
              ok_statuses: Sequence[int] = (200, 300, 401)) -> None:
    """Poll ``url`` until it answers; fail early (with the log's tail) if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback only
                if resp.status in ok_statuses:
                    return
        except urllib.error.HTTPError as exc:
            if exc.code in ok_statuses:
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        if running_pid(state, name) is None:
            raise ServiceUnavailable(f"{name} exited during start-up: {log_tail(state, name)}",
                                     f"See {state.path('logs', name + '.log')}")
        time.sleep(0.1)
    raise ServiceUnavailable(f"{name} did not answer at {url} within {timeout:.0f} s",
                             f"See {state.path('logs', name + '.log')}")


def log_tail(state: StateDir, name: str, lines: int = 3) -> str:
    try:
        text = state.path("logs", f"{name}.log").read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(line.strip()[:300] for line in text[-lines:])
