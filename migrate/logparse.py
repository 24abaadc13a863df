"""Read cinder-volume / cinder-backup logs (and keytools' own, text or JSON) into per-host summaries.

cinder's migration says little: one ``Migrating <type> <id> ...`` line before each Barbican call,
no success line, ``Error migrating encryption key: ...`` per failure, and global status lines at
the end. So: migrated = attempted - errors, per run (a run starts at ``Starting migration`` or a
``Not migrating`` line, or when the pid/request id changes). The host is not in the lines: it
comes from the operator (``HOST=FILE``) or the file name (``ctl-0-cinder-volume.log`` -> ctl-0).
Both the documented wording and the one in today's cinder are accepted.
"""

from __future__ import annotations

import glob
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keytools import untrusted_json
from keytools.errors import UsageError
from keytools.fileutil import open_user_file

LINE = re.compile(r"^(?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) (?P<pid>\d+) (?P<level>[A-Z]+) "
                  r"(?P<logger>\S+) \[(?P<ctx>[^\]]*)\] (?P<msg>.*)$")

# (event, pattern) in match order; the message is matched from its start.
PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("not_migrating_confkeymanager_in_use",
     re.compile(r"Not migrating encryption keys because the ConfKeyManager is still in use")),
    ("not_migrating_fixed_key_not_in_use",
     re.compile(r"Not migrating encryption keys because the ConfKeyManager's fixed_key is not in use")),
    ("not_migrating_unsupported_backend",
     re.compile(r"Not migrating encryption keys because migration to the '(?P<backend>[^']*)' "
                r"key_manager backend is not supported")),
    ("not_migrating_no_volumes_or_backups",
     re.compile(r"Not migrating encryption keys because there are no volumes (?:or backups )?"
                r"associated with this host")),
    ("start", re.compile(r"Starting migration of ConfKeyManager keys")),
    ("migrating_item", re.compile(r"Migrating (?P<type>\w+) (?P<id>[0-9a-fA-F-]{32,36}) encryption key to Barbican")),
    ("item_error", re.compile(r"Error migrating encryption key: (?P<error>.*)")),
    ("aborted", re.compile(r"Aborting encryption key migration \(too many errors\)")),
    ("item_abandoned", re.compile(r"(?:Volume|Backup) (?P<id>[0-9a-fA-F-]{32,36}) was not migrated: the "
                                  r"migration was aborted")),
    ("client_error", re.compile(r"4xx Client error: (?P<error>.*)")),
    ("barbican_client_error", re.compile(r"Aborting encryption key migration due to error creating "
                                         r"Barbican client: (?P<error>.*)")),
    ("status_no_volumes", re.compile(r"No volumes are using the ConfKeyManager's encryption_key_id")),
    ("status_no_backups", re.compile(r"No backups are (?:known to be )?using the ConfKeyManager's encryption_key_id")),
    ("status_volumes_remaining", re.compile(r"There are still (?P<count>\d+) volume\(s\) using the ConfKeyManager")),
    ("status_backups_remaining",
     re.compile(r"There are still (?P<count>\d+) backups?\(s\) using the ConfKeyManager")),
]
EVENTS = frozenset({e for e, _ in PATTERNS} | {"migrated"})
SKIPS = {e for e, _ in PATTERNS if e.startswith("not_migrating_")}
MAX_LINE = 64 * 1024  # a log line longer than this is cut: no migration line comes close
MAX_COUNT_DIGITS = 18  # fits a database's 64-bit row count
STATUS = {"status_no_volumes", "status_no_backups", "status_volumes_remaining", "status_backups_remaining"}


@dataclass
class Run:
    """One service start's migration, as its log lines tell it."""

    pid: str | None = None
    request_id: str | None = None
    started: bool = False
    attempted: int = 0
    attempted_by_type: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    abandoned: int = 0  # keytools: in flight when the run aborted
    aborted: bool = False
    skip_reason: str | None = None
    volumes_remaining: int | None = None
    backups_remaining: int | None = None
    last_status: str | None = None
    last_error: str | None = None
    first_ts: str | None = None
    last_ts: str | None = None
    confirmed: int | None = None  # keytools' JSON/"Migrated" lines: a real success count

    @property
    def migrated(self) -> int:
        return self.confirmed if self.confirmed is not None else max(self.attempted - self.errors - self.abandoned, 0)

    def as_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, "request_id": self.request_id, "started": self.started,
                "attempted": self.attempted, "attempted_by_type": self.attempted_by_type,
                "migrated": self.migrated, "errors": self.errors, "aborted": self.aborted,
                "skip_reason": self.skip_reason, "volumes_remaining": self.volumes_remaining,
                "backups_remaining": self.backups_remaining, "last_status": self.last_status,
                "last_error": self.last_error, "first": self.first_ts, "last": self.last_ts}


@dataclass
class Event:
    event: str
    ts: str | None
    pid: str | None
    request_id: str | None
    level: str | None
    message: str
    fields: dict[str, Any]


def classify(message: str) -> tuple[str, dict[str, Any]] | None:
    for event, pattern in PATTERNS:
        m = pattern.search(message)
        if m:
            return event, {k: v for k, v in m.groupdict().items() if v is not None}
    if message.startswith("Migrated ") and " to Barbican secret " in message:
        return "migrated", {}
    return None


def _request_id(ctx: str) -> str | None:
    m = re.search(r"req-[0-9a-f-]{36}", ctx)
    return m.group(0) if m else None


def _text(value: Any) -> str | None:
    """A JSON line's scalar field as text; anything else (a list, an object) is not believed."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    return str(value) if value != "" else None


def _json_event(line: str) -> Event | None:
    """A keytools JSON log line as an event; None for a line that is not one (or not JSON)."""
    try:
        doc = untrusted_json.loads(line, "log line", max_bytes=MAX_LINE)
    except UsageError:
        return None
    if not isinstance(doc, dict):
        return None
    msg = _text(doc.get("message")) or ""
    found = classify(msg)
    event = doc.get("event") if isinstance(doc.get("event"), str) and doc.get("event") in EVENTS else None
    if found is None and event is None:
        return None
    name, fields = found if found else (event, {})
    return Event(name or "", _text(doc.get("timestamp")), _text(doc.get("pid")), _text(doc.get("request_id")),
                 _text(doc.get("level")), msg, fields)


def events(lines: Iterable[str]) -> list[Event]:
    """Migration events from oslo.log text lines or keytools JSON lines; others are skipped."""
    out: list[Event] = []
    for raw in lines:
        line = raw.rstrip("\n")
        if line.startswith("{"):
            event = _json_event(line)
            if event is not None:
                out.append(event)
            continue
        m = LINE.match(line)
        if not m:
            continue
        found = classify(m.group("msg"))
        if found is None:
            continue
        out.append(Event(found[0], m.group("ts"), m.group("pid"), _request_id(m.group("ctx")),
                         m.group("level"), m.group("msg"), found[1]))
    return out


def runs(evts: list[Event]) -> list[Run]:
    """Group events into service starts."""
    result: list[Run] = []
    cur: Run | None = None
    for ev in evts:
        new_process = cur is not None and ((ev.pid and cur.pid and ev.pid != cur.pid)
                                           or (ev.request_id and cur.request_id and ev.request_id != cur.request_id))
        if cur is None or new_process or ev.event == "start" and cur.started or ev.event in SKIPS and (
                cur.started or cur.skip_reason):
            cur = Run(pid=ev.pid, request_id=ev.request_id, first_ts=ev.ts)
            result.append(cur)
        cur.last_ts = ev.ts or cur.last_ts
        if ev.event == "start":
            cur.started = True
        elif ev.event in SKIPS:
            cur.skip_reason = ev.event
        elif ev.event == "migrating_item":
            cur.attempted += 1
            kind = ev.fields.get("type", "?")
            cur.attempted_by_type[kind] = cur.attempted_by_type.get(kind, 0) + 1
        elif ev.event == "migrated":
            cur.confirmed = (cur.confirmed or 0) + 1
        elif ev.event == "item_error":
            cur.errors += 1
            cur.last_error = ev.fields.get("error")
        elif ev.event == "aborted":
            cur.aborted = True
        elif ev.event == "item_abandoned":
            cur.abandoned += 1
        elif ev.event == "barbican_client_error":
            cur.aborted = True
            cur.last_error = ev.fields.get("error")
        elif ev.event in STATUS:
            cur.last_status = ev.message
            if ev.event == "status_no_volumes":
                cur.volumes_remaining = 0
            elif ev.event == "status_no_backups":
                cur.backups_remaining = 0
            elif ev.event == "status_volumes_remaining":
                cur.volumes_remaining = _count(ev.fields.get("count"))
            else:
                cur.backups_remaining = _count(ev.fields.get("count"))
    return result


def _count(text: Any) -> int | None:
    """A remaining-rows count from a status line; None (unknown) for one no database can hold."""
    if not isinstance(text, str) or not text.isdigit() or len(text) > MAX_COUNT_DIGITS:
        return None
    return int(text)


def host_of(path: str) -> str:
    """ctl-0-cinder-volume.log -> ctl-0; otherwise the file's stem."""
    stem = Path(path).name
    for suffix in (".gz", ".log", ".json", ".jsonl"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    for marker in ("-cinder-volume", "-cinder-backup", "-keytools", ".cinder-volume", ".cinder-backup"):
        if marker in stem:
            return stem.split(marker)[0] or stem
    return stem


def service_of(path: str, evts: list[Event]) -> str:
    name = Path(path).name
    if "backup" in name:
        return "cinder-backup"
    if "volume" in name:
        return "cinder-volume"
    types = {e.fields.get("type", "").lower() for e in evts if e.event == "migrating_item"}
    if types and types <= {"backup"}:
        return "cinder-backup"
    return "keytools" if any(e.event == "migrated" for e in evts) else "cinder-volume"


def _lines(raw: io.BufferedIOBase | Any) -> Iterator[str]:
    """The file's lines as text, each cut at MAX_LINE bytes (a file with no newline is not read
    whole into memory; the rest of a long line is skipped)."""
    while True:
        chunk = raw.readline(MAX_LINE)
        if not chunk:
            return
        if len(chunk) == MAX_LINE and not chunk.endswith(b"\n"):
            while (rest := raw.readline(MAX_LINE)) and not rest.endswith(b"\n"):
                pass
        yield chunk.decode("utf-8", "replace")


def parse_file(spec: str) -> dict[str, Any]:
    """``FILE`` or ``HOST=FILE`` -> summary of the file's runs (the last run is the current state)."""
    host, _, path = spec.rpartition("=") if "=" in spec and not Path(spec).exists() else ("", "", spec)
    with open_user_file(path, "log", "Check the path and permissions", path_first=True,
                        missing_hint="Give cinder-volume/cinder-backup log files") as raw:
        try:
            evts = events(_lines(raw))
        except OSError as exc:
            raise UsageError(f"log {path}: cannot read it ({exc.strerror or type(exc).__name__})",
                             "Check the path and permissions") from None
    file_runs = runs(evts)
    last = file_runs[-1] if file_runs else None
    return {"host": host or host_of(path), "service": service_of(path, evts), "file": path,
            "runs": [r.as_dict() for r in file_runs], "last": last.as_dict() if last else None}


def expand(specs: list[str]) -> list[str]:
    """``[HOST=]FILE`` or ``[HOST=]GLOB`` (as a shell would expand it, for quoted patterns) ->
    ``[HOST=]FILE`` per file, in order, each once. A pattern matching nothing is an error."""
    out: list[str] = []
    for spec in specs:
        host, _, path = spec.rpartition("=") if "=" in spec and not Path(spec).exists() else ("", "", spec)
        if glob.has_magic(path) and not Path(path).exists():
            matches = sorted(m for m in glob.glob(path) if not Path(m).is_dir())
            if not matches:
                raise UsageError(f"log {path}: no file matches this pattern",
                                 "Check the directory and the pattern (e.g. '/var/log/cinder/*.log')")
            out.extend(f"{host}={m}" if host else m for m in matches)
        else:
            out.append(spec)
    seen: set[str] = set()
    return [s for s in out if not (s in seen or seen.add(s))]


def summarize(specs: list[str]) -> list[dict[str, Any]]:
    """One row per log file: host, service and what its latest migration run did."""
    rows = []
    for spec in expand(specs):
        parsed = parse_file(spec)
        last = parsed["last"] or {}
        total_migrated = sum(r["migrated"] for r in parsed["runs"])
        total_errors = sum(r["errors"] for r in parsed["runs"])
        state = ("no migration lines" if not last else
                 "aborted" if last["aborted"] else
                 last["skip_reason"] if last["skip_reason"] else
                 "errors" if last["errors"] else
                 "started" if last["started"] and not last["last_status"] else
                 "done" if last["started"] else "-")
        rows.append({"host": parsed["host"], "service": parsed["service"], "file": parsed["file"],
                     "runs": len(parsed["runs"]), "started": bool(last.get("started")),
                     "migrated": total_migrated, "errors": total_errors,
                     "aborted": bool(last.get("aborted")), "state": state,
                     "volumes_remaining": last.get("volumes_remaining"),
                     "backups_remaining": last.get("backups_remaining"),
                     "last_status": last.get("last_status"), "last_error": last.get("last_error")})
    return rows
