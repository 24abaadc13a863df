"""Where the checkout and the project's shared real artefacts are."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _shared_data() -> Path:
    """The project's real artefacts (cinder logs...): $KEYTOOLS_SHARED_DATA, else ../shared/data
    next to the checkout (a clone elsewhere, e.g. CI's 0700 one, has no ../shared)."""
    given = os.environ.get("KEYTOOLS_SHARED_DATA")
    return Path(given) if given else REPO.parent / "shared" / "data"


SHARED_DATA = _shared_data()
