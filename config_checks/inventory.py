"""The fixed_key inventory from command-line options: the reference seam filtered on the all-zeros id.

Each service's source is built by ``keytools.key_refs.options`` (a service whose options are
missing is *blind*: it blocks ``fixed-key retire``, never counts as zero). Glance is read through
its API with ``--glance-cloud`` admin credentials.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from keytools.errors import KeytoolsError, ProblemsFound
from keytools.fixed_key_refs import SERVICES, Inventory, sort_key, take
from keytools.key_refs import options as ref_options

Options = dict[str, Any]


def parse_services(values: Iterable[str], option: str = "--ignore-service") -> list[str]:
    return ref_options.parse_services(values, SERVICES, option)


def inventory(kw: Options, services: Sequence[str] = SERVICES, ignore: Iterable[str] = ()) -> Inventory:
    """Look at every service (blind ones are listed with the reason); ignored ones are not asked."""
    ignored = set(ignore)
    inv = take(ref_options.sources(kw, services, ignored), ignored)
    inv.references.sort(key=sort_key)
    return inv


def failure(inv: Inventory) -> KeytoolsError | None:
    """The error ``fixed-key inventory`` ends with after its report, or None: ProblemsFound (exit 1)
    when something references the all-zeros id or a service was not seen (and not ignored)."""
    if inv.total:
        return ProblemsFound(f"{inv.total} reference(s) to the all-zeros key id "
                             f"({', '.join(f'{s} {n}' for s, n in inv.totals().items())})",
                             "Migrate them first with 'keytools migrate run', then rerun")
    if inv.blocking_blind:
        return ProblemsFound(f"not seen: {'; '.join(f'{b.service}: {b.reason}' for b in inv.blocking_blind)}",
                             "Give the missing options, or --ignore-service SERVICE if it never used fixed_key")
    return None
