"""Run network checks (Keystone + Barbican round trips) while the image is being hashed.

``keytools sign``/``verify`` with the certificate in Barbican used to wait for those round trips
before reading a byte; on a 2 GiB image that made the whole command slower than ``openssl dgst``.
``Check`` runs the certificate check in a thread; the hash loop polls ``failed`` once per chunk and
stops early (``HashAborted``) when the check has failed, and the caller takes the check's result
(or its error) before anything is signed or written. Hashing releases the GIL, so the two overlap.

While the check runs, Python's GIL switch interval is lowered (5 ms -> 0.2 ms): the check's
imports and TLS/JSON work hold the GIL, and the hash loop would otherwise wait up to 5 ms for it
after every 1 MiB chunk (less than 1 ms of hashing), running at a fraction of its speed.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

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
