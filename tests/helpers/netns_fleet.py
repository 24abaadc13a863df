"""A real multi-host fleet on one machine, for the Ansible collection's tests, benchmark and demo.

Each host is a network namespace (``kt-<pid>-N``) joined to this machine by a veth pair on a
private /30 (10.251.X.Y/30, free blocks only: traffic goes only to those addresses) and runs its
own Debian sshd (own config, host key, authorized_keys; ``UsePAM no``, ``StrictModes no``) inside
``unshare --mount --uts`` after a bind mount of that host's own directory at one common path, so
every host sees *its* config tree at the same place. Ansible (ansible-core from PyPI) reaches the
hosts over SSH with a ControlPersist socket in the fleet's directory.

``Fleet.start()`` creates everything; ``Fleet.stop()`` (also registered with ``atexit`` and safe
to call twice) kills every process in the namespaces, ends the ControlPersist masters, deletes
the namespaces and veths (the mounts die with their namespace) and removes the directory. Needs
root, ``ip``, ``unshare`` and ``/usr/sbin/sshd``.
"""

from __future__ import annotations

import atexit
import contextlib
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers.paths import REPO

SSHD = "/usr/sbin/sshd"
BLOCKS = ipaddress.ip_network("10.251.0.0/16")
COLLECTIONS = REPO  # ansible_collections/keytools/openstack lives in the checkout


def missing_tools() -> list[str]:
    """What this machine lacks to build a fleet (empty: it can)."""
    need = [t for t in ("ip", "unshare", "ssh", "ssh-keygen") if shutil.which(t) is None]
    if not os.path.exists(SSHD):
        need.append(SSHD + " (Debian openssh-server)")
    if os.geteuid() != 0:
        need.append("root")
    return need


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=check)


def _used_networks() -> list[ipaddress.IPv4Network]:
    out = _run("ip", "-o", "-4", "addr", "show").stdout + _run("ip", "-4", "route", "show").stdout
    nets = []
    for word in out.split():
        if word.startswith("10.251."):
            try:
                nets.append(ipaddress.ip_interface(word if "/" in word else word + "/32").network)
            except ValueError:
                continue
    return nets


def free_blocks(count: int) -> list[ipaddress.IPv4Network]:
    used = _used_networks()
    out = []
    for net in BLOCKS.subnets(new_prefix=30):
        if not any(net.overlaps(u) for u in used):
            out.append(net)
            if len(out) == count:
                return out
    raise RuntimeError("no free /30 blocks left in 10.251.0.0/16")


@dataclass
class Host:
    name: str
    netns: str
    veth: str
    address: str  # the namespace side (sshd listens here)
    gateway: str  # this machine's side
    root: Path  # the host's own directory, seen inside the host at Fleet.mount
    proc: subprocess.Popen | None = None

    def pids(self) -> list[int]:
        res = _run("ip", "netns", "pids", self.netns, check=False)
        return [int(p) for p in res.stdout.split() if p.isdigit()]


@dataclass
class Fleet:
    """``count`` hosts; ``populate(name, directory)`` fills each host's own directory first."""

    count: int
    populate: Callable[[str, Path], None] = lambda _n, _d: None
    names: list[str] | None = None
    base: Path = field(default=None)  # type: ignore[assignment]
    hosts: list[Host] = field(default_factory=list)
    _stopped: bool = False
    _vars: dict[str, str] = field(default_factory=dict)

    @property
    def mount(self) -> Path:
        """The common path: every host sees its own directory here."""
        return self.base / "node"

    @property
    def control_dir(self) -> Path:
        return self.base / "cp"

    @property
    def key(self) -> Path:
        return self.base / "id_ed25519"

    @property
    def inventory(self) -> Path:
        return self.base / "inventory.ini"

    @property
    def config(self) -> Path:
        return self.base / "ansible.cfg"

    def start(self, extra_vars: dict[str, str] | None = None) -> "Fleet":
        missing = missing_tools()
        if missing:
            raise RuntimeError("cannot build a netns fleet: missing " + ", ".join(missing))
        self.base = Path(tempfile.mkdtemp(prefix="kt-fleet-"))
        atexit.register(self.stop)
        try:
            self._start(extra_vars or {})
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, extra_vars: dict[str, str]) -> None:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation directory
        self.mount.mkdir()
        self.control_dir.mkdir(mode=0o700)
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "kt-fleet", "-f", str(self.key))
        authorized = self.base / "authorized_keys"
        shutil.copy(f"{self.key}.pub", authorized)
        pid = os.getpid()
        names = self.names or [f"node{i + 1}" for i in range(self.count)]
        for i, (name, net) in enumerate(zip(names, free_blocks(len(names)))):
            gateway, address = (str(a) for a in list(net.hosts())[:2])
            root = self.base / "hosts" / name
            root.mkdir(parents=True)
            self.populate(name, root)
            host = Host(name, f"kt-{pid}-{i + 1}", f"kt{pid}h{i + 1}", address, gateway, root)
            self.hosts.append(host)
            self._network(host)
            self._sshd(host, authorized)
        for host in self.hosts:
            self._wait(host)
        self._write_ansible(extra_vars)

    def _network(self, h: Host) -> None:
        _run("ip", "netns", "add", h.netns)
        _run("ip", "link", "add", h.veth, "type", "veth", "peer", "name", "eth0", "netns", h.netns)
        _run("ip", "addr", "add", f"{h.gateway}/30", "dev", h.veth)
        _run("ip", "link", "set", h.veth, "up")
        _run("ip", "-n", h.netns, "addr", "add", f"{h.address}/30", "dev", "eth0")
        _run("ip", "-n", h.netns, "link", "set", "eth0", "up")
        _run("ip", "-n", h.netns, "link", "set", "lo", "up")

    def _sshd(self, h: Host, authorized: Path, fresh: bool = True) -> None:
        d = self.base / "sshd" / h.name
        if fresh:
            d.mkdir(parents=True, mode=0o700)
            _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "hostkey"))
        (d / "sshd_config").write_text(
            f"ListenAddress {h.address}\nPort 22\nHostKey {d / 'hostkey'}\nPidFile {d / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {authorized}\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nUseDNS no\nPrintMotd no\n"
            "AcceptEnv LANG LC_*\nSubsystem sftp internal-sftp\nMaxSessions 50\nMaxStartups 100\n")
        script = 'mount --bind "$1" "$2" && hostname "$3" && exec "$4" -D -e -f "$5"'
        log = open(d / "sshd.log", "ab")  # noqa: SIM115 - the child holds it
        h.proc = subprocess.Popen(
            ["ip", "netns", "exec", h.netns, "unshare", "--mount", "--uts", "--propagation", "private",
             "sh", "-c", script, "sh", str(h.root), str(self.mount), h.name, SSHD, str(d / "sshd_config")],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        log.close()

    def _wait(self, h: Host, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if h.proc is not None and h.proc.poll() is not None:
                log = (self.base / "sshd" / h.name / "sshd.log").read_text(errors="replace")
                raise RuntimeError(f"sshd of {h.name} exited: {log.strip()[-400:]}")
            try:
                with socket.create_connection((h.address, 22), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"sshd of {h.name} did not listen on {h.address}:22")

    def _write_ansible(self, extra_vars: dict[str, str]) -> None:
        self._vars = dict(extra_vars)
        self.config.write_text(
            "[defaults]\nhost_key_checking = False\nforks = 25\ngathering = explicit\nretry_files_enabled = False\n"
            f"collections_path = {COLLECTIONS}\ninventory = {self.inventory}\ninterpreter_python = {sys.executable}\n"
            "[ssh_connection]\npipelining = True\n"
            f"control_path_dir = {self.control_dir}\ncontrol_path = %(directory)s/%%h-%%p-%%r\n"
            "ssh_args = -o ControlMaster=auto -o ControlPersist=120s -o UserKnownHostsFile=/dev/null "
            "-o StrictHostKeyChecking=no -o LogLevel=ERROR\n")
        self.write_inventory(extra_vars)

    def write_inventory(self, extra_vars: dict[str, str] | None = None, hosts: list[Host] | None = None,
                        ghosts: dict[str, str] | None = None, host_vars: dict[str, str] | None = None) -> None:
        """The inventory: every host (or ``hosts``) in group ``nodes``, plus ``ghosts`` (name ->
        address: hosts that are listed but do not exist, a stale inventory) and ``deploy``;
        ``host_vars`` adds text to one host's line."""
        extra_vars = self._vars if extra_vars is None else extra_vars
        lines = ["[nodes]"]
        for h in hosts if hosts is not None else self.hosts:
            lines.append(f"{h.name} ansible_host={h.address} {(host_vars or {}).get(h.name, '')}".rstrip())
        for name, address in (ghosts or {}).items():
            lines.append(f"{name} ansible_host={address}")
        lines += ["", "[nodes:vars]", "ansible_user=root", f"ansible_ssh_private_key_file={self.key}",
                  f"ansible_python_interpreter={sys.executable}", "ansible_ssh_timeout=5",
                  f"keytools_config_root={self.mount}/var/lib/config-data/puppet-generated",
                  f"keytools_backup_dir={self.mount}/keytools-backups",
                  "", "[deploy]", f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}",
                  "", "[all:vars]", f"keytools_environment={{'PYTHONPATH': '{REPO}'}}"]
        lines += [f"{k}={v}" for k, v in (extra_vars or {}).items()]
        self.inventory.write_text("\n".join(lines) + "\n")

    def env(self) -> dict[str, str]:
        """Environment for ansible-playbook/ansible against this fleet."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "OS_"))}
        env.update(ANSIBLE_CONFIG=str(self.config), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
                   ANSIBLE_LOCAL_TEMP=str(self.base / "tmp"), ANSIBLE_HOME=str(self.base / "ansible-home"),
                   PYTHONPATH=str(REPO))
        return env

    def ansible(self, *args: str, tool: str = "ansible-playbook", timeout: float = 300,
                extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        exe = str(Path(sys.executable).with_name(tool))
        return subprocess.run([exe, *args], capture_output=True, text=True, env=self.env() | (extra_env or {}),
                              timeout=timeout, cwd=self.base)

    def host(self, name: str) -> Host:
        return next(h for h in self.hosts if h.name == name)

    def end_connection(self, h: Host) -> None:
        """End the ControlPersist master to ``h`` (``ssh -O exit``): with its sshd gone, the host
        is unreachable from then on (while the master lives, it is not)."""
        sock = self.control_dir / f"{h.address}-22-root"
        if sock.exists():
            subprocess.run(["ssh", "-O", "exit", "-o", f"ControlPath={sock}", "-o", "LogLevel=QUIET", h.address],
                           capture_output=True, timeout=10)

    def kill_host(self, h: Host) -> None:
        """Make ``h`` unreachable: every process in its namespace (sshd) killed, then the
        ControlPersist master ended (while it lives, a host without sshd is still reachable)."""
        self._kill_all(h)
        self.end_connection(h)

    @staticmethod
    def _kill_all(h: Host) -> None:
        """SIGKILL every process in ``h``'s namespace (its sshd and sessions), then reap its sshd."""
        for p in h.pids():
            with contextlib.suppress(OSError):
                os.kill(p, signal.SIGKILL)
        if h.proc is not None:
            with contextlib.suppress(OSError):
                h.proc.kill()
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                h.proc.wait(timeout=5)

    def revive(self, h: Host) -> None:
        """Start ``h``'s sshd again (after ``kill_host``)."""
        self._sshd(h, self.base / "authorized_keys", fresh=False)
        self._wait(h)

    def stop(self) -> None:
        if self._stopped or self.base is None:
            return
        self._stopped = True
        if self.control_dir.is_dir():
            for sock in self.control_dir.iterdir():
                subprocess.run(["ssh", "-O", "exit", "-o", f"ControlPath={sock}", "-o", "LogLevel=QUIET", "x"],
                               capture_output=True, timeout=10)
        for h in self.hosts:
            self._kill_all(h)
        for h in self.hosts:
            _run("ip", "netns", "del", h.netns, check=False)
            _run("ip", "link", "del", h.veth, check=False)
        shutil.rmtree(self.base, ignore_errors=True)

    def leftovers(self) -> list[str]:
        """What of this fleet still exists (empty after ``stop``): namespaces, links, mounts, processes."""
        out = []
        netns = _run("ip", "netns", "list", check=False).stdout
        links = _run("ip", "-o", "link", "show", check=False).stdout
        mounts = Path("/proc/mounts").read_text()
        for h in self.hosts:
            if h.netns in netns.split():
                out.append(f"netns {h.netns}")
            if f" {h.veth}@" in links or f" {h.veth}:" in links:
                out.append(f"link {h.veth}")
            if h.proc is not None and h.proc.poll() is None:
                out.append(f"sshd {h.proc.pid}")
        if str(self.base) in mounts:
            out.append(f"mount under {self.base}")
        if self.base.exists():
            out.append(f"directory {self.base}")
        return out

