"""Helpers for the Swift tests and benchmark: extra proxy processes against the sandbox's storage
servers and direct object-server reads (the request counter in front of Barbican is
tests/helpers/fault_proxy.py)."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import time
from pathlib import Path

import requests

from keytools.sandbox import configs, processes, swift as sandbox_swift
from keytools.sandbox.state import SandboxConfig, StateDir

# The sandbox's proxy pipeline without keystone auth: extra proxies for interop, rotation and
# the benchmark reach any account directly (loopback only).
NOAUTH_PIPELINE = ("catch_errors gatekeeper healthcheck proxy-logging cache listing_formats copy slo "
                   "dlo versioned_writes symlink keymaster encryption proxy-logging proxy-server")


class ProxyProcess:
    """A swift-proxy-server with its own pipeline config, sharing the sandbox's storage servers."""

    def __init__(self, state: StateDir, cfg: SandboxConfig, workdir: Path, name: str,
                 keymaster: dict[str, object], pipeline: str = NOAUTH_PIPELINE,
                 port: int | None = None, workers: int = 0,
                 overrides: dict[str, dict[str, object]] | None = None) -> None:
        self.port = port or processes.free_ports(1)[0]
        self.url = f"http://127.0.0.1:{self.port}"
        workdir.mkdir(parents=True, exist_ok=True)
        self.conf = workdir / f"{name}.conf"
        self.log = workdir / f"{name}.log"
        sections = sandbox_swift.proxy_sections(state, cfg, self.port, pipeline, keymaster)
        sections["DEFAULT"]["log_name"] = name
        sections["DEFAULT"]["workers"] = workers
        for name, options in (overrides or {}).items():
            sections.setdefault(name, {}).update(options)
        self.conf.write_text(configs.ini_text(sections))
        os.chmod(self.conf, 0o600)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([sandbox_swift._bin("swift-proxy-server"), str(self.conf), "--verbose"],
                                         stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60) -> ProxyProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"proxy exited with {self.proc.returncode}: {self.output()[-2000:]}")
            try:
                if requests.get(self.url + "/healthcheck", timeout=2).status_code == 200:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"proxy not ready: {self.output()[-2000:]}")

    def wait_exit(self, timeout: float = 60) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the proxy and its workers (its own process group, started by us)."""
        if self.proc.poll() is None:
            _killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                _killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        _killpg(self.proc.pid, signal.SIGKILL)  # workers that outlived their parent


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def swift_keymaster(secret: bytes) -> dict[str, object]:
    """Swift's own plain keymaster with an inline root secret."""
    return {"use": "egg:swift#keymaster", "encryption_root_secret": base64.b64encode(secret).decode()}


def our_keymaster(cfg: SandboxConfig, barbican_endpoint: str | None = None,
                  **options: object) -> dict[str, object]:
    """keytools' keymaster with the sandbox's swift credentials (inline, as kms_keymaster allows)."""
    section: dict[str, object] = {"use": "egg:keytools#keymaster",
                                  **sandbox_swift.keymaster_section(cfg, "")}
    del section["key_id"]
    if barbican_endpoint:
        section["barbican_endpoint"] = barbican_endpoint
    section.update(options)
    return section


def object_on_disk(state: StateDir, account: str, container: str, obj: str) -> tuple[bytes, dict]:
    """The object's .data file bytes and its metadata (xattrs), read straight from the device."""
    from swift.common.ring import Ring
    from swift.common.utils import hash_path
    from swift.obj.diskfile import read_metadata

    _set_swift_dir(state)  # the hash path suffix lives in the sandbox's swift.conf
    ring = Ring(str(sandbox_swift.swift_dir(state)), ring_name="object")
    part, _nodes = ring.get_nodes(account, container, obj)
    name_hash = hash_path(account, container, obj)
    obj_dir = sandbox_swift.swift_dir(state) / "devices" / "d1" / "objects" / str(part) / name_hash[-3:] / name_hash
    data_files = sorted(obj_dir.glob("*.data"))
    assert data_files, f"no .data file in {obj_dir}"
    path = data_files[-1]
    with open(path, "rb") as handle:
        metadata = read_metadata(handle)
    return path.read_bytes(), metadata


def _set_swift_dir(state: StateDir) -> None:
    from swift.common import utils

    utils.set_swift_dir(str(sandbox_swift.swift_dir(state)))
