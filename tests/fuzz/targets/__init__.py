"""Fuzz targets, one module each (see tests/fuzz/README.md for the convention).

Each module defines ``SEEDS: list[bytes]`` (valid inputs the fuzzer starts from) and
``fuzz_one(data: bytes) -> None``, which runs keytools on an input derived from ``data`` and
raises AssertionError on a breach of the contract (``tests/fuzz/contract.py``).
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType
from typing import Any


def names() -> list[str]:
    """Every target's name (its module name), sorted."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def load(name: str) -> ModuleType:
    module = importlib.import_module(f"{__name__}.{name}")
    assert isinstance(getattr(module, "SEEDS", None), list) and callable(getattr(module, "fuzz_one", None)), (
        f"fuzz target {name} must define SEEDS and fuzz_one")
    return module


# Tokens that broke parsers before (issue 21): spliced into seeds by ``mutations``.
TOKENS: tuple[bytes, ...] = (b"[", b"{", b"]", b"}", b'"', b",", b":", b"NaN", b"Infinity", b"-Infinity",
                             b"1e999", b"9" * 50, b"[]", b"{}", b"null", b"\x00", b"\\ud800", b"\xff",
                             b"\n", b"%", b"=", b"-----BEGIN CERTIFICATE-----", b"[" * 2000)


def mutations(seeds: list[bytes]) -> Any:
    """A hypothesis strategy: a seed with up to four splices of random bytes or ``TOKENS`` (what
    the suite and ``run.py --engine hypothesis`` feed to ``fuzz_one``)."""
    from hypothesis import strategies as st

    chunk = st.one_of(st.binary(max_size=64), st.sampled_from(TOKENS))

    @st.composite
    def mutated(draw: Any) -> bytes:
        data = draw(st.sampled_from(seeds))
        for _ in range(draw(st.integers(0, 4))):
            at = draw(st.integers(0, len(data)))
            cut = draw(st.integers(0, 64))
            data = data[:at] + draw(chunk) + data[at + cut:]
        return data

    return mutated()
