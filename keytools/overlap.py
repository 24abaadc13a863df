"""Run network checks (Keystone + Barbican round trips) while the image is being hashed.

``keytools sign``/``verify`` with the certificate in Barbican used to wait for those round trips
before reading a byte; on a 2 GiB image that made the whole command slower than ``openssl dgst``.
``Check`` runs the certificate check in a thread; the hash loop polls ``failed`` once per chunk and
stops early (``HashAborted``) when the check has failed, and the caller takes the check's result
(or its error) before anything is signed or written. Hashing releases the GIL, so the two overlap.

While the check runs, Python's GIL switch interval is lowered (5 ms -> 0.2 ms): the check's
imports and TLS/JSON work hold the GIL, and the hash loop would otherwise wait up to 5 ms for it
after every 1 MiB chunk (less than 1 ms of hashing), running at a fraction of its speed.

Even so the check's Python work (about 0.45 s of CPU: openstacksdk, keystoneauth and
barbicanclient imports, auth, JSON) slowed a 2 GiB hash by a fifth. ``forked`` moves the part
that needs no state of ours (build the session, fetch bytes from Barbican) into a forked child
process, so it runs on another core with its own GIL; the check thread only waits for its bytes.
"""

from __future__ import annotations

import os
import pickle
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")
SWITCH_INTERVAL = 0.0002  # seconds, while a check runs beside the hash


class HashAborted(Exception):
    """The hash stopped because the check running beside it failed (its error is the real one)."""


class Check(Generic[T]):
    """``fn`` in a daemon thread (``background``), or run right away; ``result()`` joins and
    returns its value or raises its exception in the caller's thread."""

    def __init__(self, fn: Callable[[], T], background: bool = True, name: str = "keytools-check") -> None:
        self.failed = threading.Event()  # set as soon as fn raised: the hash loop stops
        self._value: T | None = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        if background:
            self._interval = sys.getswitchinterval()
            sys.setswitchinterval(min(self._interval, SWITCH_INTERVAL))
            self._thread = threading.Thread(target=self._run, args=(fn,), name=name, daemon=True)
            self._thread.start()
        else:
            self._value = fn()  # raises here: nothing is read before a local check fails

    def _run(self, fn: Callable[[], T]) -> None:
        try:
            self._value = fn()
        except BaseException as exc:  # handed to the caller's thread by result()
            self._error = exc
            self.failed.set()
        finally:
            sys.setswitchinterval(self._interval)

    def result(self) -> T:
        if self._thread is not None:
            self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]


def forked(fn: Callable[[], T]) -> Callable[[], T]:
    """Start ``fn`` now in a forked child; the returned callable waits for its value (or raises
    its error, masked by the child's redaction registry) in whichever thread calls it.

    ``fn`` must be self-contained and its value picklable (bytes, say): nothing it changes in
    memory comes back. Without ``os.fork``, or once other threads run (forking those is unsafe),
    ``fn`` runs in the caller's thread instead, on the first call. Either way it runs once: later
    calls give the same value or error.
    """
    if not hasattr(os, "fork") or threading.active_count() > 1:
        return _once(fn)
    for stream in (sys.stdout, sys.stderr):  # so the child cannot write our buffered output again
        stream.flush()
    read_end, write_end = os.pipe()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child (coverage does not follow it)
        os.close(read_end)
        _die_with(parent)
        _child(fn, write_end)
    os.close(write_end)
    done: list[Any] = []

    def result() -> T:
        if not done:
            with os.fdopen(read_end, "rb") as pipe:
                data = pipe.read()  # blocks without the GIL until the child writes and exits
            os.waitpid(pid, 0)
            done.append(pickle.loads(data) if data else ("error", RuntimeError("the forked check died")))
        kind, value = done[0]
        if kind == "error":
            raise value
        return value  # type: ignore[no-any-return]

    return result


def _once(fn: Callable[[], T]) -> Callable[[], T]:
    """``fn`` run on the first call only; later calls repeat its value or raise its error again."""
    done: list[tuple[str, Any]] = []

    def result() -> T:
        if not done:
            try:
                done.append(("ok", fn()))
            except BaseException as exc:
                done.append(("error", exc))
        kind, value = done[0]
        if kind == "error":
            raise value
        return value  # type: ignore[no-any-return]

    return result


def _die_with(parent: int) -> None:  # pragma: no cover - runs in the child
    """Let the kernel kill the child when the parent dies (kill -9 during a hung round trip must
    not leave it behind); Linux only, elsewhere the child ends with its round trips."""
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _child(fn: Callable[[], Any], write_end: int) -> None:  # pragma: no cover - runs in the child
    """Run ``fn``, send ("ok", value) or ("error", exception) to the parent, and exit at once
    (os._exit: no atexit handlers, no flushing of the parent's copied buffers)."""
    code = 0
    try:
        try:
            message = pickle.dumps(("ok", fn()))
        except BaseException as exc:  # noqa: BLE001 - every failure goes to the parent
            code = 1
            message = pickle.dumps(("error", portable(exc)))
        with os.fdopen(write_end, "wb") as pipe:
            pipe.write(message)
        sys.stderr.flush()
    finally:
        os._exit(code)


def portable(exc: BaseException) -> BaseException:
    """``exc`` as the parent can unpickle and show it: secrets masked, the child's traceback kept
    as a note (``--debug`` prints notes), anything unpicklable turned into a RuntimeError."""
    from keytools import redaction
    from keytools.errors import KeytoolsError

    note = "in the forked check process:\n" + redaction.redact("".join(traceback.format_exception(exc)))
    if isinstance(exc, KeytoolsError):
        exc.message = redaction.redact(exc.message)
        exc.hint = redaction.redact(exc.hint) if exc.hint else exc.hint
        exc.args = (exc.message, *exc.args[1:])
        exc.report = None
    exc.__notes__ = [note]
    try:
        pickle.loads(pickle.dumps(exc))  # both ways: an __init__ with other arguments fails loads
        return exc
    except Exception:  # noqa: BLE001 - e.g. a client exception holding a socket
        plain = RuntimeError(redaction.redact(f"{type(exc).__name__}: {exc}"))
        plain.__notes__ = [note]
        return plain
