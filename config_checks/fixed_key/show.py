"""``fixed-key show``: every fixed_key and whether the values match."""

from __future__ import annotations

from collections.abc import Sequence

from config_checks.fixed_key.placements import Placement, distinct_digests, placements
from config_checks.inputs import discover


def show(roots: Sequence[str], per_node: bool = False) -> tuple[list[Placement], bool, list[tuple[str, str]]]:
    """Every fixed_key, whether all values match, and the files that could not be read."""
    audit = discover(roots, per_node=per_node)
    found = placements(audit)
    unreadable = [(str(p), why) for cfg in audit.configs() for p, why in cfg.unreadable]
    return found, len(distinct_digests(found)) <= 1, unreadable
