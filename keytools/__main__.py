"""``python -m keytools``: the same entry point as the ``keytools`` script."""

from keytools.cli import run

run()
