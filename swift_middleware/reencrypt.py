"""``keytools swift reencrypt --from-key-id OLD``: rewrite every object still under OLD with the
active root secret, through the proxy's own pipeline.

Each object under OLD (per its raw crypto metadata) gets a server-side copy onto itself through
the encrypting pipeline (internal.encrypting: copy, slo, dlo, symlink, keymaster, encryption):
``PUT ?multipart-manifest=get&symlink=get`` with ``X-Copy-From: <itself>``. The copy middleware
carries content, content-type, user metadata, sysmeta (SLO/symlink/DLO markers) and X-Delete-At;
SLO and DLO manifests and symlinks stay what they are (never their concatenation or target).

Never older data over newer: the PUT carries ``X-Timestamp`` = the object's own timestamp with
its offset + 1 (Swift's internal timestamp offsets, as the container reconciler uses). That is
newer than the object we read but older than anything a user writes after it, so the object
servers refuse (409, the proxy answers 202) if the object changed meanwhile, and the user's write
stays. Last-Modified is unchanged (the offset is not part of it).

Kill -9: an object PUT is atomic on every object server (temp file, rename on commit), so each
object is under OLD or fully under the active key; the truth is Swift's own crypto metadata, and
a rerun re-checks it. The journal (JSON lines, fsynced) records each object rewritten and each
container finished with the digest of what Swift said about it then (containerstate): a rerun
skips a finished container only while that digest is unchanged, and rescans it otherwise (an
object written since by a proxy still on the old key). A container that changed under the pass
(a write the pass did not make) is not journaled as finished.
"""

from __future__ import annotations

import json
import os
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keytools.errors import KeytoolsError, UsageError
from swift_middleware import containerstate, cryptometa, internal, usage
from swift_middleware.proxykeys import ProxyKeys, RootKey, describe

OUTCOMES = ("rewritten", "would_rewrite", "changed_concurrently", "gone", "failed", "skipped")


def resolve_key(km: ProxyKeys, given: str) -> RootKey:
    """OLD given as the option (key_id, key_id_2, encryption_root_secret_2), the secret id (2) or
    the Barbican UUID."""
    text = given.strip()
    for ref in km.keys:
        if text == ref.option or (ref.key_id and text == ref.key_id) \
                or (ref.secret_id is not None and text == ref.secret_id):
            return ref
    names = ", ".join(describe(r) for r in km.keys)
    raise UsageError(f"{km.where}: no root secret {given!r} is configured (known: {names})",
                     f"Give the option name ({km.option_prefix}_<n>), its secret id"
                     + ("" if km.inline else " or its Barbican UUID"))


def require_not_active(km: ProxyKeys, ref: RootKey) -> None:
    if ref.secret_id == km.active_secret_id:
        raise UsageError(f"{km.where}: {ref.option} is the active root secret; re-encrypting onto "
                         "itself changes nothing",
                         "Make another key active first (keytools swift new-key, then "
                         "active_root_secret_id), restart the proxies, then reencrypt from this one")


@dataclass
class ReencryptReport:
    from_option: str
    to_option: str
    dry_run: bool
    counts: dict[str, int] = field(default_factory=lambda: {k: 0 for k in OUTCOMES})
    bytes_rewritten: int = 0
    failures: list[str] = field(default_factory=list)
    containers_skipped_from_journal: int = 0
    containers_changed_since_journal: int = 0
    containers_changed_during_run: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"from": self.from_option, "to": self.to_option, "dry_run": self.dry_run,
                **self.counts, "bytes_rewritten": self.bytes_rewritten,
                "containers_skipped_from_journal": self.containers_skipped_from_journal,
                "containers_changed_since_journal": self.containers_changed_since_journal,
                "containers_changed_during_run": self.containers_changed_during_run,
                "failures": self.failures[:50], "seconds": round(self.seconds, 3)}


class Journal:
    """Append-only JSON lines, fsynced per line (a kill loses at most the line being written).

    ``done_containers``: container -> the digest of its state when it was finished (the last
    entry wins; entries without a digest, from older versions, count as not finished)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.done_containers: dict[str, str] = {}
        self._handle = None
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists():
                for line in path.read_text().splitlines():
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        continue  # a torn last line after a kill
                    if entry.get("event") == "container_done" and entry.get("state"):
                        self.done_containers[entry["container"]] = entry["state"]
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as exc:
            raise UsageError(f"journal {path}: {exc.strerror}", "Give a writable --journal") from None
        self._handle = os.fdopen(fd, "a")

    def write(self, **entry: Any) -> None:
        if self._handle is None:
            return
        self._handle.write(json.dumps(entry, sort_keys=True) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()


class RateLimiter:
    """At most ``rate`` rewrites per second across all green threads (0: unlimited)."""

    def __init__(self, rate: float, sleep: Callable[[float], None]) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.next_at = 0.0
        self.sleep = sleep

    def wait(self) -> None:
        if not self.interval:
            return
        now = time.monotonic()
        at = max(now, self.next_at)
        self.next_at = at + self.interval
        if at > now:
            self.sleep(at - now)


def next_timestamp(headers: dict[str, str]) -> str:
    """The object's own timestamp (data or metadata, whichever is newer) with offset + 1."""
    from swift.common.utils import Timestamp

    lower = {k.lower(): v for k, v in headers.items()}
    stamps = [Timestamp(lower[h]) for h in ("x-backend-timestamp", "x-backend-data-timestamp",
                                            "x-timestamp") if lower.get(h)]
    newest = max(stamps)
    return Timestamp(newest, offset=1).internal  # Timestamp adds this to its own offset


SYMLINK_SYSMETA = "x-object-sysmeta-symlink-target"
LISTING_ETAG = "X-Object-Sysmeta-Container-Update-Override-Etag"
MD5_OF_EMPTY = "d41d8cd98f00b204e9800998ecf8427e"


def rewrite(client: Any, seen: usage.ObjectSeen) -> tuple[str, str]:
    """Server-side copy of the object onto itself; returns (outcome, X-Timestamp used)."""
    from swift.common.internal_client import UnexpectedResponse

    ts = next_timestamp(seen.headers)
    source = urllib.parse.quote(f"{seen.container}/{seen.name}")
    headers = {"X-Copy-From": source, "X-Timestamp": ts, "Content-Length": "0"}
    if any(k.lower() == SYMLINK_SYSMETA for k in seen.headers):
        # The copied (decrypted) listing etag already ends in '; symlink_target=...' and the
        # symlink middleware appends it again: start from the empty etag as a fresh symlink PUT.
        headers[LISTING_ETAG] = MD5_OF_EMPTY
    path = client.make_path(seen.account, seen.container, seen.name)
    try:
        resp = client.make_request("PUT", path, headers, (2, 404, 412),
                                   params={"multipart-manifest": "get", "symlink": "get"})
    except UnexpectedResponse as exc:
        status = getattr(exc.resp, "status_int", None)
        if status == 400 and "delete" in (exc.resp.body or b"").decode("utf-8", "replace").lower():
            return "gone", ts  # X-Delete-At passed between the listing and the copy: it expired
        return "failed", f"{status}: {' '.join(str(exc).split())[:200]}"
    if resp.status_int == 202:
        return "changed_concurrently", ts
    if resp.status_int in (404, 412):
        return "gone", ts
    return "rewritten", ts


def run(setup: internal.ProxySetup, accounts: list[str], from_key: str, journal_path: Path | None,
        dry_run: bool = False, rate_limit: float = 0.0, concurrency: int = 4,
        advance: Callable[[int], None] = lambda _n: None,
        on_total: Callable[[int], None] = lambda _n: None) -> ReencryptReport:
    """Rewrite every object in ``accounts`` that any crypto metadata says is under ``from_key``."""
    from eventlet import GreenPool, sleep

    km = setup.keys
    ref = resolve_key(km, from_key)
    require_not_active(km, ref)
    if not accounts:
        raise UsageError("no account to re-encrypt", "Give --account AUTH_<project id> (repeatable)")
    old = ref.secret_id or cryptometa.DEFAULT_ID
    report = ReencryptReport(ref.option, km.key(km.active_secret_id).option, dry_run)
    raw = internal.make_client(setup, encrypting=False)
    enc = None if dry_run else internal.make_client(setup, encrypting=True)
    journal = Journal(None if dry_run else journal_path)
    limiter = RateLimiter(rate_limit, sleep)
    started = time.monotonic()
    plan: list[tuple[str, str, int]] = []
    for account in accounts:
        if usage.check_account(raw, setup, account):
            for c in usage.containers_of(raw, setup, account):
                where = f"{account}/{c['name']}"
                if where in journal.done_containers:
                    # one listing to compare, nothing kept (a changed one is listed again below)
                    listed = usage.listing(raw, setup, account, c["name"])
                    if listed.read_digest() == journal.done_containers[where]:
                        report.containers_skipped_from_journal += 1
                        continue
                    report.containers_changed_since_journal += 1
                plan.append((account, c["name"], int(c.get("count") or 0)))
    on_total(sum(n for _a, _c, n in plan))

    def handle(seen: usage.ObjectSeen) -> tuple[usage.ObjectSeen, str, str]:
        if seen.gone:
            return seen, "gone", ""
        if old not in seen.keys.secret_ids:
            return seen, "skipped", ""
        if dry_run:
            return seen, "would_rewrite", ""
        limiter.wait()
        outcome, detail = rewrite(enc, seen)
        return seen, outcome, detail

    try:
        for account, container, _count in plan:
            where = f"{account}/{container}"
            before: dict[str, tuple[str | None, bytes]] = {}
            listed = _remembering(usage.listing(raw, setup, account, container), before)
            rewritten: set[str] = set()
            pool = GreenPool(max(1, concurrency))
            objects = usage.iter_container(raw, setup, account, container, concurrency, listed)
            for seen, outcome, detail in pool.imap(handle, objects):
                report.counts[outcome] += 1
                advance(1)
                if outcome == "rewritten":
                    rewritten.add(seen.name)
                    report.bytes_rewritten += seen.bytes
                    journal.write(event="rewritten", container=where, object=seen.name, x_timestamp=detail,
                                  from_secret_id=old)
                elif outcome == "changed_concurrently":
                    journal.write(event="changed_concurrently", container=where, object=seen.name)
                elif outcome == "failed":
                    report.failures.append(f"{where}/{seen.name}: {detail}")
                    journal.write(event="failed", container=where, object=seen.name, detail=detail)
            if dry_run or any(f.startswith(where + "/") for f in report.failures):
                continue
            after = usage.listing(raw, setup, account, container)
            odd = containerstate.unexplained(before, rewritten, after)
            if odd:  # written by someone else during the pass: a rerun rescans the container
                report.containers_changed_during_run += 1
                journal.write(event="container_changed", container=where, objects=odd[:20])
            else:
                journal.write(event="container_done", container=where, state=after.digest)
    except KeytoolsError:
        raise
    finally:
        journal.close()
        report.seconds = time.monotonic() - started
    return report


def _remembering(entries: Iterable[dict[str, Any]],
                 into: dict[str, tuple[str | None, bytes]]) -> Iterator[dict[str, Any]]:
    """Pass ``entries`` on, keeping a compact fingerprint of each (what the pass saw)."""
    for entry in entries:
        into[entry["name"]] = containerstate.fingerprint(entry)
        yield entry
