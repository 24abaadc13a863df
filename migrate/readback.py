"""``migrate verify``: read back what the migration made. Every row this migration moved still
points at a secret that exists, holds exactly fixed_key (constant-time compare) and that the row's
owner may read (ACL). (Not the top-level ``verify`` package, which verifies image signatures.)

Rows are streamed from the journal and checked concurrently; only problems are kept in memory.
"""

from __future__ import annotations

import hmac
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keytools.errors import ConfigError, KeytoolsError, ProblemsFound
from keytools.secret_store import secret_id
from migrate import journal as jr
from migrate import luks as lk
from migrate.barbican import Barbican
from migrate.config import Settings
from migrate.consumer import CinderConsumer, Consumer


@dataclass
class ReadbackReport:
    """One service's read-back: rows checked, deleted rows skipped, problems, what is left."""

    service: str
    checked: int = 0
    deleted_rows_skipped: int = 0
    problems: list[dict[str, Any]] = field(default_factory=list)
    remaining: dict[str, int] = field(default_factory=dict)
    stranded_snapshots: int | None = None  # cinder only

    def as_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"checked": self.checked, "deleted_rows_skipped": self.deleted_rows_skipped,
                               "problems": self.problems, "service": self.service, "remaining": self.remaining}
        if self.stranded_snapshots is not None:
            doc["stranded_snapshots"] = self.stranded_snapshots
        return doc


class RowChecker:
    """Checks migrated rows concurrently, keeping only the problems."""

    def __init__(self, consumer: Consumer, barbican: Barbican, key: bytes, concurrency: int = 8) -> None:
        self.consumer = consumer
        self.barbican = barbican
        self.key = key
        self.concurrency = max(1, concurrency)
        self.problems: list[dict[str, Any]] = []
        self.checked = 0
        self.skipped_deleted = 0
        self._lock = threading.Lock()

    def _problem(self, table: str, row_id: str, secret: str, problem: str) -> None:
        with self._lock:
            self.problems.append({"table": table, "id": row_id, "secret_id": secret, "problem": problem})

    def check_row(self, table: str, row_id: str, ref: str) -> None:
        secret = secret_id(ref)
        current = self.consumer.current_key(table, row_id)
        if current is None:
            with self._lock:
                self.skipped_deleted += 1
            return
        if current != secret:
            self._problem(table, row_id, secret, f"row now uses key {current}, not the migrated secret")
            return
        try:
            if not self.barbican.exists(ref):
                self._problem(table, row_id, secret, "secret does not exist (dangling key id)")
                return
            if not hmac.compare_digest(self.barbican.payload(ref), self.key):
                self._problem(table, row_id, secret, "secret does not hold fixed_key")
            expected = getattr(self.consumer, "expected_readers", None)
            if expected is not None:  # glance: every current member of the owner project
                acl = set(self.barbican.acl_users(ref))
                missing = [u for u in expected(table, row_id) if u not in acl]
                if missing:
                    self._problem(table, row_id, secret, f"{len(missing)} member(s) of the owner project not in "
                                  f"the read ACL ({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}; "
                                  "joined after the migration?)")
            else:
                user = self.consumer.owner(table, row_id)
                if user and user not in self.barbican.acl_users(ref):
                    self._problem(table, row_id, secret, f"owner {user} is not in the secret's read ACL")
        except KeytoolsError as exc:
            self._problem(table, row_id, secret, f"cannot check: {exc.message}")
        for p in self.consumer.follower_problems(row_id, secret) if table == "volumes" else []:
            self._problem(p["table"], p["id"], p["secret_id"], p["problem"])
        with self._lock:
            self.checked += 1

    def run(self, rows: Iterator[tuple[str, str, str]]) -> None:
        pending: set[Future[None]] = set()
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="verify") as pool:
            for table, row_id, ref in rows:
                while len(pending) >= self.concurrency * 4:
                    _, pending = wait(pending, return_when=FIRST_COMPLETED)
                pending.add(pool.submit(self.check_row, table, row_id, ref))
            wait(pending)
            for f in pending:
                f.result()


def check_migrated(consumer: Consumer, barbican: Barbican, key: bytes, journal_path: Path,
                   concurrency: int = 8) -> ReadbackReport:
    """Check every row the journal says was migrated (each row once, with its first ``done``)."""
    consumer.check()
    seen: set[tuple[str, str]] = set()

    def unique() -> Iterator[tuple[str, str, str]]:
        for table, row_id, ref in jr.iter_done(journal_path):
            if (table, row_id) not in seen:
                seen.add((table, row_id))
                yield table, row_id, ref

    checker = RowChecker(consumer, barbican, key, concurrency)
    checker.run(unique())
    report = ReadbackReport(consumer.service, checker.checked, checker.skipped_deleted,
                            sorted(checker.problems, key=lambda p: (p["table"], p["id"])), consumer.remaining())
    db = getattr(consumer, "db", None)
    if consumer.service == "cinder" and db is not None:
        report.stranded_snapshots = len(db.stranded_snapshots())
    return report


@dataclass
class VerifyResult:
    """``migrate verify``: one ``ReadbackReport`` per service and, with ``--luks``, the header checks."""

    reports: list[ReadbackReport]
    luks: list[lk.LuksResult] | None = None  # None: --luks not given

    @property
    def problems(self) -> list[dict[str, Any]]:
        return [p for r in self.reports for p in r.problems]

    @property
    def bad_luks(self) -> list[lk.LuksResult]:
        return [r for r in self.luks or [] if not r.ok]

    def as_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = (self.reports[0].as_dict() if len(self.reports) == 1
                               else {"services": [r.as_dict() for r in self.reports]})
        if self.luks is not None:
            doc = {**doc, "luks": [r.as_dict() for r in self.luks]}
        return doc

    def failure(self) -> ProblemsFound | None:
        """The error to raise after the result is shown (exit 1), or None when all is well."""
        problems, bad_luks = self.problems, self.bad_luks
        if not (problems or bad_luks):
            return None
        what = [f"{len(problems)} problem(s) among migrated rows"] if problems else []
        if bad_luks:
            what.append(f"{len(bad_luks)} LUKS header(s) not opened by their key")
        hint = "See the table; rerun 'keytools migrate run' for rows still to migrate"
        if bad_luks:
            hint = ("See the table: a header its key does not open holds data fixed_key cannot decrypt, so do not "
                    "retire fixed_key until it is explained; fix a wrong --luks path or template and rerun")
        return ProblemsFound("; ".join(what), hint)


def luks_check(consumer: CinderConsumer, path: Path, spec: lk.PathSpec, barbican: Barbican, fixed_key: bytes,
               cryptsetup: str) -> list[lk.LuksResult]:
    """Each selected volume's key (Barbican secret, or fixed_key while on the all-zeros id)."""

    def key_for(kid: str | None) -> bytes:
        if kid is None:
            raise KeytoolsError("no such volume in the Cinder database (or deleted)")
        if kid == jr.FIXED_KEY_ID:
            return fixed_key
        return barbican.payload(barbican.ref_of(kid))

    return lk.check_volumes(lk.cinder_volumes(consumer.db, path, spec), spec, key_for, cryptsetup)


def verify_migration(settings: Settings, built: Sequence[tuple[Consumer, Path]], connect: Callable[[], Barbican],
                     concurrency: int = 8, spec: lk.PathSpec | None = None, cryptsetup: str = "") -> VerifyResult:
    """Read back every service's migrated rows (``built``: consumer, journal path) and, with
    ``spec``, open each Cinder volume's LUKS header with its key (read-only)."""
    if not settings.fixed_key:
        raise ConfigError("fixed_key is not set, so secrets cannot be compared with it",
                          "Pass --fixed-key-file or --config-file with [key_manager] fixed_key")
    cinder = next(((c, p) for c, p in built if isinstance(c, CinderConsumer)), None)
    barbican = connect()
    result = VerifyResult([check_migrated(consumer, barbican, settings.fixed_key, path, concurrency)
                           for consumer, path in built])
    if spec:
        result.luks = luks_check(cinder[0], cinder[1], spec, barbican, settings.fixed_key, cryptsetup) \
            if cinder is not None else []
    return result
