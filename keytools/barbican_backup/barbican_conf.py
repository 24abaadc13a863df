"""What a backup needs from barbican.conf: the simple_crypto KEK and the database URL.

Only the KEK's fingerprint ever leaves this module in clear; the KEK itself is registered with the
redaction filter as soon as it is read. Writing the KEK back goes through crudini (the tool the
operator documentation uses) on a private copy, then one atomic rename, after a backup of the old file.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from keytools import oslo_ini, redaction
from keytools.errors import ConfigError, KeytoolsError
from keytools.fileutil import atomic_write

DEFAULT_CONFIG = "/etc/barbican/barbican.conf"
KEK_SECTION, KEK_OPTION = "simple_crypto_plugin", "kek"


@dataclass(frozen=True)
class BarbicanConfig:
    path: Path
    connection: str
    kek: str | None
    kek_path: Path | None = None  # the file that sets the KEK (barbican.conf.d/*.conf may)

    @property
    def kek_fingerprint(self) -> str | None:
        return kek_fingerprint(self.kek) if self.kek else None


def kek_fingerprint(kek: str) -> str:
    """A short, domain-separated hash: identifies a KEK without revealing it."""
    try:
        material = base64.b64decode(kek.strip(), validate=True)
    except (binascii.Error, ValueError):
        material = kek.strip().encode("utf-8")
    return "sha256:" + hashlib.sha256(b"keytools-barbican-kek\0" + material).hexdigest()[:32]


def load(path: str | os.PathLike[str], need_kek: bool = True) -> BarbicanConfig:
    """Read barbican.conf (and barbican.conf.d) the way oslo.config would."""
    conf = oslo_ini.parse_with_conf_d(path)
    connection = conf.get("database", "connection")
    if not connection:
        raise ConfigError(f"{path}: [database] connection is not set",
                          "Point --config at the barbican.conf the Barbican API uses")
    _register_db_password(connection)
    setting = conf.setting(KEK_SECTION, KEK_OPTION)
    kek = setting.value if setting else None
    if kek:
        redaction.register_secret(kek)
        redaction.register_secret(kek.strip())
    elif need_kek:
        raise ConfigError(f"{path}: [{KEK_SECTION}] {KEK_OPTION} is not set",
                          "Only the simple_crypto backend is supported; its KEK must be in this file")
    return BarbicanConfig(Path(path), connection, kek.strip() if kek else None,
                          Path(setting.path) if setting else None)


def _register_db_password(connection: str) -> None:
    from sqlalchemy.engine import make_url

    try:
        password = make_url(connection).password
    except Exception:  # an unparsable URL is reported by open_database
        return
    if password:
        redaction.register_secret(str(password))


def _crudini() -> str:
    found = shutil.which("crudini", path=str(Path(sys.executable).parent)) or shutil.which("crudini")
    if not found:
        raise KeytoolsError("crudini is not installed", "Install it: pip install crudini")
    return found


def write_kek(path: Path, kek: str) -> Path:
    """Set ``[simple_crypto_plugin] kek`` in ``path``; returns the backup of the old file.

    The KEK reaches crudini on stdin (``--merge``), never on a command line (ps shows those).
    """
    original = path.read_bytes()
    mode = path.stat().st_mode & 0o7777
    backup = path.with_name(f"{path.name}.keytools-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.bak")
    atomic_write(backup, original, mode=0o600)
    with tempfile.TemporaryDirectory(prefix="keytools-kek-") as tmp:
        work = Path(tmp) / path.name
        work.write_bytes(original)
        os.chmod(work, 0o600)
        result = subprocess.run([_crudini(), "--merge", str(work)], input=f"[{KEK_SECTION}]\n{KEK_OPTION} = {kek}\n",
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise KeytoolsError(f"crudini could not update {path}: "
                                f"{redaction.redact(result.stderr.strip()) or result.returncode}",
                                "Check the file's syntax")
        updated = work.read_bytes()
    atomic_write(path, updated, mode=mode)
    return backup
