"""Run network checks (Keystone + Barbican round trips) while the image is being hashed.

``keytools sign``/``verify`` with the certificate in Barbican used to wait for those round trips
before reading a byte; on a 2 GiB image that made the whole command slower than ``openssl dgst``.
``Check`` runs the certificate check in a thread; the hash loop polls ``failed`` once per chunk and
stops early (``HashAborted``) when the check has failed, and the caller takes the check's result
(or its error) before anything is signed or written. Hashing releases the GIL, so the two overlap.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


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

    def result(self) -> T:
        if self._thread is not None:
            self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]
