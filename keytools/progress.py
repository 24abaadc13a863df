"""Progress bars for people, never for log files: shown only when stderr is a terminal."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any, TextIO

import click

from keytools.output import is_tty


class _Forced:
    """stderr that says it is a terminal: click draws a bar only on one, ``enabled=True`` wants it."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def isatty(self) -> bool:
        return True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def progress(total: int | None, label: str, enabled: bool | None = None,
             show_pos: bool = True) -> Iterator[Callable[[int], None]]:
    """``with progress(n, "Migrating") as advance: advance(1)``; a no-op unless stderr is a TTY
    (``enabled=None``); ``enabled=True`` draws it anyway (an explicit ``--progress``).
    ``show_pos=False`` shows a percentage instead of done/total."""
    show = is_tty(sys.stderr) if enabled is None else enabled
    if not show:
        yield lambda _n=1: None
        return
    stream: Any = sys.stderr if enabled is None or is_tty(sys.stderr) else _Forced(sys.stderr)
    with click.progressbar(length=total, label=label, file=stream, show_pos=show_pos,
                           show_eta=True) as bar:
        yield bar.update


Advance = Callable[[int], None]
# (total bytes or None, label) -> a context yielding the per-chunk callback (or None: no progress).
# Library calls that stream a file (sign_image, verify_image) take one; their CLIs pass ``for_file``.
ProgressFactory = Callable[[int | None, str], AbstractContextManager[Advance | None]]
LONG_FILE = 64 * 1024 * 1024  # smaller files are done before a bar would be worth drawing


def no_progress(_total: int | None, _label: str) -> AbstractContextManager[Advance | None]:
    """The library default: report nothing."""
    return contextlib.nullcontext(None)


def for_file(total: int | None, label: str) -> AbstractContextManager[Advance | None]:
    """A TTY-only bar for streaming a file, for long files only."""
    return progress(total, label, enabled=None if total and total >= LONG_FILE else False)
