"""Where the checkout and its test data are."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Real artefacts the tests read (Cinder's own key-migration logs...), kept in the repository so
# that a clone with nothing beside it passes: tests/data/<set>/README.md says where each came from.
TEST_DATA = REPO / "tests" / "data"
