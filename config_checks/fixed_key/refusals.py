"""What stops a retire: references to the all-zeros key id, or a service that was not seen."""

from __future__ import annotations

from config_checks import secrets
from config_checks.fixed_key.placements import OPTION
from keytools import cinder_db, redaction
from keytools.errors import (AuthenticationFailed, Forbidden, KeytoolsError, NotFound, ServiceUnavailable,
                             StateError, UsageError)
from keytools.fixed_key_refs import Inventory, Reference


# Errors that keep their type (and so their exit code) when they made a service blind: bad input,
# unreachable, forbidden. Anything else is a refusal by the state of the cloud (exit 6).
_KEPT = (UsageError, NotFound, ServiceUnavailable, Forbidden, AuthenticationFailed)


def check_inventory(inv: Inventory) -> None:
    """Refuse (exit 6) while anything references the all-zeros id or a service was not seen; an
    error that made a service blind keeps its own exit code (2 bad input, 4 unreachable)."""
    failed = [b for b in inv.blocking_blind if b.error is not None]
    if failed:
        b = failed[0]
        cls = b.error if b.error and issubclass(b.error, _KEPT) else StateError
        raise cls(f"{b.service}: {b.reason}; refusing to retire {OPTION}",
                  f"Fix it, or pass --ignore-service {b.service} if {b.service} never used fixed_key")
    if inv.total:
        detail = ", ".join(f"{r.count} {r.service} {r.kind}" + ("" if r.certain else " (may depend)")
                           for r in _merged(inv))
        blind = "".join(f"; could not see {b.service} ({b.reason})" for b in inv.blocking_blind)
        raise StateError(f"{inv.total} reference(s) to the all-zeros key id {cinder_db.FIXED_KEY_ID} remain "
                         f"({detail}){blind}; refusing to retire {OPTION}",
                         "Finish the key migration first ('keytools migrate run', then 'keytools fixed-key "
                         "inventory'), then rerun")
    if inv.blocking_blind:
        raise StateError("could not see " + "; ".join(f"{b.service} ({b.reason})" for b in inv.blocking_blind)
                         + f"; refusing to retire {OPTION}",
                         "Give the missing database/credentials, or --ignore-service NAME for a service "
                         "that never used fixed_key")


def refusal(inv: Inventory) -> str | None:
    """Why a real retire would refuse on this inventory (the --dry-run warning), or None."""
    try:
        check_inventory(inv)
    except KeytoolsError as exc:
        return exc.message
    return None


def _merged(inv: Inventory) -> list[Reference]:
    merged: dict[tuple[str, str, bool], int] = {}
    for r in inv.references:
        merged[(r.service, r.kind, r.certain)] = merged.get((r.service, r.kind, r.certain), 0) + r.count
    return [Reference(s, k, None, None, n, c) for (s, k, c), n in merged.items()]


def check_cinder_db(db_url: str) -> dict[str, int]:
    """Refuse (exit 6) while Cinder still has rows on the all-zeros key id."""
    pw = secrets.url_password(db_url)
    redaction.register_secret(pw)
    counts = cinder_db.count_fixed_key_rows(db_url)
    if any(counts.values()):
        detail = ", ".join(f"{n} {t}" for t, n in counts.items() if n)
        raise StateError(f"the Cinder database still has rows on the all-zeros key id {cinder_db.FIXED_KEY_ID} "
                         f"({detail}); refusing to retire {OPTION}",
                         "Finish the key migration first (keytools migrate), then rerun")
    return counts
