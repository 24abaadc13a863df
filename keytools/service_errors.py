"""Translate client-library exceptions (keystoneauth, barbicanclient, castellan, SQLAlchemy)
into keytools errors with one-line messages and the remedy an operator needs."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator

from keystoneauth1 import exceptions as ksa_exc

from keytools.errors import (AuthenticationFailed, Forbidden, KeytoolsError, NotFound,
                             ServiceUnavailable)

SECRET_FORBIDDEN = ("Forbidden: Secret creation attempt not allowed - please review your "
                    "user/project privileges")


def http_status(exc: BaseException) -> int | None:
    """The HTTP status carried by an exception from any OpenStack client library, if any."""
    for attr in ("status_code", "http_status", "code"):
        value = getattr(exc, attr, None)
        if isinstance(value, int) and 100 <= value < 600:
            return value
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def chain(exc: BaseException | None, limit: int = 8) -> list[BaseException]:
    """``exc`` and what it was raised from or while handling, outermost first.

    castellan raises ``KeyManagerError(reason=e)`` inside its ``except``, so the client
    exception with the status code is only the implicit ``__context__``.
    """
    found: list[BaseException] = []
    while exc is not None and len(found) < limit and all(exc is not e for e in found):
        found.append(exc)
        exc = exc.__cause__ or exc.__context__
    return found


@functools.lru_cache(maxsize=1)
def _types() -> dict[str, tuple[type[BaseException], ...]]:
    """The exception types that decide a failure's kind (client libraries loaded on first use)."""
    import requests
    import urllib3
    from castellan.common import exception as castellan_exc

    kinds: dict[str, tuple[type[BaseException], ...]] = {
        "unreachable": (ksa_exc.ConnectFailure, ksa_exc.ConnectTimeout, ksa_exc.ConnectionError),
        "transient": (ksa_exc.ConnectFailure, ksa_exc.ConnectionError, ksa_exc.ConnectTimeout,
                      ksa_exc.RequestTimeout, ksa_exc.RetriableConnectionFailure,
                      requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                      urllib3.exceptions.NewConnectionError, urllib3.exceptions.TimeoutError,
                      ConnectionRefusedError, TimeoutError),
        "unauthorized": (ksa_exc.Unauthorized, AuthenticationFailed),
        "no_endpoint": (ksa_exc.EndpointNotFound,),
        "forbidden": (ksa_exc.Forbidden, castellan_exc.Forbidden, Forbidden),
        "not_found": (castellan_exc.ManagedObjectNotFoundError, NotFound),
    }
    kinds["any"] = tuple({t for group in kinds.values() for t in group})
    return kinds


def decisive(exc: BaseException) -> BaseException | None:
    """The exception along ``exc``'s chain that says what went wrong: the outermost one with an
    HTTP status or of a known kind (a wrapper such as castellan's KeyManagerError is skipped)."""
    known = _types()["any"]
    return next((e for e in chain(exc) if http_status(e) is not None or isinstance(e, known)), None)


def _is(exc: BaseException, kind: str, statuses: Callable[[int], bool] = lambda _s: False) -> bool:
    found = decisive(exc)
    if found is None:
        return False
    status = http_status(found)
    return isinstance(found, _types()[kind]) or (status is not None and statuses(status))


def is_transient(exc: BaseException) -> bool:
    """True for failures worth retrying: connection problems, timeouts, 5xx, 429."""
    return _is(exc, "transient", lambda s: s >= 500 or s == 429)


def is_unreachable(exc: BaseException) -> bool:
    """True when the service could not be reached at all (no connection, connect timeout)."""
    return _is(exc, "unreachable")


def is_unauthorized(exc: BaseException) -> bool:
    """True when Keystone refused the credentials (401)."""
    return _is(exc, "unauthorized", lambda s: s == 401)


def is_not_found(exc: BaseException) -> bool:
    """True when ``exc`` (or what it was raised from) is a 404: decided by type and status."""
    return _is(exc, "not_found", lambda s: s == 404)


def is_forbidden(exc: BaseException) -> bool:
    """True when ``exc`` (or what it was raised from) is a 403: decided by type and status."""
    return _is(exc, "forbidden", lambda s: s == 403)


def is_endpoint_missing(exc: BaseException) -> bool:
    """True when the service catalog has no endpoint for the service."""
    return _is(exc, "no_endpoint")


def translate(exc: BaseException, service: str = "Barbican", what: str = "") -> KeytoolsError:
    """Map a client exception to the keytools error an operator can act on (by type and status)."""
    if isinstance(exc, KeytoolsError):
        return exc
    suffix = f" while {what}" if what else ""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if "/auth/tokens" in text:  # names the service only: the failure was at Keystone's token URL
        service = "Keystone"
    if is_unauthorized(exc):
        return AuthenticationFailed(f"Keystone refused the credentials{suffix}",
                                    "Check the user name, password and project")
    if is_endpoint_missing(exc):
        return ServiceUnavailable(f"no {service} endpoint in the service catalog{suffix}",
                                  "Register the endpoint or pass the endpoint URL explicitly")
    if is_unreachable(exc):
        return ServiceUnavailable(f"cannot reach {service}{suffix}: {text}",
                                  f"Check that {service} is running and the URL is right")
    if is_forbidden(exc):
        return Forbidden(f"{service} refused the request{suffix}: {text}")
    if is_not_found(exc):
        return NotFound(f"{service}: not found{suffix}: {text}")
    if is_transient(exc):
        return ServiceUnavailable(f"{service} failed{suffix}: {text}", "Retry later")
    return KeytoolsError(f"{service} error{suffix}: {text}")


@contextlib.contextmanager
def translated(service: str = "Barbican", what: str = "") -> Iterator[None]:
    """``with translated("Barbican", "storing the key"):`` turns client errors into ours."""
    try:
        yield
    except KeytoolsError:
        raise
    except Exception as exc:
        raise translate(exc, service, what) from exc
