"""A throwaway Barbican for the restore drill: Barbican's own server code on a scratch copy of the
database and the backed-up KEKs, on 127.0.0.1, for the drill's lifetime only.

Why no Keystone: the drill must work from an archive alone on another machine, and must not send a
single request to production. So the scratch Barbican runs Barbican's unauthenticated pipeline (the
context comes from X-Project-Id / X-Roles headers, as Barbican's own functional tests do) and the
factory adds a random per-drill token that every request must carry; nothing but the drill can read
the restored secrets. The gunicorn master dies with the drill (PR_SET_PDEATHSIG), and a rerun removes
the scratch directories of drills that were killed. The scratch directory (a decrypted copy of the
database, a config holding the KEKs) lives beside what the drill is for, never in a shared temp dir.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import json
import os
import secrets as pysecrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from keytools.barbican.barbican_conf import KEK_OPTION, KEK_SECTION
from keytools.barbican.scratch_app import PASTE
from keytools.errors import ServiceUnavailable, UsageError
from keytools.fileutil import atomic_write, pid_alive, private_dir

PREFIX = ".keytools-drill-"
NEEDS = ("barbican", "gunicorn", "paste")
START_TIMEOUT = 60.0


def require_server_packages() -> None:
    """The scratch Barbican needs Barbican's server code: the sandbox extra."""
    missing = [m for m in NEEDS if importlib.util.find_spec(m) is None]
    if missing:
        raise UsageError(f"the restore drill needs Barbican's server code ({', '.join(missing)} not installed)",
                         "Install it: pip install 'keytools[sandbox]'")


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn does: TIME_WAIT is no owner
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pick_port(port: int | None) -> int:
    if port is not None:
        if not 1024 <= port <= 65535:
            raise UsageError(f"--port {port} is out of range", "Use a port from 1024 to 65535, or omit --port")
        if not port_is_free(port):
            raise UsageError(f"--port {port}: port {port} on 127.0.0.1 is busy",
                             "Choose another --port, or omit it to use a free one")
        return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_stale(base: Path) -> int:
    """Remove scratch directories of drills that were killed (their owner pid is gone)."""
    removed = 0
    for path in base.glob(PREFIX + "*"):
        try:
            owner = int((path / "owner.pid").read_text())
        except (OSError, ValueError):
            owner = None
            try:
                if time.time() - path.stat().st_mtime < 300:  # being created right now
                    continue
            except FileNotFoundError:  # another drill just removed its own directory
                continue
        if owner is not None and pid_alive(owner):
            continue
        with contextlib.suppress(OSError):
            server = json.loads((path / "server.json").read_text())["pid"]
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(int(server), signal.SIGKILL)
        shutil.rmtree(path, ignore_errors=True)
        removed += 1
    return removed


@contextlib.contextmanager
def workdir(base: Path) -> Iterator[Path]:
    """A private (0700) scratch directory in ``base``, removed afterwards; a killed drill's is
    removed on rerun."""
    clean_stale(base)
    try:
        path = Path(tempfile.mkdtemp(prefix=PREFIX, dir=base))
    except OSError as exc:
        raise UsageError(f"cannot create the drill's scratch directory in {base}: {exc.strerror or exc}",
                         "Run the drill as a user who can write there (the owner of the database)") from None
    try:
        atomic_write(path / "owner.pid", str(os.getpid()), mode=0o600)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@dataclass
class Server:
    url: str
    port: int
    pid: int
    token: str

    def headers(self, project: str) -> dict[str, str]:
        return {"X-Keytools-Drill-Token": self.token, "X-Project-Id": project, "X-Roles": "admin"}


def write_config(home: Path, connection: str, keks: list[str], port: int, create_schema: bool = False,
                 p11: dict[str, str] | None = None) -> None:
    """``p11``: the live [p11_crypto_plugin] section; secrets moved to PKCS#11 then decrypt through
    the same HSM (its MKEK never leaves it; SOFTHSM2_CONF and the like are inherited)."""
    conf_dir = private_dir(home / ".barbican")
    private_dir(conf_dir / "barbican.conf.d")  # shadows /etc/barbican/barbican.conf.d (oslo takes the first)
    lines = ["[DEFAULT]", f"host_href = http://127.0.0.1:{port}", f"db_auto_create = {'true' if create_schema else 'false'}", "debug = false",
             "use_stderr = true", "", "[database]", f"connection = {connection}", "",
             "[secretstore]", "enabled_secretstore_plugins = store_crypto", "",
             "[crypto]", "enabled_crypto_plugins = simple_crypto",  # a MultiStrOpt: one line per plugin
             *(["enabled_crypto_plugins = p11_crypto"] if p11 else []), "",
             f"[{KEK_SECTION}]", *(f"{KEK_OPTION} = {k}" for k in keks), "",
             *(["[p11_crypto_plugin]", *(f"{k} = {v}" for k, v in p11.items()), ""] if p11 else []),
             "[oslo_policy]", "enforce_new_defaults = false", "",
             "[queue]", "enable = false", ""]
    atomic_write(conf_dir / "barbican.conf", "\n".join(lines), mode=0o600)
    atomic_write(home / "barbican-api-paste.ini", PASTE, mode=0o600)


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the drill dies, so a killed drill leaves no server."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    os.setsid()


@contextlib.contextmanager
def run(work: Path, connection: str, keks: list[str], port: int | None = None,
        workers: int = 2, create_schema: bool = False, p11: dict[str, str] | None = None) -> Iterator[Server]:
    """Start the scratch Barbican, wait until it answers, stop it (whole process group) afterwards.
    ``create_schema``: an empty database gets Barbican's schema (benchmarks build data this way)."""
    require_server_packages()
    chosen = pick_port(port)
    home = private_dir(work / "home")
    write_config(home, connection, keks, chosen, create_schema, p11)
    token = pysecrets.token_urlsafe(24)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "KEYTOOLS_SCRATCH"))}
    env.update(KEYTOOLS_SCRATCH_HOME=str(home), KEYTOOLS_SCRATCH_TOKEN=token, KEYTOOLS_SCRATCH_DB=connection,
               HOME=str(home))
    argv = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{chosen}", "--workers", str(workers),
            "--worker-class", "sync", "--timeout", "300", "--graceful-timeout", "2", "--log-level", "warning",
            "keytools.barbican.scratch_app:app()"]
    log_path = work / "barbican.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                cwd=work, close_fds=True, preexec_fn=_die_with_parent)  # noqa: PLW1509
    atomic_write(work / "server.json", json.dumps({"pid": proc.pid, "port": chosen}), mode=0o600)
    server = Server(f"http://127.0.0.1:{chosen}", chosen, proc.pid, token)
    try:
        _wait(server, proc, log_path)
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGINT)  # gunicorn: quick shutdown
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


def _wait(server: Server, proc: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    request = urllib.request.Request(f"{server.url}/v1/secrets?limit=1", headers=server.headers("keytools-probe"))
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServiceUnavailable(f"the scratch Barbican exited during start-up: {_tail(log_path)}",
                                     "Check that Barbican's version matches the archive's schema")
        try:
            with urllib.request.urlopen(request, timeout=2):  # noqa: S310 - loopback only
                return
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                return
            raise ServiceUnavailable(f"the scratch Barbican answers HTTP {exc.code}: {_tail(log_path)}",
                                     "Check that Barbican's version matches the archive's schema") from None
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(0.1)
    raise ServiceUnavailable(f"the scratch Barbican did not answer on 127.0.0.1:{server.port} "
                             f"within {START_TIMEOUT:.0f} s: {_tail(log_path)}")


def _tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(line.strip()[:200] for line in lines[-3:]) or "(empty log)"
