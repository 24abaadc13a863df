"""Volume-type tests start from a clean redaction registry.

``keytools.redaction`` is process-global: every secret any earlier test registered (in the full
suite, tests/config_checks registers a weak ``kek = short``) stays registered, and the CLI's output
masks it wherever it occurs, so ``kt-short-<run>`` came out as ``kt-***-<run>``. A real keytools
process starts with an empty registry and registers only the secrets it handles itself (the
cloud's password while authenticating), which ``kt()`` still does for every command here.
"""

from __future__ import annotations

import pytest

from keytools import redaction


@pytest.fixture(autouse=True)
def _fresh_redaction_registry():
    redaction.clear()
    yield
