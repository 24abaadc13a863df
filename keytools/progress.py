"""Progress bars for people, never for log files: shown only when stderr is a terminal."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

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
