"""What a backup needs from barbican.conf: the simple_crypto KEK and the database URL.

Only the KEK's fingerprint ever leaves this module in clear; the KEK itself is registered with the
redaction filter as soon as it is read. Writing the KEK back goes through crudini (the tool the
operator documentation uses) on a private copy beside the file, then one atomic rename, after a backup
of the old file.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from keytools import oslo_ini, redaction
from keytools.errors import ConfigError, KeytoolsError
from keytools.fileutil import atomic_write, private_workdir
from keytools.tools import find_tool

DEFAULT_CONFIG = "/etc/barbican/barbican.conf"
KEK_SECTION, KEK_OPTION = "simple_crypto_plugin", "kek"


@dataclass(frozen=True)
class BarbicanConfig:
    """``kek`` is a MultiStrOpt in Barbican: every ``kek =`` line counts (KEK rotation). The first
    encrypts new project keys, all of them decrypt (Fernet MultiFernet)."""

    path: Path
    connection: str
    keks: tuple[str, ...] = ()
    kek_files: tuple[Path, ...] = ()  # the files setting kek (barbican.conf.d/*.conf may), in order

    @property
    def kek(self) -> str | None:
        return self.keks[0] if self.keks else None

    @property
    def kek_fingerprint(self) -> str | None:
        return kek_fingerprint(self.keks) if self.keks else None

    @property
    def kek_fingerprints(self) -> list[str]:
        return [kek_fingerprint(k) for k in self.keks]


def _one_fingerprint(kek: str) -> str:
    try:
        material = base64.b64decode(kek.strip(), validate=True)
    except (binascii.Error, ValueError):
        material = kek.strip().encode("utf-8")
    return "sha256:" + hashlib.sha256(b"keytools-barbican-kek\0" + material).hexdigest()[:32]


def kek_fingerprint(keks: str | list[str] | tuple[str, ...]) -> str:
    """A short, domain-separated hash naming a KEK (or an ordered KEK list) without revealing it."""
    if isinstance(keks, str):
        return _one_fingerprint(keks)
    if len(keks) == 1:
        return _one_fingerprint(keks[0])
    joined = "\0".join(_one_fingerprint(k) for k in keks).encode()
    return "sha256:" + hashlib.sha256(b"keytools-barbican-kek-list\0" + joined).hexdigest()[:32]


def load(path: str | os.PathLike[str], need_kek: bool = True) -> BarbicanConfig:
    """Read barbican.conf (and barbican.conf.d) the way oslo.config would."""
    conf = oslo_ini.parse_with_conf_d(path)
    connection = conf.get("database", "connection")
    if not connection:
        raise ConfigError(f"{path}: [database] connection is not set",
                          "Point --config at the barbican.conf the Barbican API uses")
    _register_db_password(connection)
    settings = [s for s in conf.get_all(KEK_SECTION, KEK_OPTION) if s.value.strip()]
    keks = tuple(s.value.strip() for s in settings)
    for kek in keks:
        redaction.register_secret(kek)
    if not keks and need_kek:
        raise ConfigError(f"{path}: [{KEK_SECTION}] {KEK_OPTION} is not set",
                          "Only the simple_crypto backend is supported; its KEK must be in this file")
    files = tuple(dict.fromkeys(Path(s.path) for s in settings))
    return BarbicanConfig(Path(path), connection, keks, files)


def _register_db_password(connection: str) -> None:
    from sqlalchemy.engine import make_url

    try:
        password = make_url(connection).password
    except Exception:  # an unparsable URL is reported by open_database
        return
    if password:
        redaction.register_secret(str(password))


def _crudini() -> str:
    return find_tool("crudini", "Install it: pip install crudini", KeytoolsError)


def write_keks(path: Path, keks: list[str]) -> Path:
    """Make ``[simple_crypto_plugin] kek`` in ``path`` exactly ``keks`` (in order); returns the
    backup of the old file.

    crudini deletes every old ``kek`` line and sets the first new one; it keeps one value per key,
    so further KEKs (a rotated list) go on the lines right after it. The KEKs reach crudini on
    stdin (``--merge``), never on a command line (ps shows those). The result is parsed back and
    must hold exactly ``keks`` before it replaces the file (atomically, mode and owner kept).
    """
    if not keks:
        raise KeytoolsError("no KEK to write")
    original = path.read_bytes()
    mode = path.stat().st_mode & 0o7777
    backup = path.with_name(f"{path.name}.keytools-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.bak")
    with private_workdir(path.parent, "kek") as tmp:  # the copy holds KEKs: never in /tmp
        work = tmp / path.name
        work.write_bytes(original)
        os.chmod(work, 0o600)
        _crudini_run(["--del", str(work), KEK_SECTION, KEK_OPTION], None, path)
        _crudini_run(["--merge", str(work)], f"[{KEK_SECTION}]\n{KEK_OPTION} = {keks[0]}\n", path)
        if len(keks) > 1:
            lines = work.read_text().splitlines(keepends=True)
            at = next(i for i, line in enumerate(lines)
                      if line.split("=", 1)[0].strip() == KEK_OPTION and line.split("=", 1)[1].strip() == keks[0])
            extra = [f"{KEK_OPTION} = {k}\n" for k in keks[1:]]
            if not lines[at].endswith("\n"):
                lines[at] += "\n"
            work.write_text("".join(lines[: at + 1] + extra + lines[at + 1:]))
        written = [s.value.strip() for s in oslo_ini.parse_file(work).get_all(KEK_SECTION, KEK_OPTION)]
        if written != list(keks):
            raise KeytoolsError(f"writing the KEK into {path} did not give the expected result; nothing changed",
                                "Set [simple_crypto_plugin] kek by hand from a --check run's advice")
        updated = work.read_bytes()
    atomic_write(backup, original, mode=0o600)
    atomic_write(path, updated, mode=mode)
    return backup


def _crudini_run(args: list[str], stdin: str | None, path: Path) -> None:
    result = subprocess.run([_crudini(), *args], input=stdin or "", capture_output=True, text=True)
    if result.returncode != 0:
        raise KeytoolsError(f"crudini could not update {path}: "
                            f"{redaction.redact(result.stderr.strip()) or result.returncode}",
                            "Check the file's syntax")
