"""``keytools swift key-usage``: which root secret every object's stored crypto metadata names.

Reads through Swift's InternalClient on the proxy's rings with a pipeline that neither decrypts
nor strips sysmeta (internal.raw): the container listing (``swift_meta`` of each etag) and one
HEAD per object (body and user-metadata crypto meta), concurrently on eventlet green threads.
Results are per account and container; a container's result is written to a partial state file
as soon as it is complete, with the digest of the container's listing it counted
(containerstate), so a rerun after a kill continues with the next container and reuses a counted
one only while Swift still lists it the same.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keytools.errors import KeytoolsError, UsageError
from keytools.fileutil import atomic_write
from swift_middleware import containerstate, cryptometa, internal, usagestate
from swift_middleware.proxykeys import ProxyKeys

HEADERS = {"X-Newest": "true"}


@dataclass
class ObjectSeen:
    """One object as the raw pipeline shows it."""

    account: str
    container: str
    name: str
    bytes: int
    keys: cryptometa.ObjectKeys
    headers: dict[str, str]
    gone: bool = False


@dataclass
class ContainerUsage:
    account: str
    container: str
    objects: int = 0
    unencrypted: int = 0
    unencrypted_bytes: int = 0
    gone: int = 0
    by_secret: dict[str, list[int]] = field(default_factory=dict)  # secret id -> [objects, bytes]
    state: str | None = None  # the digest of the listing counted (None: unknown, never reused)

    def add(self, seen: ObjectSeen) -> None:
        self.objects += 1
        if seen.gone:
            self.gone += 1
            return
        if not seen.keys.encrypted:
            self.unencrypted += 1
            self.unencrypted_bytes += seen.bytes
        for sid in seen.keys.secret_ids:
            tally = self.by_secret.setdefault(sid, [0, 0])
            tally[0] += 1
            tally[1] += seen.bytes

    def as_dict(self) -> dict[str, Any]:
        return {"account": self.account, "container": self.container, "objects": self.objects,
                "unencrypted": self.unencrypted, "unencrypted_bytes": self.unencrypted_bytes,
                "gone": self.gone,
                "by_secret_id": {k: {"objects": v[0], "bytes": v[1]} for k, v in sorted(self.by_secret.items())}}

    def partial_dict(self) -> dict[str, Any]:
        return {**self.as_dict(), "state": self.state}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> ContainerUsage:
        return cls(doc["account"], doc["container"], doc["objects"], doc["unencrypted"],
                   doc["unencrypted_bytes"], doc["gone"],
                   {k: [v["objects"], v["bytes"]] for k, v in doc["by_secret_id"].items()}, doc.get("state"))


@dataclass
class KeyUsage:
    """Totals for one root secret id (``secret_id`` '' is the plain key_id)."""

    secret_id: str
    option: str | None
    key_id: str | None
    active: bool
    objects: int = 0
    bytes: int = 0
    containers: int = 0
    accounts: int = 0

    @property
    def label(self) -> str:
        return self.option or f"secret id {self.secret_id or '-'} (not configured!)"

    def as_dict(self) -> dict[str, Any]:
        return {"secret_id": self.secret_id or None, "option": self.option, "key_id": self.key_id,
                "active": self.active, "configured": self.option is not None,
                "objects": self.objects, "bytes": self.bytes, "containers": self.containers,
                "accounts": self.accounts}


@dataclass
class UsageReport:
    proxy_conf: str
    accounts: list[str]
    containers: list[ContainerUsage]
    keys: list[KeyUsage]
    finished_at: str
    resumed_containers: int = 0

    @property
    def unencrypted(self) -> int:
        return sum(c.unencrypted for c in self.containers)

    @property
    def total_objects(self) -> int:
        return sum(c.objects for c in self.containers)

    def key(self, secret_id: str) -> KeyUsage | None:
        return next((k for k in self.keys if k.secret_id == secret_id), None)

    def as_dict(self) -> dict[str, Any]:
        return {"proxy_conf": self.proxy_conf, "accounts": self.accounts,
                "finished_at": self.finished_at, "objects": self.total_objects,
                "unencrypted": {"objects": self.unencrypted,
                                "bytes": sum(c.unencrypted_bytes for c in self.containers)},
                "gone": sum(c.gone for c in self.containers),
                "resumed_containers": self.resumed_containers,
                "keys": [k.as_dict() for k in self.keys],
                "containers": [c.as_dict() for c in self.containers]}


def _status(exc: BaseException) -> int | None:
    resp = getattr(exc, "resp", None)
    return getattr(resp, "status_int", None)


def check_account(client: Any, setup: internal.ProxySetup, account: str) -> bool:
    """True if the account exists; Swift unreachable -> ServiceUnavailable (exit 4)."""
    from swift.common.internal_client import UnexpectedResponse

    try:
        resp = client.make_request("HEAD", client.make_path(account), {}, (2, 404))
    except UnexpectedResponse as exc:
        raise internal.unreachable(setup, f"account {account}", _status(exc) or "an error") from None
    except (OSError, ConnectionError) as exc:
        raise internal.unreachable(setup, f"account {account}", type(exc).__name__) from None
    return resp.status_int // 100 == 2


def containers_of(client: Any, setup: internal.ProxySetup, account: str) -> list[dict[str, Any]]:
    from swift.common.internal_client import UnexpectedResponse

    try:
        return list(client.iter_containers(account))
    except UnexpectedResponse as exc:
        raise internal.unreachable(setup, f"the container listing of {account}", _status(exc)) from None


def listing(client: Any, setup: internal.ProxySetup, account: str,
            container: str) -> containerstate.Listing:
    """The container's HEAD now and its raw listing as it streams, digested as it goes by;
    Swift unreachable -> ServiceUnavailable (exit 4)."""

    def failed(exc: BaseException) -> KeytoolsError:
        return internal.unreachable(setup, f"{account}/{container}", _status(exc) or "an error")

    return containerstate.open_listing(client, account, container, failed)


def head_object(client: Any, account: str, container: str, entry: dict[str, Any]) -> ObjectSeen:
    """A raw HEAD: sysmeta (crypto meta) is visible because nothing strips or decrypts it."""
    name = entry["name"]
    resp = client.make_request("HEAD", client.make_path(account, container, name), HEADERS, (2, 404))
    headers = dict(resp.headers)
    gone = resp.status_int == 404
    keys = cryptometa.object_keys({} if gone else headers, entry.get("hash"))
    return ObjectSeen(account, container, name, int(entry.get("bytes") or 0), keys, headers, gone)


def iter_container(client: Any, setup: internal.ProxySetup, account: str, container: str,
                   concurrency: int, entries: Iterable[dict[str, Any]] | None = None) -> Iterator[ObjectSeen]:
    """Every object of a container (or of its listing ``entries`` already read) with its keys,
    HEADed ``concurrency`` at a time."""
    from eventlet import GreenPool
    from swift.common.internal_client import UnexpectedResponse

    pool = GreenPool(max(1, concurrency))
    try:
        if entries is None:
            entries = client.iter_objects(account, container)
        yield from pool.imap(lambda e: head_object(client, account, container, e), entries)
    except UnexpectedResponse as exc:
        raise internal.unreachable(setup, f"{account}/{container}", _status(exc)) from None


def _partial_path(directory: Path) -> Path:
    return directory / usagestate.PARTIAL


def _load_partial(directory: Path, proxy_conf: str, accounts: list[str]) -> dict[str, ContainerUsage]:
    try:
        doc = json.loads(_partial_path(directory).read_text())
    except (OSError, ValueError):
        return {}
    if doc.get("accounts") != accounts:
        return {}
    return {k: ContainerUsage.from_dict(v) for k, v in doc.get("containers", {}).items()}


def _save_partial(directory: Path, proxy_conf: str, accounts: list[str],
                  done: dict[str, ContainerUsage]) -> None:
    doc = {"proxy_conf": proxy_conf, "accounts": accounts,
           "containers": {k: v.partial_dict() for k, v in done.items()}}
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write(_partial_path(directory), json.dumps(doc) + "\n", mode=0o600)


def totals(km: ProxyKeys, containers: list[ContainerUsage]) -> list[KeyUsage]:
    """One KeyUsage per configured secret id (zeros included) and per id found but not configured."""
    result: dict[str, KeyUsage] = {}
    for ref in km.keys:
        sid = ref.secret_id or cryptometa.DEFAULT_ID
        result[sid] = KeyUsage(sid, ref.option, ref.key_id, ref.secret_id == km.active_secret_id)
    accounts: dict[str, set[str]] = {}
    for usage in containers:
        for sid, (objects, size) in usage.by_secret.items():
            key = result.setdefault(sid, KeyUsage(sid, None, None, False))
            key.objects += objects
            key.bytes += size
            key.containers += 1
            accounts.setdefault(sid, set()).add(usage.account)
    for sid, names in accounts.items():
        result[sid].accounts = len(names)
    return sorted(result.values(), key=lambda k: (k.option is None, k.secret_id))


def scan(setup: internal.ProxySetup, accounts: list[str], state: Path, concurrency: int = 8,
         restart: bool = False, client: Any = None,
         advance: Callable[[int], None] = lambda _n: None,
         on_total: Callable[[int], None] = lambda _n: None) -> UsageReport:
    """Count objects per root secret in ``accounts``; resumable per container via ``state``."""
    if not accounts:
        raise UsageError("no account to scan", "Give --account AUTH_<project id> (repeatable)")
    client = client or internal.make_client(setup, encrypting=False)
    done = {} if restart else _load_partial(state, setup.path, accounts)
    resumed = 0
    plan: list[tuple[str, str, int]] = []
    for account in accounts:
        if not check_account(client, setup, account):
            continue
        for entry in containers_of(client, setup, account):
            plan.append((account, entry["name"], int(entry.get("count") or 0)))
    on_total(sum(count for a, c, count in plan if f"{a}/{c}" not in done))
    results = []
    for account, container, _count in plan:
        key = f"{account}/{container}"
        if key in done and done[key].state and \
                listing(client, setup, account, container).read_digest() == done[key].state:
            results.append(done[key])  # counted by the killed run, and Swift still lists it the same
            resumed += 1
            continue
        listed = listing(client, setup, account, container)
        usage = ContainerUsage(account, container)
        for seen in iter_container(client, setup, account, container, concurrency, listed):
            usage.add(seen)
            advance(1)
        usage.state = listed.digest  # the listing has been read to its end
        done[key] = usage
        results.append(usage)
        _save_partial(state, setup.path, accounts, done)
    finished = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    report = UsageReport(setup.path, accounts, results, totals(setup.keys, results), finished, resumed)
    try:
        usagestate.write(state, {"finished_at": finished, "proxy_conf": setup.path, "accounts": accounts,
                                 "keys": [k.as_dict() for k in report.keys],
                                 "unencrypted": report.unencrypted})
    except OSError as exc:
        raise KeytoolsError(f"cannot write the key-usage state in {state}: {exc.strerror}",
                            "Give a writable --state-dir") from None
    usagestate.remove_partial(state)
    return report
