"""User-named files: open or read one (regular files only, bounded) or fail with a one-line
error; write crash-safely.

Writes are atomic: a reader (or a rerun after kill -9) sees the old file or the new one.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from keytools.errors import UsageError


KIB = 1024
MIB = 1024 * KIB
# What a file read whole may hold. Certificates, keys, passphrases and --properties are a few KiB;
# a config file a few hundred KiB at most. Anything bigger is the wrong file (or /dev/zero).
MAX_SMALL = 1 * MIB
MAX_CONFIG = 4 * MIB

_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)


def _size_text(n: int) -> str:
    return f"{n // MIB} MiB" if n % MIB == 0 else f"{n // KIB} KiB" if n % KIB == 0 else f"{n} bytes"


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def open_user_file(path: str | os.PathLike[str], what: str, hint: str | None = "Check the path",
                   error: type[UsageError] = UsageError, *, missing_hint: str | None = None,
                   path_first: bool = False, buffering: int = -1) -> BinaryIO:
    """Open a file the user named for reading, refusing anything but a regular file.

    The open never blocks: it is done with O_NONBLOCK (a FIFO with no writer would otherwise hang
    forever) and the descriptor is checked with fstat (no race with a rename in between); FIFOs,
    devices (/dev/zero), directories and sockets are refused with ``error`` (exit 2) naming the file.
    Streaming readers (images, logs, archives) use this directly; ``read_user_file`` bounds the size.
    Messages as ``read_user_file`` describes them.
    """
    subject = f"{what} {path}" if what else str(path)
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # a socket (or a device with nothing behind it)
            with contextlib.suppress(OSError):
                mode = os.stat(path).st_mode
                if not stat.S_ISREG(mode):
                    raise error(f"{subject} is {_kind(mode)}, not a regular file",
                                "Pass a regular file (not a FIFO, device, directory or socket)") from None
        missing = isinstance(exc, FileNotFoundError)
        advice = missing_hint if missing and missing_hint is not None else hint
        if not path_first:
            raise error(f"cannot read {subject}: {exc.strerror or exc}", advice) from None
        why = "no such file" if missing else f"cannot read ({exc.strerror or exc})"
        raise error(f"{subject}: {why}", advice) from None
    except ValueError:  # a NUL byte in the path
        raise error(f"{what or 'file'} path {str(path)!r} contains a NUL byte", "Check the path") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise error(f"{subject} is {_kind(mode)}, not a regular file",
                        "Pass a regular file (not a FIFO, device, directory or socket)")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb", buffering=buffering)
    except BaseException:
        os.close(fd)
        raise


def read_user_file(path: str | os.PathLike[str], what: str, hint: str | None = "Check the path",
                   error: type[UsageError] = UsageError, *, missing_hint: str | None = None,
                   path_first: bool = False, max_bytes: int = MAX_SMALL) -> bytes:
    """The bytes of a regular file the user named, at most ``max_bytes``, or ``error`` (exit 2).

    ``what`` names the file as the user knows it ("certificate", "--key-password-file"). The message
    is "cannot read WHAT PATH: why"; with ``path_first`` (config files, backup inputs) it is
    "WHAT PATH: no such file" or "WHAT PATH: cannot read (why)", and ``what`` may be "" (the path
    alone names it). ``missing_hint``, if given, replaces ``hint`` when the file does not exist.
    A FIFO, device, directory or socket is refused without blocking (``open_user_file``); a file
    larger than ``max_bytes`` (MAX_SMALL: certificates, keys, passphrases, properties; MAX_CONFIG:
    config files) is refused rather than read until memory runs out.
    """
    subject = f"{what} {path}" if what else str(path)
    with open_user_file(path, what, hint, error, missing_hint=missing_hint, path_first=path_first) as handle:
        try:
            data = handle.read(max_bytes + 1)
        except OSError as exc:
            raise error(f"cannot read {subject}: {exc.strerror or exc}" if not path_first else
                        f"{subject}: cannot read ({exc.strerror or exc})", hint) from None
    if len(data) > max_bytes:
        raise error(f"{subject} is larger than {_size_text(max_bytes)}, more than such a file holds",
                    "Check that this is the right file")
    return data


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike[str], mode: int | None = 0o600,
                  keep_owner: bool = True) -> Iterator[BinaryIO]:
    """Stream into a temp file beside ``path``; fsync and rename over it only when complete.

    ``mode`` None keeps the mode of an existing file (config edits); secrets pass 0o600 (default).
    The temp file is created 0600 so secret bytes are never readable by others, even briefly; an
    exception (or a kill) leaves ``path`` untouched.
    """
    target = Path(path)
    old_stat = None
    with contextlib.suppress(FileNotFoundError):
        old_stat = target.stat()
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        final_mode = mode if mode is not None else (old_stat.st_mode & 0o7777 if old_stat else 0o644)
        os.chmod(tmp, final_mode)
        if keep_owner and old_stat is not None and os.geteuid() == 0:
            os.chown(tmp, old_stat.st_uid, old_stat.st_gid)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(target.parent)


def atomic_write(path: str | os.PathLike[str], data: bytes | str, mode: int | None = 0o600,
                 keep_owner: bool = True) -> None:
    """Write ``data`` to ``path`` crash-safely (see ``atomic_writer``)."""
    with atomic_writer(path, mode, keep_owner) as handle:
        handle.write(data.encode("utf-8") if isinstance(data, str) else data)


def remove_stale_temps(path: str | os.PathLike[str]) -> None:
    """Remove the temp files (``.<name>.*.tmp``) a kill -9 during ``atomic_writer`` left beside ``path``."""
    target = Path(path)
    for tmp in target.parent.glob(f".{target.name}.*.tmp"):
        tmp.unlink(missing_ok=True)


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """Make a rename durable (POSIX needs the directory fsynced too)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def private_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` (and parents) with mode 0700 for files holding secrets."""
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(p, 0o700)
    return p
