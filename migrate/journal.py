"""An append-only, fsynced journal of the secrets a migration creates, so a crash loses nothing.

Each line is one JSON record, written and fsynced before the step it describes is trusted:
``intent`` before a secret is created (with the secret's name, which Barbican can be searched by
if the process dies before it learns the ref), ``stored`` as soon as Barbican returns the ref
(before the ACL and the read-back), ``searched`` after a rerun looked such a lost ref up by name,
``done`` after the row's compare-and-swap won (or, with ``reconciled``, written by a rerun for a
row a killed run swapped before it could journal it),
``lost`` when another run (or cinder) migrated the row first, ``deleted`` after ``--cleanup``.
Replaying the file tells a rerun which secret to reuse for a row and which secrets are orphans.
No key material is ever written here; the file is 0600 anyway because ids and users are private.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keytools import fileutil
from keytools.cinder_db import FIXED_KEY_ID

NAME_PREFIX = "keytools-migrate"


def secret_name(table: str, row_id: str) -> str:
    """The Barbican secret name for a row: findable after a crash that lost the ref."""
    return f"{NAME_PREFIX}:{table}:{row_id}"


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base, "keytools", "migrate")


def journal_path(state_dir: str | os.PathLike[str] | None, db_identity: str) -> Path:
    """One journal per Cinder database (keyed by its URL without password)."""
    digest = hashlib.sha256(db_identity.encode()).hexdigest()[:16]
    return Path(state_dir or default_state_dir(), f"journal-{digest}.jsonl").resolve()


@dataclass
class RowState:
    """What the journal knows about one row."""

    refs: list[str] = field(default_factory=list)  # secrets stored for it, oldest first
    intents: int = 0
    done_ref: str | None = None
    lost_refs: list[str] = field(default_factory=list)


@dataclass
class Replay:
    rows: dict[tuple[str, str], RowState] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)

    def row(self, table: str, row_id: str) -> RowState:
        return self.rows.setdefault((table, row_id), RowState())

    def reusable(self, table: str, row_id: str) -> str | None:
        """A stored secret for this row that nothing points at yet (newest first)."""
        st = self.rows.get((table, row_id))
        if not st or st.done_ref:
            return None
        for ref in reversed(st.refs):
            if ref not in st.lost_refs and ref not in self.deleted:
                return ref
        return None

    def unresolved_intents(self) -> list[tuple[str, str]]:
        """Rows where a secret may have been created but its ref never reached the journal."""
        return [key for key, st in self.rows.items() if st.intents > len(st.refs) and not st.done_ref]

    def done(self) -> Iterator[tuple[str, str, str]]:
        for (table, row_id), st in self.rows.items():
            if st.done_ref:
                yield table, row_id, st.done_ref

    def orphans(self, table: str, row_id: str, current_key: str | None) -> list[str]:
        """Secrets made for a row that the row does not point at (and will not: it moved on)."""
        st = self.rows.get((table, row_id))
        if not st:
            return []
        keep = st.done_ref or current_key
        if not keep or keep == FIXED_KEY_ID:
            spare = self.reusable(table, row_id)  # still to migrate: one secret is kept for reuse
            return [r for r in st.refs if r != spare and r not in self.deleted]
        return [r for r in st.refs if r.rpartition("/")[2] != keep.rpartition("/")[2] and r not in self.deleted]


class Journal:
    """Thread-safe appender; each record is one ``write`` on an O_APPEND fd, then fsync."""

    def __init__(self, path: Path) -> None:
        self.path = path
        fileutil.private_dir(path.parent)
        self._lock = threading.Lock()
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.chmod(path, 0o600)

    def record(self, op: str, table: str | None = None, row_id: str | None = None, ref: str | None = None,
               **extra: Any) -> None:
        doc: dict[str, Any] = {"ts": round(time.time(), 3), "pid": os.getpid(), "op": op}
        if table:
            doc["table"] = table
        if row_id:
            doc["id"] = row_id
        if ref:
            doc["ref"] = ref
        doc.update(extra)
        line = (json.dumps(doc, separators=(",", ":")) + "\n").encode()
        with self._lock:
            fd = self._fd
            os.write(fd, line)  # one write on an O_APPEND fd: lines never interleave
        os.fsync(fd)  # outside the lock: concurrent workers' fsyncs overlap instead of queueing

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def records(path: Path) -> Iterator[dict[str, Any]]:
    if not path.exists():
        return
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            try:
                doc = json.loads(line)
            except ValueError:
                continue  # a torn last line from a kill -9
            if isinstance(doc, dict):
                yield doc


def iter_done(path: Path) -> Iterator[tuple[str, str, str]]:
    """(table, id, ref) of every row this journal migrated, streamed (verify)."""
    for doc in records(path):
        if doc.get("op") == "done" and doc.get("table") and doc.get("id") and doc.get("ref"):
            yield doc["table"], doc["id"], doc["ref"]


def replay(path: Path) -> Replay:
    """Read a journal, keeping only rows that still matter (not cleanly done), so memory stays
    small however many rows were migrated."""
    state = Replay()
    for doc in records(path):
        op = doc.get("op")
        ref = doc.get("ref")
        if op == "deleted" and ref:
            state.deleted.add(ref)
            continue
        table, row_id = doc.get("table"), doc.get("id")
        if not table or not row_id:
            continue
        st = state.row(table, row_id)
        if op == "intent":
            st.intents += 1
        elif op == "stored" and ref:
            if ref not in st.refs:
                st.refs.append(ref)
        elif op == "searched":
            for found in doc.get("refs", []):
                if found not in st.refs:
                    st.refs.append(found)
            st.intents = len(st.refs)
        elif op == "done" and ref:
            st.done_ref = ref
            if ref not in st.refs:
                st.refs.append(ref)
            if st.refs == [ref] and not st.lost_refs:
                del state.rows[(table, row_id)]  # clean: nothing left to reuse or clean up
        elif op == "lost" and ref:
            st.lost_refs.append(ref)
            if ref not in st.refs:
                st.refs.append(ref)
    return state
