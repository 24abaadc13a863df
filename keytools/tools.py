"""External programs keytools runs (crudini, cinder-manage, nova-manage, barbican-manage).

keytools' own virtualenv comes first: its console scripts sit beside the interpreter and are the
versions keytools was installed and tested with, even when that virtualenv is not on PATH (an
operator running /opt/keytools/bin/keytools). PATH is the fallback.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from keytools.errors import KeytoolsError, UsageError


def find_tool(name: str, hint: str, error: type[KeytoolsError] = UsageError) -> str:
    """The path of program ``name``, or ``error`` ("NAME is not installed", ``hint``)."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if not found:
        raise error(f"{name} is not installed", hint)
    return found
