"""The few Barbican calls a migration makes, each retried with bounded backoff when transient.

Secrets are created exactly as cinder creates them (``secrets.create(algorithm='AES',
bit_length=<bits>, secret_type='symmetric', mode=None, payload=<bytes>)`` then a read ACL for the
row's user), plus a name (``keytools-migrate:<table>:<id>``) so a secret whose ref was lost in a
crash can be found again. All calls share one keystoneauth session: one token for the whole run.
"""

from __future__ import annotations

import hmac
import logging
import os
import random
import time
from collections.abc import Callable
from typing import TypeVar

from keystoneauth1 import session as ks_session
from requests.adapters import HTTPAdapter

from keytools import keymanager
from keytools.errors import KeytoolsError
from keytools.service_errors import is_transient, translate, translated

LOG = logging.getLogger("keytools.migrate")
_CA_ENV = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
T = TypeVar("T")


class PayloadMismatch(KeytoolsError):
    """A secret read back does not hold fixed_key."""


class Barbican:
    def __init__(self, session: ks_session.Session, endpoint: str | None = None, region: str | None = None,
                 timeout: float = 30.0, retries: int = 4, backoff: float = 0.25, pool: int = 16) -> None:
        self.session = session
        self.retries = retries
        self.backoff = backoff
        session.timeout = timeout
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(pool, 10))
        session.session.mount("http://", adapter)
        session.session.mount("https://", adapter)
        if not any(k.lower().endswith("_proxy") or k in _CA_ENV for k in os.environ):
            # requests re-reads the environment for proxies on every call (a quarter of the
            # client's CPU per secret); with nothing there to honour, skip that.
            session.session.trust_env = False
        with translated("Barbican", "finding the key-manager endpoint"):
            self.endpoint = (endpoint.rstrip("/") if endpoint else
                             keymanager.barbican_endpoint(session, region=region))
            self.client = keymanager.barbican_client(session, self.endpoint)

    # ---- retry ----------------------------------------------------------------------------------

    def call(self, fn: Callable[[], T], what: str, before_retry: Callable[[], T | None] | None = None) -> T:
        """Run ``fn``; retry transient failures (5xx, timeouts, refused) with capped backoff.
        ``before_retry`` may return a result that makes the retry unnecessary (a POST that did
        succeed on the server although its answer was lost)."""
        attempt = 0
        while True:
            try:
                return fn()
            except KeytoolsError:
                raise
            except Exception as exc:
                if not is_transient(exc) or attempt >= self.retries:
                    raise translate(exc, "Barbican", what) from exc
                attempt += 1
                delay = min(self.backoff * 2 ** (attempt - 1), 4.0) * (0.5 + random.random() / 2)  # noqa: S311
                LOG.debug("Barbican failed while %s (%s); retry %d/%d in %.2fs", what,
                          type(exc).__name__, attempt, self.retries, delay)
                time.sleep(delay)
                if before_retry is not None:
                    try:
                        found = before_retry()
                    except Exception:  # noqa: BLE001 - the retry itself will report
                        found = None
                    if found is not None:
                        return found

    # ---- calls -------------------------------------------------------------------------------------

    def create(self, name: str, key: bytes) -> tuple[str, bool]:
        """Store ``key`` as cinder does; returns (secret ref, uncertain). ``uncertain`` means a
        POST failed in a way that may still have stored a secret (timeout, lost answer): the
        caller searches by name later so such a secret is reported as an orphan, not forgotten."""
        attempts = 0

        def post() -> str:
            nonlocal attempts
            attempts += 1
            secret = self.client.secrets.create(name=name, algorithm="AES", bit_length=len(key) * 8,
                                                secret_type="symmetric", mode=None, payload=key)
            return secret.store()

        def lookup() -> str | None:
            refs = self.find(name)
            return refs[-1] if refs else None

        ref = self.call(post, "storing the key", before_retry=lookup)
        return ref, attempts > 1

    def grant_read(self, ref: str, users: list[str] | str | None) -> None:
        """The read ACL cinder sets so the volume's owner can use the key (or several users:
        ``--acl project``, an image's project)."""
        if isinstance(users, str) or users is None:
            users = [users] if users else []

        def put() -> None:
            acl = self.client.acls.create(entity_ref=ref, users=list(users))
            acl.submit()

        self.call(put, f"setting the ACL of {ref}")

    def payload(self, ref: str) -> bytes:
        def get() -> bytes:
            resp = self.session.get(f"{ref}/payload", headers={"Accept": "application/octet-stream"})
            return resp.content

        return self.call(get, f"reading back {ref}")

    def check_payload(self, ref: str, key: bytes) -> None:
        """Read the secret back and compare in constant time; never log either value."""
        if not hmac.compare_digest(self.payload(ref), key):
            raise PayloadMismatch(f"secret {ref} does not hold fixed_key",
                                  "It was not made by this migration; it is left untouched")

    def find(self, name: str) -> list[str]:
        """Refs of the secrets named ``name`` (oldest first)."""
        secrets = self.call(lambda: list(self.client.secrets.list(name=name, limit=100, sort="created:asc")),
                            f"searching secrets named {name}")
        return [s.secret_ref for s in secrets if s.name == name]

    def acl_users(self, ref: str) -> list[str]:
        acl = self.call(lambda: self.client.acls.get(ref), f"reading the ACL of {ref}")
        read = getattr(acl, "read", None)
        return list(getattr(read, "users", None) or [])

    def ref_of(self, key: str) -> str:
        """The secret ref of a key id (cinder keeps only the id in its rows)."""
        base = self.endpoint[:-3] if self.endpoint.endswith("/v1") else self.endpoint
        return f"{base}/v1/secrets/{key}"

    def holds(self, key: str, expected: bytes) -> tuple[bool | None, str]:
        """Does the secret with this key id hold ``expected``? (True/False, or None when it cannot
        be read back, with why). Never raises, never logs either value."""
        try:
            self.check_payload(self.ref_of(key), expected)
            return True, ""
        except PayloadMismatch:
            return False, ""
        except KeytoolsError as exc:
            return None, exc.message

    def delete(self, ref: str) -> None:
        self.call(lambda: self.client.secrets.delete(ref), f"deleting {ref}")

    def exists(self, ref: str) -> bool:
        def head() -> bool:
            resp = self.session.get(ref, headers={"Accept": "application/json"}, raise_exc=False)
            if resp.status_code == 404:
                return False
            if resp.status_code >= 400:
                resp.raise_for_status()
            return True

        return self.call(head, f"reading {ref}")


def cinder_text(exc: BaseException) -> str:
    """The error text cinder would log (the client library's own message, e.g. ``Forbidden:
    Secret creation attempt not allowed - ...``), not our translated sentence."""
    cause = exc.__cause__ if isinstance(exc, KeytoolsError) and exc.__cause__ is not None else exc
    text = getattr(cause, "message", None) if isinstance(cause, KeytoolsError) else str(cause)
    return " ".join(str(text or type(cause).__name__).split())
