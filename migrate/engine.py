"""The migration itself: cinder's decisions and log lines, done concurrently and crash-safely.

Per row (volume or backup on the all-zeros id): journal the intent, create the secret (or reuse
one a previous run stored but never used), journal its ref, set the owner's read ACL, read the
payload back and compare it with fixed_key, then compare-and-swap the row; a volume's snapshots
follow it in the same transaction. The service-specific part (which rows, the CAS, the ACL's
users, the log lines) is a ``migrate.consumer.Consumer``: Cinder, Nova, Glance. A kill at any instant leaves either the row on the all-zeros id (the rerun reuses or
finds the secret) or the row on a secret that was stored and read back. Errors are counted like
cinder counts them (more than ``MAX_KEY_MIGRATION_ERRORS`` aborts), transient Barbican failures
are retried first.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keytools import output
from keytools.errors import ConfigError, Forbidden, KeytoolsError, NotFound, ServiceUnavailable, StateError
from keytools.logs import log_event
from keytools.progress import progress
from keytools.service_errors import SECRET_FORBIDDEN, is_forbidden
from keytools.secret_store import secret_id
from migrate import journal as jr
from migrate import repair
from migrate.barbican import Barbican, PayloadMismatch, cinder_text
from migrate.config import SKIP_CONF_KEY_MANAGER, SKIP_NO_FIXED_KEY, SKIP_NOTHING_TO_MIGRATE, Settings
from migrate.consumer import Consumer, log_status
from migrate.db import CinderDB, Item

LOG = logging.getLogger("keytools.migrate")
MAX_KEY_MIGRATION_ERRORS = 3  # cinder.keymgr.migration: abort after the 4th error

MSG_STARTING = "Starting migration of ConfKeyManager keys."
MSG_NO_ITEMS = ("Not migrating encryption keys because there are no volumes or backups associated "
                "with this host.")
MSG_ABORT = "Aborting encryption key migration (too many errors)."
MSG_ERROR = "Error migrating encryption key: %s"
MSG_CLIENT_ERROR = "Aborting encryption key migration due to error creating Barbican client: %s"
# oslo.log does not summarise these built-in exceptions (formatters._get_error_summary)
_NO_SUMMARY = (TypeError, ValueError, KeyError, AttributeError, ImportError)


def error_summary(exc: BaseException) -> str:
    """What oslo.log appends to a WARNING/ERROR line logged inside an ``except`` block:
    ``: <module.Class>: <message>`` of the active exception (the client library's, as in cinder)."""
    cause = exc.__cause__ if isinstance(exc, KeytoolsError) and exc.__cause__ is not None else exc
    if type(cause) in _NO_SUMMARY:
        return ""
    try:
        text = traceback.format_exception_only(type(cause), cause)[0].rstrip().split("\n", 1)[0]
    except TypeError as err:  # https://bugs.python.org/issue28603, as oslo.log
        text = f"<exception with {err}>"
    return ": " + text


def client_failed(consumer: Consumer, exc: BaseException) -> None:
    """cinder's lines when the Barbican client cannot be created: the start line, the abort
    line (inside cinder's except block, so with oslo.log's summary), then the status lines."""
    LOG.info(MSG_STARTING, extra={"keytools_event": {"event": "start"}})
    text = cinder_text(exc)
    log_event(LOG, logging.ERROR, MSG_CLIENT_ERROR % text + error_summary(exc), "barbican_client_error",
              error=text)
    consumer.log_status()


def check_decision(settings: Settings, db: CinderDB | None = None) -> None:
    """cinder's early exits, logged with cinder's exact line, then refused with our exit code.
    Like cinder, only the unsupported-backend exit is followed by the status lines."""
    skip = settings.skip_reason()
    if skip is None:
        return
    event, message = skip
    level = logging.WARNING if event not in (SKIP_CONF_KEY_MANAGER, SKIP_NO_FIXED_KEY) else logging.INFO
    log_event(LOG, level, message, event, backend=settings.backend)
    if event == SKIP_NO_FIXED_KEY:
        raise ConfigError("fixed_key is not set ([key_manager] or [keymgr] fixed_key)",
                          "Pass --fixed-key-file with the hex key, or --config-file of a node that still has it")
    if event == SKIP_CONF_KEY_MANAGER:
        raise StateError("cinder's [key_manager] backend is still ConfKeyManager",
                         "Deploy Barbican and set [key_manager] backend = barbican first")
    if db is not None:
        log_status(db)
    raise StateError(f"migration to the '{settings.backend}' key_manager backend is not supported",
                     "Set [key_manager] backend = barbican")


@dataclass
class Scope:
    """Filters per service: cinder host/cluster/tables, nova cell; a consumer ignores the others."""

    host: str | None = None
    cluster: str | None = None
    tables: tuple[str, ...] = ("volumes", "backups")
    cell: str | None = None

    def tables_of(self, consumer: Consumer) -> tuple[str, ...]:
        if consumer.service == "cinder":
            return tuple(t for t in self.tables if t in consumer.tables)
        return consumer.tables


@dataclass
class Outcome:
    """What one run did; rendered by the CLI as a table or JSON."""

    total: int = 0
    migrated: dict[str, int] = field(default_factory=lambda: {"volumes": 0, "snapshots": 0, "backups": 0})
    service: str = "cinder"
    reused: int = 0
    lost: int = 0
    errors: int = 0
    abandoned: int = 0  # rows whose attempt was in flight when the run aborted (not cinder errors)
    aborted: bool = False
    repaired_snapshots: int = 0
    snapshots_left: list[dict[str, Any]] = field(default_factory=list)  # stranded, left alone: why
    orphans: list[dict[str, str]] = field(default_factory=list)
    deleted_orphans: int = 0
    remaining: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    skipped: str | None = None
    journal: str = ""

    def as_dict(self) -> dict[str, Any]:
        done = sum(n for t, n in self.migrated.items() if t != "snapshots")
        return {"service": self.service, "total": self.total, "migrated": dict(self.migrated),
                "reused_secrets": self.reused, "lost_races": self.lost, "errors": self.errors,
                "abandoned": self.abandoned, "aborted": self.aborted,
                "repaired_snapshots": self.repaired_snapshots,
                "snapshots_left": self.snapshots_left, "orphans": self.orphans,
                "deleted_orphans": self.deleted_orphans, "remaining": self.remaining,
                "seconds": round(self.seconds, 3),
                "rate_per_s": round(done / self.seconds, 1) if self.seconds else None,
                "skipped": self.skipped, "journal": self.journal}

    @classmethod
    def for_consumer(cls, consumer: Consumer, journal_path: Path) -> Outcome:
        """An empty outcome with the counters this service reports (cinder: its snapshots too)."""
        return cls(journal=str(journal_path), service=consumer.service,
                   migrated=({"volumes": 0, "snapshots": 0, "backups": 0}
                             if consumer.service == "cinder" else dict.fromkeys(consumer.tables, 0)))


class Migrator:
    """One run against one service's objects (a ``Consumer``) and one Barbican.

    ``barbican`` may be None while there is nothing to migrate (``has_work`` is False) and no
    read-back or cleanup needs it. ``journal`` is an open ``Journal`` or its path: a path is
    opened on the first record (a run with nothing to do and nothing to reconcile writes none)
    and closed by ``close()``."""

    def __init__(self, settings: Settings, consumer: Consumer, barbican: Barbican | None,
                 journal: jr.Journal | Path, concurrency: int = 8, progress: bool | None = None) -> None:
        if not settings.fixed_key:
            raise ConfigError("fixed_key is not set", "Pass --fixed-key-file")
        self.key: bytes = settings.fixed_key
        self.settings = settings
        self.consumer = consumer
        self.barbican = barbican
        self.path = journal.path if isinstance(journal, jr.Journal) else Path(journal)
        self._journal = journal if isinstance(journal, jr.Journal) else None
        self._owned: jr.Journal | None = None
        self.concurrency = max(1, concurrency)
        self.progress = output.is_tty() if progress is None else progress
        self._force_bar = progress is True  # --progress: draw it even when stderr is not a terminal
        self.replay = jr.replay(self.path)
        self.outcome = Outcome.for_consumer(consumer, self.path)
        self._counted: Scope | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._gate = threading.Condition()  # admission: who may start a row now
        self._inflight = 0
        self._probing = True  # one row at a time until one succeeds, and again after any error
        self._errors: list[BaseException] = []
        self._uncertain: list[tuple[str, str]] = []
        self._done = 0
        self._start = 0.0

    @property
    def journal(self) -> jr.Journal:
        if self._journal is None:
            self._journal = self._owned = jr.Journal(self.path)
        return self._journal

    def close(self) -> None:
        """Close the journal if this Migrator opened it."""
        if self._owned is not None:
            self._owned.close()

    def __enter__(self) -> Migrator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _barbican(self) -> Barbican:
        if self.barbican is None:
            raise KeytoolsError("internal error: this run needs Barbican but was given none")
        return self.barbican

    # ---- per row ---------------------------------------------------------------------------------

    def _secret_for(self, item: Item) -> tuple[str, bool]:
        """A secret holding fixed_key for this row: a stored, unused one if a previous run left
        one, else a new one. Returns (ref, reused)."""
        spare = self.replay.reusable(item.table, item.id)
        if spare:
            try:
                self._barbican().check_payload(spare, self.key)
                return spare, True
            except (PayloadMismatch, KeytoolsError) as exc:
                LOG.debug("not reusing %s for %s %s: %s", spare, item.kind, item.id, exc)
        self.journal.record("intent", item.table, item.id, name=jr.secret_name(item.table, item.id))
        ref, uncertain = self._barbican().create(jr.secret_name(item.table, item.id), self.key)
        self.journal.record("stored", item.table, item.id, ref)
        if uncertain:
            with self._lock:
                self._uncertain.append((item.table, item.id))
        return ref, False

    def migrate_one(self, item: Item) -> None:
        log_event(LOG, logging.INFO, self.consumer.item_line(item), "migrating_item", table=item.table, id=item.id,
                  host=item.host, service=self.consumer.service, **({"cell": item.where} if item.where else {}))
        ref, reused = self._secret_for(item)
        self._barbican().grant_read(ref, self.consumer.readers(item))
        if not reused:  # a reused secret was read back just now
            self._barbican().check_payload(ref, self.key)  # never point a row at a secret not read back
        new_id = secret_id(ref)
        won, snaps = self.consumer.swap(item, new_id)
        if not won:
            self.journal.record("lost", item.table, item.id, ref)
            with self._lock:
                self.outcome.lost += 1
            log_event(LOG, logging.WARNING, f"{item.kind.capitalize()} {item.id} was migrated by another run "
                      f"meanwhile; secret {new_id} is unused", "lost_race", table=item.table, id=item.id,
                      host=item.host, secret_id=new_id)
            return
        self.journal.record("done", item.table, item.id, ref)
        with self._lock:
            self._done += 1
            self.outcome.migrated[item.table] = self.outcome.migrated.get(item.table, 0) + 1
            if snaps:
                self.outcome.migrated["snapshots"] += snaps
            self.outcome.reused += int(reused)
            done = self._done
        elapsed = max(time.monotonic() - self._start, 1e-6)
        log_event(LOG, logging.DEBUG if self.progress else logging.INFO,
                  f"Migrated {item.kind} {item.id} to Barbican secret {new_id}"
                  + (f" and {snaps} snapshot(s)" if snaps else "")
                  + f" ({done}/{self.outcome.total}, {done / elapsed:.1f}/s)",
                  "migrated", table=item.table, id=item.id, host=item.host, secret_id=new_id,
                  snapshots=snaps, reused=reused, done=done, total=self.outcome.total,
                  rate=round(done / elapsed, 1))

    # ---- the run -------------------------------------------------------------------------------------

    def _items(self, scope: Scope) -> Iterator[Item]:
        for table in scope.tables_of(self.consumer):
            yield from self.consumer.items(table, scope)

    def _resolve_lost_refs(self) -> None:
        """Rows whose secret was being created when a previous run died: ask Barbican by name."""
        for table, row_id in self.replay.unresolved_intents():
            refs = self._barbican().find(jr.secret_name(table, row_id))
            st = self.replay.row(table, row_id)
            for ref in refs:
                if ref not in st.refs:
                    st.refs.append(ref)
            st.intents = len(st.refs)
            self.journal.record("searched", table, row_id, refs=refs)

    def _search_uncertain(self) -> None:
        """Rows whose create was retried after a timeout or a lost answer: a second secret may
        exist; journal every secret of that name so orphans are reported (and --cleanup works)."""
        for table, row_id in self._uncertain:
            try:
                refs = self._barbican().find(jr.secret_name(table, row_id))
            except KeytoolsError as exc:
                LOG.warning("Could not look for extra secrets of %s %s: %s", table, row_id, exc.message)
                continue
            self.journal.record("searched", table, row_id, refs=refs)

    def _record_error(self, item: Item, exc: BaseException) -> None:
        """cinder's budget: an error line for each of the first MAX+1 errors, the abort line right
        after the last one, and nothing cinder would not have logged after it. A row whose attempt
        was already in flight when the run aborted gets keytools' own warning instead."""
        text = cinder_text(exc)
        with self._lock:
            self._errors.append(exc)
            if self._stop.is_set():
                self.outcome.abandoned += 1
                log_event(LOG, logging.WARNING, f"{item.kind.capitalize()} {item.id} was not migrated: the "
                          f"migration was aborted (too many errors); last error: {text}", "item_abandoned",
                          table=item.table, id=item.id, host=item.host, error=text)
                return
            self.outcome.errors += 1
            summary = error_summary(exc)  # cinder logs both lines inside its except block
            log_event(LOG, logging.ERROR, MSG_ERROR % text + summary, "item_error", table=item.table,
                      id=item.id, host=item.host, error=text)
            if self.outcome.errors > MAX_KEY_MIGRATION_ERRORS:
                self._stop.set()
                self.outcome.aborted = True
                log_event(LOG, logging.ERROR, MSG_ABORT + summary, "aborted", errors=self.outcome.errors)
        with self._gate:
            self._gate.notify_all()

    def has_work(self, scope: Scope) -> bool:
        """Rows to migrate in scope, or a secret a killed run may have created but not journaled
        (counted once per scope: ``run`` reuses the count)."""
        if self._counted != scope:
            self.outcome.total = sum(self.consumer.count(t, scope) for t in scope.tables_of(self.consumer))
            self._counted = scope
        return bool(self.outcome.total or self.replay.unresolved_intents())

    def needs_read_back(self, scope: Scope) -> bool:
        """With nothing to migrate, only a Barbican read-back can tell whether some stranded
        snapshot may be repaired (cinder only)."""
        if self.consumer.service != "cinder":
            return False
        db = getattr(self.consumer, "db")
        return any(d.reason == repair.NOT_CHECKED for d in repair.assess(
            db, scope.host, scope.cluster, "volumes" in scope.tables, self.path, None))

    def run(self, scope: Scope, cleanup: bool = False) -> Outcome:
        """The whole job for this service: cinder's "Not migrating ..." exit when there is
        nothing to do (stranded snapshots, reconciling and orphans are still handled), else the
        migration. Raises after the closing status lines if any row failed."""
        if not self.has_work(scope):
            return self._nothing_to_do(scope, cleanup)
        self._barbican()
        self.journal  # noqa: B018 - opened here, never first in a worker thread
        start = time.monotonic()
        self._start = start
        LOG.info(MSG_STARTING, extra={"keytools_event": {"event": "start", "host": scope.host,
                                                          "concurrency": self.concurrency}})
        self.outcome.total = sum(self.consumer.count(t, scope) for t in scope.tables_of(self.consumer))
        self._repair(scope)
        reconcile(self.consumer, self.journal, self.replay)
        self._resolve_lost_refs()
        show = (True if self._force_bar else None) if self.progress and self.outcome.total else False
        with progress(self.outcome.total, "Migrating", enabled=show, show_pos=False) as advance:
            self._pump(self._items(scope), advance)
        self._search_uncertain()
        self.outcome.orphans = self.find_orphans()
        if cleanup and not self.outcome.aborted:
            self.outcome.deleted_orphans = self.delete_orphans(self.outcome.orphans)
        self.outcome.remaining = self.consumer.log_status()
        self.outcome.seconds = time.monotonic() - start
        if self.outcome.aborted or self._errors:
            raise self._final_error()
        return self.outcome

    def _nothing_to_do(self, scope: Scope, cleanup: bool) -> Outcome:
        """cinder's line for a host with nothing on the all-zeros id (keytools' own for Nova and
        Glance); stranded snapshots are repaired (read back if Barbican is given), rows a killed
        run swapped are journaled, orphans reported (deleted with ``cleanup`` and Barbican)."""
        outcome = self.outcome
        barbican = self.barbican
        repaired, outcome.snapshots_left = self.consumer.repair(
            scope, self.path, (lambda k: barbican.holds(k, self.key)) if barbican else None)
        outcome.repaired_snapshots = len(repaired)
        if self.consumer.service == "cinder":
            log_event(LOG, logging.INFO, MSG_NO_ITEMS, SKIP_NOTHING_TO_MIGRATE, host=scope.host)
        else:
            log_event(LOG, logging.INFO, f"Not migrating {self.consumer.service} keys because no "
                      f"{'/'.join(self.consumer.tables)} use the all-zeros key id.", "nothing_to_migrate",
                      service=self.consumer.service)
        outcome.skipped = SKIP_NOTHING_TO_MIGRATE
        if unrecorded_done(self.consumer, self.replay):  # the journal is opened only to write
            reconcile(self.consumer, self.journal, self.replay)
        outcome.orphans = find_orphans(self.consumer, self.replay)
        if outcome.orphans and cleanup and barbican is not None:
            outcome.deleted_orphans = self.delete_orphans(outcome.orphans)
        outcome.remaining = self.consumer.log_status()
        return outcome

    def _pump(self, items: Iterator[Item], tick: Callable[[int], None] | None) -> None:
        """Feed the pool with at most ``4 x concurrency`` rows in flight: memory stays flat."""
        limit = self.concurrency * 4
        pending: set[Future[None]] = set()
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="migrate") as pool:
            for item in items:
                if self._stop.is_set():
                    break
                while len(pending) >= limit:
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    if tick:
                        tick(len(finished))
                future = pool.submit(self._guarded, item)
                pending.add(future)
            finished, pending = wait(pending)
            if tick:
                tick(len(finished))

    def _admit(self) -> bool:
        """Wait until this row may start: one at a time while probing, else ``concurrency``."""
        with self._gate:
            while not self._stop.is_set() and self._inflight >= (1 if self._probing else self.concurrency):
                self._gate.wait()
            if self._stop.is_set():
                return False
            self._inflight += 1
            return True

    def _release(self, ok: bool) -> None:
        with self._gate:
            self._inflight -= 1
            if ok:
                self._probing = False
            self._gate.notify_all()

    def _guarded(self, item: Item) -> None:
        """One row, admitted through the gate: after any error no new row starts until the rows
        in flight are done, and then only one at a time until one succeeds (cinder is serial)."""
        if not self._admit():
            return
        ok = False
        try:
            self.migrate_one(item)
            ok = True
        except Exception as exc:  # noqa: BLE001 - counted like cinder, reported at the end
            with self._gate:
                self._probing = True
            self._record_error(item, exc)
        finally:
            self._release(ok)

    def _final_error(self) -> KeytoolsError:
        last = self._errors[-1] if self._errors else None
        where = f"{self.outcome.errors} error(s)" + (", aborted" if self.outcome.aborted else "")
        hint = ("Fix the cause and run 'keytools migrate run' again: it continues where this run "
                "stopped and reuses the secrets already stored")
        if any(is_forbidden(e) for e in self._errors):
            return Forbidden(f"Error migrating encryption key: {SECRET_FORBIDDEN} ({where})",
                             "Grant the role with 'keytools migrate run --grant-creator --admin-cloud NAME' "
                             "or 'openstack role add --user cinder --project service creator'")
        if isinstance(last, KeytoolsError) and not isinstance(last, ServiceUnavailable):
            return type(last)(f"migration failed ({where}): {cinder_text(last)}", hint)
        return ServiceUnavailable(f"migration failed ({where}): {cinder_text(last) if last else 'unknown'}", hint)

    # ---- repair and orphans -----------------------------------------------------------------------------

    def _repair(self, scope: Scope) -> None:
        repaired, left = self.consumer.repair(scope, self.path,
                                              lambda key: self._barbican().holds(key, self.key))
        self.outcome.repaired_snapshots += len(repaired)
        self.outcome.snapshots_left = left

    def find_orphans(self) -> list[dict[str, str]]:
        return find_orphans(self.consumer, jr.replay(self.path))

    def delete_orphans(self, orphans: list[dict[str, str]]) -> int:
        deleted = 0
        for orphan in orphans:
            if self.consumer.referenced(secret_id(orphan["ref"])):
                continue  # a row uses it after all (another run's secret found by name)
            try:
                self._barbican().delete(orphan["ref"])
            except NotFound:
                pass  # already gone: as good as deleted
            except KeytoolsError as exc:
                LOG.warning("Could not delete orphan secret %s: %s", orphan["ref"], exc.message)
                continue
            self.journal.record("deleted", ref=orphan["ref"])
            deleted += 1
            log_event(LOG, logging.INFO, f"Deleted orphan secret {secret_id(orphan['ref'])}", "orphan_deleted",
                      table=orphan["table"], id=orphan["id"], secret_id=secret_id(orphan["ref"]))
        return deleted


def unrecorded_done(consumer: Consumer, replay: jr.Replay) -> list[tuple[str, str, str]]:
    """Rows a killed run swapped but could not journal as ``done`` (killed between the
    compare-and-swap and the fsync): the row points at one of its journaled secrets."""
    found = []
    for (table, row_id), st in replay.rows.items():
        if st.done_ref or not st.refs:
            continue
        current = consumer.current_key(table, row_id)
        ref = next((r for r in st.refs if current and secret_id(r) == current), None)
        if ref:
            found.append((table, row_id, ref))
    return found


def reconcile(consumer: Consumer, journal: jr.Journal, replay: jr.Replay) -> int:
    """Journal those rows as done, so verify checks them and they are never offered for reuse."""
    rows = unrecorded_done(consumer, replay)
    for table, row_id, ref in rows:
        journal.record("done", table, row_id, ref, reconciled=True)
        replay.row(table, row_id).done_ref = ref
    return len(rows)


def find_orphans(consumer: Consumer, replay: jr.Replay) -> list[dict[str, str]]:
    """Secrets this journal knows were made for a row that points elsewhere (or that holds two)."""
    found = []
    for (table, row_id), st in replay.rows.items():
        if not st.refs:
            continue
        current = consumer.current_key(table, row_id)
        for ref in replay.orphans(table, row_id, current):
            if not consumer.referenced(secret_id(ref)):
                found.append({"table": table, "id": row_id, "ref": ref, "secret_id": secret_id(ref)})
    return found


__all__ = ["MSG_NO_ITEMS", "Migrator", "Scope", "Outcome", "check_decision", "find_orphans"]
