"""``migrate verify --luks``: does each volume's key really open that volume's LUKS header?

Checking the key id and the secret's bytes (migrate verify) proves the secret holds fixed_key; this
proves fixed_key is the key the volume was encrypted with. The passphrase is derived as os-brick
and nova derive it for cinder's symmetric keys: ``binascii.hexlify(key bytes)``
(os_brick.utils.get_passphrase_from_secret). The header is tested with ``cryptsetup open
--test-passphrase --readonly --key-file - PATH`` (no device-mapper, no change), after keytools
itself opened the path O_RDONLY to tell a missing, unreadable or non-LUKS path apart. Nothing is
ever opened for writing.
"""

from __future__ import annotations

import binascii
import errno
import os
import shutil
import stat
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

from keytools.errors import UsageError

LUKS_MAGIC = b"LUKS\xba\xbe"
OPENS, DOES_NOT_OPEN, MISSING, NOT_LUKS, UNREADABLE, NO_KEY, ERROR = (
    "opens", "does not open", "missing", "not LUKS", "unreadable", "no key", "error")
TIMEOUT = 300.0  # a real LUKS2 header's argon2 PBKDF can take seconds and a lot of memory


@dataclass(frozen=True)
class LuksResult:
    """One volume's verdict (``result`` is one of the constants above)."""

    volume_id: str
    key_id: str | None
    path: str
    result: str
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.result == OPENS

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def find_cryptsetup() -> str:
    found = shutil.which("cryptsetup")
    if not found:
        raise UsageError("cryptsetup is not installed or not on PATH (needed by --luks)",
                         "Install it (Debian/Ubuntu: apt-get install cryptsetup-bin) or add /usr/sbin to PATH")
    return found


@dataclass(frozen=True)
class PathSpec:
    """``--luks`` values: templates with ``{id}`` and explicit ``VOLUME_ID=PATH`` pairs."""

    templates: tuple[str, ...]
    explicit: dict[str, str]

    @classmethod
    def parse(cls, values: Iterable[str]) -> PathSpec:
        templates: list[str] = []
        explicit: dict[str, str] = {}
        for value in values:
            if "{id}" in value:
                templates.append(value)
                continue
            vid, sep, path = value.partition("=")
            if not sep or not vid or not path:
                raise UsageError(f"--luks {value}: names no volume",
                                 "Give a template such as /dev/cinder-volumes/volume-{id} or VOLUME_ID=PATH")
            explicit[vid] = path
        if len(templates) > 1:
            raise UsageError("--luks: more than one template", "Give one template with {id}, plus VOLUME_ID=PATH pairs")
        return cls(tuple(templates), explicit)

    def path_for(self, volume_id: str) -> str | None:
        if volume_id in self.explicit:
            return self.explicit[volume_id]
        return self.templates[0].replace("{id}", volume_id) if self.templates else None


def passphrase(key: bytes) -> bytes:
    """os-brick's passphrase for a symmetric key: lowercase hex of the key bytes."""
    return binascii.hexlify(key)


def precheck(path: str) -> tuple[str, str] | None:
    """Open read-only and look at the magic; a verdict if the path cannot be tested, else None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        if os.path.islink(path):
            return MISSING, f"dangling symlink to {os.readlink(path)}"
        return MISSING, "no such file or device"
    except PermissionError as exc:
        return UNREADABLE, exc.strerror or "permission denied"
    except OSError as exc:
        return UNREADABLE, exc.strerror or str(exc)
    try:
        mode = os.fstat(fd).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISBLK(mode)):
            return UNREADABLE, "not a block device or a file"
        try:
            head = os.pread(fd, len(LUKS_MAGIC), 0)
        except OSError as exc:
            return UNREADABLE, exc.strerror or str(exc)
    finally:
        os.close(fd)
    if len(head) < len(LUKS_MAGIC):
        return NOT_LUKS, "shorter than a LUKS header"
    if head != LUKS_MAGIC:
        return NOT_LUKS, "no LUKS header (magic missing)"
    return None


def try_header(path: str, key: bytes, cryptsetup: str, timeout: float = TIMEOUT) -> tuple[str, str]:
    """(result, detail) for one header and one key; never writes to ``path``."""
    early = precheck(path)
    if early is not None:
        return early
    argv = [cryptsetup, "open", "--test-passphrase", "--readonly", "--key-file", "-", path]
    try:
        proc = subprocess.run(argv, input=passphrase(key), capture_output=True, timeout=timeout,  # noqa: S603
                              env={**os.environ, "LC_ALL": "C"})
    except subprocess.TimeoutExpired:
        return ERROR, f"cryptsetup did not answer within {timeout:.0f} s"
    except OSError as exc:
        return ERROR, f"cannot run cryptsetup: {exc.strerror or exc}"
    text = " ".join(proc.stderr.decode(errors="replace").split())
    if proc.returncode == 0:
        return OPENS, ""
    if proc.returncode == 2:  # cryptsetup: "No key available with this passphrase."
        return DOES_NOT_OPEN, text or "no key slot opens with this key"
    if "not a valid LUKS device" in text:
        return NOT_LUKS, text
    if proc.returncode == errno.EPERM or "ermission denied" in text:
        return UNREADABLE, text
    return ERROR, f"cryptsetup exit {proc.returncode}: {text[:200]}"


def check_volumes(volumes: Iterable[tuple[str, str | None]], spec: PathSpec,
                  key_for: Callable[[str | None], bytes], cryptsetup: str) -> list[LuksResult]:
    """``volumes``: (volume id, key id). ``key_for(key_id)`` returns the key bytes (raises a
    KeytoolsError when the secret cannot be read: reported as 'no key')."""
    from keytools.errors import KeytoolsError

    results = []
    for volume_id, kid in volumes:
        path = spec.path_for(volume_id)
        if path is None:
            continue
        try:
            key = key_for(kid)
        except KeytoolsError as exc:
            results.append(LuksResult(volume_id, kid, path, NO_KEY, exc.message))
            continue
        result, detail = try_header(path, key, cryptsetup)
        results.append(LuksResult(volume_id, kid, path, result, detail))
    return results


def cinder_volumes(db: Any, journal_path: Any, spec: PathSpec) -> list[tuple[str, str | None]]:
    """Volumes to test: the explicit ones, or with a template every volume this migration moved
    (journal) plus every volume still on the all-zeros id (tested with fixed_key itself)."""
    from keytools.cinder_db import FIXED_KEY_ID
    from migrate import journal as jr

    if not spec.templates:
        return [(vid, db.key_id("volumes", vid)) for vid in spec.explicit]
    seen: dict[str, str | None] = {}
    for table, vid, _ref in jr.iter_done(journal_path):
        if table == "volumes" and vid not in seen:
            current = db.key_id("volumes", vid)
            if current is not None:  # deleted volumes have no device any more
                seen[vid] = current
    for item in db.items("volumes"):
        seen.setdefault(item.id, FIXED_KEY_ID)
    for vid in spec.explicit:
        seen.setdefault(vid, db.key_id("volumes", vid))
    return sorted(seen.items())
