"""Fuzz targets, one module each (see tests/fuzz/README.md for the convention).

Each module defines ``SEEDS: list[bytes]`` (valid inputs the fuzzer starts from) and
``fuzz_one(data: bytes) -> None``, which runs keytools on an input derived from ``data`` and
raises AssertionError on a breach of the contract (``tests/fuzz/contract.py``).
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType


def names() -> list[str]:
    """Every target's name (its module name), sorted."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def load(name: str) -> ModuleType:
    module = importlib.import_module(f"{__name__}.{name}")
    assert isinstance(getattr(module, "SEEDS", None), list) and callable(getattr(module, "fuzz_one", None)), (
        f"fuzz target {name} must define SEEDS and fuzz_one")
    return module
