"""``keytools migrate run`` as a library call: every selected service, one after the other.

``migrate_services`` checks each service, applies cinder's early exits, holds the per-service
locks, reaches Barbican once (lazily: a service with nothing to migrate needs it only for a
read-back or ``--cleanup``), checks the right to create secrets and runs one ``Migrator`` per
service. A run that fails midway returns what was done so far with the error, so the caller can
render the outcomes and then raise it (as cinder, the status lines are already logged).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keytools.errors import KeytoolsError, UsageError
from migrate import preflight
from migrate.barbican import Barbican
from migrate.config import Settings
from migrate.consumer import CinderConsumer, Consumer
from migrate.engine import Migrator, Outcome, Scope, check_decision, client_failed


@dataclass
class RunOptions:
    """How to run (the ``migrate run`` options that are not sources or scope)."""

    concurrency: int = 8
    cleanup: bool = False
    grant_creator: bool = False
    admin_cloud: str | None = None
    progress: bool | None = None


@dataclass
class RunResult:
    """One ``Outcome`` per service reached; ``error`` is set when a migration failed midway
    (its partial outcome is the last one) and is to be raised after rendering."""

    outcomes: list[Outcome] = field(default_factory=list)
    error: BaseException | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"services": [o.as_dict() for o in self.outcomes]}


def check_cell(consumer: Consumer, cell: str) -> None:
    """``--cell`` must name one of the Nova cells (cell_mappings)."""
    names = [c.name for c in getattr(consumer, "cells").cells]
    if cell not in names:
        raise UsageError(f"--cell {cell}: no such Nova cell (cells: {', '.join(names)})",
                         "Give a cell name from cell_mappings ('nova-manage cell_v2 list_cells')")


def migrate_services(settings: Settings, built: Sequence[tuple[Consumer, Path]], scope: Scope,
                     connect: Callable[[], Barbican], options: RunOptions) -> RunResult:
    """Migrate every service in ``built`` (consumer, journal path); ``connect`` makes the
    Barbican client (called at most once). Errors before any migration started are raised."""
    result = RunResult()
    with contextlib.ExitStack() as held:  # per-service run locks (Glance: no conditional update)
        for consumer, _ in built:
            consumer.check()
            if scope.cell and consumer.service == "nova":
                check_cell(consumer, scope.cell)
        cinder = next((c for c, _ in built if isinstance(c, CinderConsumer)), None)
        check_decision(settings, cinder.db if cinder else None)
        for consumer, path in built:
            exclusive = getattr(consumer, "exclusive", None)
            if exclusive is not None:
                held.enter_context(exclusive(path))
        barbican: Barbican | None = None
        check = None
        for consumer, path in built:
            with Migrator(settings, consumer, barbican, path, options.concurrency, options.progress) as migrator:
                if not migrator.has_work(scope):
                    if barbican is None and (options.cleanup or migrator.needs_read_back(scope)):
                        barbican = migrator.barbican = connect()
                    result.outcomes.append(migrator.run(scope, options.cleanup))
                    continue
                if check is None:
                    try:  # cinder: creating the client authenticates, finds and contacts Barbican
                        barbican = barbican or connect()
                        check = preflight.probe(barbican)
                    except KeytoolsError as exc:
                        client_failed(consumer, exc)
                        raise
                assert barbican is not None
                migrator.barbican = barbican
                preflight.ensure_can_create(barbican, migrator.journal, options.grant_creator,
                                            options.admin_cloud, check)
                try:
                    result.outcomes.append(migrator.run(scope, options.cleanup))
                except Exception as exc:  # noqa: BLE001 - rendered by the caller, then raised
                    result.outcomes.append(migrator.outcome)
                    result.error = exc
                    return result
    return result
