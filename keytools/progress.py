"""Progress bars for people, never for log files: shown only when stderr is a terminal."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import click

from keytools.output import is_tty


@contextlib.contextmanager
def progress(total: int | None, label: str, enabled: bool | None = None) -> Iterator[Callable[[int], None]]:
    """``with progress(n, "Migrating") as advance: advance(1)``; a no-op unless stderr is a TTY."""
    show = is_tty(sys.stderr) if enabled is None else enabled
    if not show:
        yield lambda _n=1: None
        return
    with click.progressbar(length=total, label=label, file=sys.stderr, show_pos=True,
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
