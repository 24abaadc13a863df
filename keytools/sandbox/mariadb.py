"""A private MariaDB server for the sandbox: data dir and socket in the state dir, loopback TCP,
no system service touched. Needs Debian's ``mariadb-server`` (``make mariadb`` installs it)."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from keytools.errors import ServiceUnavailable, UsageError
from keytools.sandbox import processes
from keytools.sandbox.configs import LOOPBACK
from keytools.sandbox.state import SandboxConfig, StateDir

NAME = "mariadb"


def binaries() -> tuple[str, str]:
    server = shutil.which("mariadbd") or shutil.which("mysqld", path="/usr/sbin:/usr/bin")
    installer = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
    if not server or not installer:
        raise UsageError("MariaDB is not installed (needed for --db mariadb)",
                         "Install it: apt-get install -y mariadb-server (or 'make mariadb')")
    return server, installer


def start(state: StateDir, cfg: SandboxConfig) -> None:
    if processes.running_pid(state, NAME):
        return
    server, installer = binaries()
    datadir = state.path("mariadb", "data")
    if not datadir.joinpath("mysql").is_dir():
        _install_db(installer, datadir, state)
    processes.require_free(cfg.ports[NAME], "MariaDB")
    processes.start(state, NAME, [
        server, "--no-defaults", f"--datadir={datadir}", f"--socket={socket_path(state)}",
        f"--port={cfg.ports[NAME]}", f"--bind-address={LOOPBACK}", "--user=root",
        f"--pid-file={state.path('mariadb', 'mariadbd.pid')}",
        f"--log-error={state.path('logs', 'mariadb-error.log')}",
        "--max-connections=500", "--innodb-flush-log-at-trx-commit=2", "--skip-name-resolve",
    ])
    _wait(state)
    _create_databases(state, cfg)


def _install_db(installer: str, datadir: Path, state: StateDir, attempts: int = 2) -> None:
    """Initialise the data dir; a half-written one (killed or failed install) is wiped and redone."""
    log = state.path("logs", "mariadb-install.log")
    for attempt in range(1, attempts + 1):
        shutil.rmtree(datadir, ignore_errors=True)
        datadir.mkdir(parents=True)
        with open(log, "ab") as out:
            result = subprocess.run([installer, "--no-defaults", f"--datadir={datadir}", "--user=root",
                                     "--auth-root-authentication-method=normal", "--skip-test-db"],
                                    stdout=out, stderr=subprocess.STDOUT)
        if result.returncode == 0:
            return
        if attempt < attempts:
            time.sleep(1)
    shutil.rmtree(datadir, ignore_errors=True)
    raise ServiceUnavailable(f"mariadb-install-db failed (exit {result.returncode})", f"See {log}")


def socket_path(state: StateDir) -> str:
    return str(state.path("mariadb", "mysqld.sock"))


def _connect_root(state: StateDir):
    import pymysql

    return pymysql.connect(unix_socket=socket_path(state), user="root", autocommit=True)


def _wait(state: StateDir, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _connect_root(state).close()
            return
        except Exception:
            if processes.running_pid(state, NAME) is None:
                raise ServiceUnavailable(f"MariaDB exited during start-up: {processes.log_tail(state, NAME)}",
                                         f"See {state.path('logs', 'mariadb-error.log')}") from None
            time.sleep(0.1)
    raise ServiceUnavailable("MariaDB did not accept connections within 30 s")


DATABASES = ("keystone", "barbican", "cinder", "glance")


def _create_databases(state: StateDir, cfg: SandboxConfig) -> None:
    conn = _connect_root(state)
    try:
        with conn.cursor() as cur:
            pw = cfg.passwords[NAME]
            cur.execute("CREATE USER IF NOT EXISTS 'keytools'@'127.0.0.1' IDENTIFIED BY %s", (pw,))
            cur.execute("CREATE USER IF NOT EXISTS 'keytools'@'localhost' IDENTIFIED BY %s", (pw,))
            for name in DATABASES:
                cur.execute(f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4")
            cur.execute("GRANT ALL PRIVILEGES ON *.* TO 'keytools'@'127.0.0.1'")
            cur.execute("GRANT ALL PRIVILEGES ON *.* TO 'keytools'@'localhost'")
    finally:
        conn.close()
