"""Helpers shared by the Barbican backup tests (real sandbox, real Barbican, real databases)."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import time
from pathlib import Path
from typing import Any

from keytools import keymanager

PASSPHRASE = "drill-test passphrase 0123456789"


def barbican_conf(sandbox: Any) -> Path:
    return sandbox.state.path("barbican", ".barbican", "barbican.conf")


def conf_copy(src: Path, dst: Path, connection: str | None = None, kek: str | None = None,
              drop_kek: bool = False, before_kek: list[str] = (), after_kek: list[str] = ()) -> Path:
    """A barbican.conf like ``src`` with another database and/or KEK (a restore target)."""
    out = []
    for line in src.read_text().splitlines():
        if connection is not None and re.match(r"^connection\s*=", line):
            line = f"connection = {connection}"
        if re.match(r"^kek\s*=", line):
            if drop_kek:
                continue
            if kek is not None:
                line = f"kek = {kek}"
            out.extend(f"kek = {k}" for k in before_kek)
            out.append(line)
            out.extend(f"kek = {k}" for k in after_kek)
            continue
        out.append(line)
    dst.write_text("\n".join(out) + "\n")
    os.chmod(dst, 0o640)
    return dst


def kek_of(conf: Path) -> str:
    m = re.search(r"^kek\s*=\s*(\S+)", conf.read_text(), re.M)
    assert m
    return m.group(1)


def store_secrets(session: Any, tag: str) -> dict[str, bytes]:
    """A few secrets of different kinds; returns ref -> payload bytes."""
    client = keymanager.barbican_client(session)
    made: dict[str, bytes] = {}
    for i in range(3):
        value = f"bk-{tag}-text-{i}-{os.urandom(6).hex()}"
        made[client.secrets.create(name=f"bk-{tag}-{i}", payload=value).store()] = value.encode()
    for i in range(2):
        raw = os.urandom(32)
        secret = client.secrets.create(name=f"bk-{tag}-bin-{i}", payload=base64.b64encode(raw).decode(),
                                       payload_content_type="application/octet-stream",
                                       payload_content_encoding="base64", algorithm="aes", bit_length=256,
                                       secret_type="symmetric")
        made[secret.store()] = raw
    return made


def payload(session: Any, ref: str) -> bytes | None:
    client = keymanager.barbican_client(session)
    try:
        value = client.secrets.get(ref).payload
    except Exception as exc:
        if "Not Found" in str(exc):
            return None
        raise
    return value.encode() if isinstance(value, str) else bytes(value)


def delete_all(session: Any, refs: list[str]) -> None:
    client = keymanager.barbican_client(session)
    for ref in refs:
        client.secrets.delete(ref)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_on_tty(argv: list[str], env: dict[str, str], answers: list[tuple[bytes, bytes]],
               timeout: float = 60.0) -> tuple[int, bytes]:
    """Run ``argv`` on a pseudo-terminal (its controlling tty), answering prompts; returns
    (exit code, everything the terminal showed)."""
    import pty
    import select

    pid, fd = pty.fork()
    if pid == 0:  # child
        os.execve(argv[0], argv, env)
    shown = b""
    deadline = time.monotonic() + timeout

    def pump() -> bool:
        nonlocal shown
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                data = os.read(fd, 4096)
            except OSError:
                return False
            if not data:
                return False
            shown += data
        return True

    try:
        for prompt, answer in answers:
            while prompt not in shown:
                if not pump() or time.monotonic() > deadline:
                    raise AssertionError(f"no prompt {prompt!r}; terminal showed {shown!r}")
            os.write(fd, answer)
        while pump() and time.monotonic() < deadline:
            pass
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    return os.waitstatus_to_exitcode(status), shown
