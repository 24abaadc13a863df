"""``migrate verify``: every row this migration moved still points at a secret that exists, holds
exactly fixed_key (constant-time compare) and that the row's owner may read (ACL).

Rows are streamed from the journal and checked concurrently; only problems are kept in memory.
"""

from __future__ import annotations

import hmac
import threading
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from keytools.errors import KeytoolsError
from migrate import journal as jr
from migrate.barbican import Barbican, key_id
from migrate.consumer import Consumer


class Verifier:
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
        secret = key_id(ref)
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

    def run(self, rows: Iterator[tuple[str, str, str]]) -> dict[str, Any]:
        pending: set[Future[None]] = set()
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="verify") as pool:
            for table, row_id, ref in rows:
                while len(pending) >= self.concurrency * 4:
                    _, pending = wait(pending, return_when=FIRST_COMPLETED)
                pending.add(pool.submit(self.check_row, table, row_id, ref))
            wait(pending)
            for f in pending:
                f.result()
        return {"checked": self.checked, "deleted_rows_skipped": self.skipped_deleted,
                "problems": sorted(self.problems, key=lambda p: (p["table"], p["id"]))}


def verify(consumer: Consumer, barbican: Barbican, key: bytes, journal_path: Path,
           concurrency: int = 8) -> dict[str, Any]:
    consumer.check()
    seen: set[tuple[str, str]] = set()

    def unique() -> Iterator[tuple[str, str, str]]:
        for table, row_id, ref in jr.iter_done(journal_path):
            if (table, row_id) not in seen:
                seen.add((table, row_id))
                yield table, row_id, ref

    report = Verifier(consumer, barbican, key, concurrency).run(unique())
    report["service"] = consumer.service
    report["remaining"] = consumer.remaining()
    db = getattr(consumer, "db", None)
    if consumer.service == "cinder" and db is not None:
        report["stranded_snapshots"] = len(db.stranded_snapshots())
    return report
