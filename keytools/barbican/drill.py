"""The documented restore drill, automated: create test secrets, back up, delete them, confirm they
are gone, restore, confirm they are back with identical payloads, clean up.

It runs against a live Barbican with admin credentials and the barbican.conf of that Barbican.
Caveat (said in --help too): the restore rewinds the whole database to the backup taken seconds
earlier, so writes by others in that window are lost: drill on a test cloud or in a quiet window.
"""

from __future__ import annotations

import contextlib
import logging
import secrets as pysecrets
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from keystoneauth1 import session as ks_session

from keytools import keymanager
from keytools.barbican import barbican_conf, operations
from keytools.barbican.archive import KeySource
from keytools.barbican.database import open_database
from keytools.errors import (AuthenticationFailed, Forbidden, KeytoolsError, NotFound, ProblemsFound,
                             ServiceUnavailable, UsageError)
from keytools.logs import log_event
from keytools.secret_store import secret_id
from keytools.service_errors import is_not_found, translate

LOG = logging.getLogger("keytools.barbican.drill")
ORDER_TIMEOUT = 60.0


@dataclass
class Step:
    name: str
    ok: bool
    seconds: float
    detail: str = ""


# A drill that could not run (bad input, unreachable, no rights) fails with its own error and exit code.
COULD_NOT_RUN = (UsageError, NotFound, ServiceUnavailable, Forbidden, AuthenticationFailed)


class StepReport:
    """What both drill reports (in-place and scratch) share: timed steps, JSON as_dict, failure."""

    result: str
    steps: list[Step]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]  # subclasses are dataclasses

    @property
    def failed_step(self) -> Step | None:
        return next((s for s in self.steps if not s.ok), None)

    def failure(self, cause: KeytoolsError | None) -> KeytoolsError | None:
        """What the drill fails with once the report is shown (None when it passed): ``cause``,
        the error that stopped a step, when the drill could not run; else ProblemsFound."""
        if self.result == "pass":
            return None
        if isinstance(cause, COULD_NOT_RUN):
            return cause
        failed = self.failed_step
        return ProblemsFound(f"the Barbican restore drill failed at '{failed.name if failed else '?'}'"
                             + (f": {failed.detail}" if failed and failed.detail else ""))


@dataclass
class DrillReport(StepReport):
    result: str = "fail"
    steps: list[Step] = field(default_factory=list)
    order: str | None = None
    secrets: list[str] = field(default_factory=list)
    kept: bool = False
    seconds: float = 0.0


class DrillFailed(Exception):
    """A check of the drill did not hold (the message says which)."""


@contextlib.contextmanager
def run_step(drill: Any, name: str, failure: type[Exception], service: str) -> Iterator[Step]:
    """One timed, logged drill step appended to ``drill.report.steps``; any error ends the drill
    as ``failure`` with a one-line detail, and a keytools error is kept in ``drill.error``."""
    drill.progress(f"{name} ...")
    started = time.monotonic()
    record = Step(name, False, 0.0)
    try:
        yield record
        record.ok = True
    except failure as exc:
        record.detail = str(exc)
        raise
    except KeytoolsError as exc:
        record.detail = exc.one_line()
        drill.error = exc
        raise failure(record.detail) from exc
    except Exception as exc:
        drill.error = translate(exc, service, name)
        record.detail = drill.error.one_line()
        raise failure(record.detail) from exc
    finally:
        record.seconds = round(time.monotonic() - started, 3)
        drill.report.steps.append(record)
        log_event(LOG, logging.INFO if record.ok else logging.ERROR,
                  f"drill step '{name}': {'ok' if record.ok else 'FAILED'} ({record.seconds:.3f} s)"
                  + (f": {record.detail}" if record.detail else ""),
                  "barbican.drill.step", step=name, ok=record.ok, seconds=record.seconds)


class Drill:
    def __init__(self, session: ks_session.Session, config: str, keep: bool = False,
                 progress: Callable[[str], None] | None = None) -> None:
        self.client = keymanager.barbican_client(session)
        self.config = config
        self.keep = keep
        self.progress = progress or (lambda _msg: None)
        self.report = DrillReport(kept=keep)
        self.tag = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + pysecrets.token_hex(3)
        self.payloads: dict[str, bytes] = {}
        self.order_ref: str | None = None
        self.error: KeytoolsError | None = None  # the cause when a step failed on an error

    def step(self, name: str) -> contextlib.AbstractContextManager[Step]:
        return run_step(self, name, DrillFailed, "Barbican")

    def failure(self) -> KeytoolsError | None:
        """After run(): what ``keytools barbican drill --in-place`` fails with, if anything."""
        return self.report.failure(self.error)

    def _payload(self, ref: str) -> bytes:
        payload = self.client.secrets.get(ref).payload
        return payload.encode("utf-8") if isinstance(payload, str) else bytes(payload)

    def _gone(self, ref: str) -> bool:
        client_log = logging.getLogger("barbicanclient.client")
        level = client_log.level
        client_log.setLevel(logging.CRITICAL)  # an expected 404 is not an ERROR line
        try:
            self._payload(ref)
        except Exception as exc:
            if is_not_found(exc):
                return True
            raise
        finally:
            client_log.setLevel(level)
        return False

    def run(self) -> DrillReport:
        started = time.monotonic()
        try:
            with tempfile.TemporaryDirectory(prefix="keytools-drill-") as tmp:
                self._run(Path(tmp))
            self.report.result = "pass"
        except DrillFailed:
            self.report.result = "fail"
        finally:
            if not self.keep:
                self._cleanup()
            self.report.seconds = round(time.monotonic() - started, 3)
        return self.report

    def _run(self, tmp: Path) -> None:
        c = self.client
        with self.step("check barbican.conf and its database") as st:
            conf = barbican_conf.load(self.config)
            db = open_database(conf.connection)
            stats = db.stats()
            st.detail = f"{db.engine}, {stats.counts.get('secrets', 0)} secrets, KEK set"
        with self.step("order a 256-bit AES key") as st:
            order = c.orders.create_key(name=f"keytools-drill-{self.tag}-key", algorithm="aes",
                                        bit_length=256, mode="cbc")
            order_ref = self.order_ref = order.submit()
            self.report.order = secret_id(order_ref)
            key_ref = self._wait_order(order_ref)
            self.report.secrets.append(secret_id(key_ref))
            self.payloads[key_ref] = self._payload(key_ref)
            if len(self.payloads[key_ref]) != 32:
                raise DrillFailed(f"the ordered key has {len(self.payloads[key_ref])} bytes, not 32")
            st.detail = f"key {secret_id(key_ref)}"
        with self.step("store a test secret") as st:
            value = f"keytools-drill-{self.tag}-{pysecrets.token_hex(16)}"
            secret = c.secrets.create(name=f"keytools-drill-{self.tag}-secret", payload=value)
            secret_ref = secret.store()
            self.report.secrets.append(secret_id(secret_ref))
            self.payloads[secret_ref] = self._payload(secret_ref)
            if self.payloads[secret_ref] != value.encode():
                raise DrillFailed("the stored secret reads back with another payload")
            st.detail = f"secret {secret_id(secret_ref)}"
        archive = tmp / "drill-backup.ktbak"
        source = KeySource.random()
        with self.step("back up") as st:
            result = operations.backup(self.config, archive, source)
            blob = archive.read_bytes()
            leaked = [r for r, p in self.payloads.items() if p in blob]
            if leaked:
                raise DrillFailed("a test payload appears in clear in the archive")
            st.detail = f"{result['bytes']} bytes, {result['db_dump']}"
        with self.step("delete the test secrets") as st:
            for ref in self.payloads:
                c.secrets.delete(ref)
            c.orders.delete(order_ref)
            st.detail = f"{len(self.payloads)} secrets and 1 order"
        with self.step("confirm they are gone"):
            still = [secret_id(r) for r in self.payloads if not self._gone(r)]
            if still:
                raise DrillFailed(f"still readable after delete: {', '.join(still)}")
        with self.step("restore") as st:
            restored = operations.restore(archive, self.config, source, force=True)
            st.detail = f"database {restored['database_action']}"
        with self.step("confirm they are back with identical payloads") as st:
            for ref, payload in self.payloads.items():
                if self._gone(ref):
                    raise DrillFailed(f"secret {secret_id(ref)} did not come back: is --config {self.config} the "
                                      "barbican.conf of the Barbican in the catalog?")
                if self._payload(ref) != payload:
                    raise DrillFailed(f"secret {secret_id(ref)} came back with another payload")
            if c.orders.get(order_ref).status != "ACTIVE":
                raise DrillFailed(f"order {secret_id(order_ref)} did not come back ACTIVE")
            st.detail = f"{len(self.payloads)} payloads identical, order ACTIVE"

    def _wait_order(self, order_ref: str) -> str:
        deadline = time.monotonic() + ORDER_TIMEOUT
        delay = 0.05
        while True:
            order = self.client.orders.get(order_ref)
            if order.status == "ACTIVE" and order.secret_ref:
                return str(order.secret_ref)
            if order.status == "ERROR":
                raise DrillFailed(f"the order failed: {order.error_status_code} {order.error_reason}")
            if time.monotonic() > deadline:
                raise DrillFailed(f"the order stayed {order.status} for {ORDER_TIMEOUT:.0f} s")
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    def _cleanup(self) -> None:
        if not (self.payloads or self.order_ref):
            return
        started = time.monotonic()
        problems = []
        for ref in list(self.payloads):
            with contextlib.suppress(Exception):
                if not self._gone(ref):
                    try:
                        self.client.secrets.delete(ref)
                    except Exception as exc:  # keep going: report what is left behind
                        problems.append(f"secret {secret_id(ref)}: {exc}")
        if self.order_ref:
            with contextlib.suppress(Exception):
                self.client.orders.delete(self.order_ref)
        self.report.steps.append(Step("clean up", not problems, round(time.monotonic() - started, 3),
                                      "; ".join(problems)))
