"""Hash image data once, in constant memory: fixed buffers, optionally a reader thread.

With a free core a reader thread fills the buffers while the caller's thread hashes; a check
running beside the hash (keytools.overlap) can stop it at the next chunk.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, BinaryIO

from keytools.errors import UsageError
from keytools.fileutil import open_user_file
from keytools.image_signature.crypto import new_hasher

CHUNK_SIZE = 1024 * 1024
BUFFERS = 4  # at most CHUNK_SIZE * BUFFERS bytes of image data in memory, at any image size


@dataclass
class Digest:
    value: bytes
    size: int


def _check_abort(abort: threading.Event | None) -> None:
    if abort is not None and abort.is_set():
        from keytools.overlap import HashAborted

        raise HashAborted()


def hash_chunks(chunks: Iterable[bytes | memoryview], method: str,
                progress: Callable[[int], None] | None = None, abort: threading.Event | None = None) -> Digest:
    """Hash a stream of chunks (a download) without keeping more than one chunk; stop early
    (HashAborted) once ``abort`` is set."""
    hasher = new_hasher(method)
    size = 0
    for chunk in chunks:
        _check_abort(abort)
        hasher.update(chunk)
        size += len(chunk)
        if progress:
            progress(len(chunk))
    return Digest(hasher.digest(), size)


def read_ahead_pays() -> bool:
    """A reader thread only helps when a core is idle: then hashing never waits for data (about
    10% faster). On a busy machine the two threads wait for each other's time slices and lose
    about 30%, so the plain loop is used there."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return cores >= 2 and os.getloadavg()[0] < cores - 1


def hash_file(handle: BinaryIO | int, method: str, progress: Callable[[int], None] | None = None,
              chunk_size: int = CHUNK_SIZE, read_ahead: bool | None = None,
              abort: threading.Event | None = None) -> Digest:
    """Hash an open file from its current position in constant memory (a few fixed buffers).

    ``read_ahead`` (default: ``read_ahead_pays()``) reads in a second thread while this one
    hashes; both release the GIL, so with a free core this runs at the speed of the hash alone.
    ``abort`` (a check running beside the hash failed) stops it at the next chunk: HashAborted.
    """
    fd = handle if isinstance(handle, int) else handle.fileno()
    with contextlib.suppress(OSError, AttributeError):
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)  # larger kernel read-ahead, cold cache
    hasher = new_hasher(method)
    if read_ahead is None:
        read_ahead = read_ahead_pays()
    if not read_ahead:
        return _hash_plain(fd, hasher, progress, chunk_size, abort)
    return _hash_read_ahead(fd, hasher, progress, chunk_size, abort)


def _hash_plain(fd: int, hasher: Any, progress: Callable[[int], None] | None, chunk_size: int,
                abort: threading.Event | None = None) -> Digest:
    buf = bytearray(chunk_size)
    view = memoryview(buf)
    size = 0
    with open(fd, "rb", buffering=0, closefd=False) as raw:
        while n := raw.readinto(buf):  # type: ignore[attr-defined]
            _check_abort(abort)
            hasher.update(view[:n])
            size += n
            if progress:
                progress(n)
    return Digest(hasher.digest(), size)


def _hash_read_ahead(fd: int, hasher: Any, progress: Callable[[int], None] | None, chunk_size: int,
                     abort: threading.Event | None = None) -> Digest:
    free: queue.Queue[bytearray] = queue.Queue()
    full: queue.Queue[tuple[bytearray | None, int, BaseException | None]] = queue.Queue()
    for _ in range(BUFFERS):
        free.put(bytearray(chunk_size))
    stop = threading.Event()

    def reader() -> None:
        try:
            with open(fd, "rb", buffering=0, closefd=False) as raw:
                while not stop.is_set():
                    buf = free.get()
                    n = raw.readinto(buf)  # type: ignore[attr-defined]
                    full.put((buf, n or 0, None))
                    if not n:
                        return
        except BaseException as exc:  # handed to the hashing thread, raised there
            full.put((None, 0, exc))

    thread = threading.Thread(target=reader, name="keytools-read", daemon=True)
    thread.start()
    size = 0
    try:
        while True:
            buf, n, error = full.get()
            if error is not None:
                raise error
            if not n:
                break
            _check_abort(abort)
            hasher.update(memoryview(buf)[:n])  # type: ignore[index]
            size += n
            free.put(buf)  # type: ignore[arg-type]
            if progress:
                progress(n)
    finally:
        stop.set()
        free.put(bytearray(0))  # unblock a reader waiting for a buffer (a 0-byte read ends it)
        thread.join()
    return Digest(hasher.digest(), size)


def open_image(path: str | os.PathLike[str]) -> tuple[BinaryIO, int]:
    """Open a regular, non-empty image file for reading (UsageError, exit 2, for anything else).

    Images are regular files: a FIFO (which would block), a device or a directory is refused, as
    Glance uploads and Nova downloads files (``open_user_file``)."""
    handle = open_user_file(path, "image", "Check the path", buffering=0)
    info = os.fstat(handle.fileno())
    if info.st_size == 0:
        handle.close()
        raise UsageError(f"image {path} is empty", "Check that the image was written completely")
    return handle, info.st_size
