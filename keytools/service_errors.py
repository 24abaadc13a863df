"""Translate client-library exceptions (keystoneauth, barbicanclient, castellan, SQLAlchemy)
into keytools errors with one-line messages and the remedy an operator needs."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

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


def is_transient(exc: BaseException) -> bool:
    """True for failures worth retrying: connection problems, timeouts, 5xx, 429."""
    if isinstance(exc, (ksa_exc.ConnectFailure, ksa_exc.ConnectionError, ksa_exc.ConnectTimeout,
                        ksa_exc.RequestTimeout, ksa_exc.RetriableConnectionFailure)):
        return True
    status = http_status(exc)
    if status is not None:
        return status >= 500 or status == 429
    text = str(exc)
    return any(s in text for s in ("Unable to establish connection", "timed out",
                                   "Connection refused", "Service Unavailable",
                                   "Internal Server Error"))


def translate(exc: BaseException, service: str = "Barbican", what: str = "") -> KeytoolsError:
    """Map a client exception to the keytools error an operator can act on."""
    if isinstance(exc, KeytoolsError):
        return exc
    suffix = f" while {what}" if what else ""
    status = http_status(exc)
    text = " ".join(str(exc).split()) or type(exc).__name__
    if "/auth/tokens" in text:  # the failure happened while authenticating, not at `service`
        service = "Keystone"
    if isinstance(exc, ksa_exc.Unauthorized) or status == 401:
        return AuthenticationFailed(f"Keystone refused the credentials{suffix}",
                                    "Check the user name, password and project")
    if isinstance(exc, ksa_exc.EndpointNotFound):
        return ServiceUnavailable(f"no {service} endpoint in the service catalog{suffix}",
                                  "Register the endpoint or pass the endpoint URL explicitly")
    if isinstance(exc, (ksa_exc.ConnectFailure, ksa_exc.ConnectTimeout, ksa_exc.ConnectionError)) \
            or "Unable to establish connection" in text:
        return ServiceUnavailable(f"cannot reach {service}{suffix}: {text}",
                                  f"Check that {service} is running and the URL is right")
    if isinstance(exc, ksa_exc.Forbidden) or status == 403 or "Forbidden" in text:
        return Forbidden(f"{service} refused the request{suffix}: {text}")
    if status == 404:
        return NotFound(f"{service}: not found{suffix}: {text}")
    if is_transient(exc):
        return ServiceUnavailable(f"{service} failed{suffix}: {text}", "Retry later")
    return KeytoolsError(f"{service} error{suffix}: {text}")


def _chain(exc: BaseException | None) -> Iterator[BaseException]:
    """``exc`` and the exceptions it was raised from (a translated error's client exception)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__


def is_not_found(exc: BaseException) -> bool:
    """True when ``exc`` (or what it was raised from) is a 404: decided by type and status."""
    return any(isinstance(translate(e), NotFound) for e in _chain(exc))


def is_forbidden(exc: BaseException) -> bool:
    """True when ``exc`` (or what it was raised from) is a 403: decided by type and status."""
    return any(isinstance(translate(e), Forbidden) for e in _chain(exc))


@contextlib.contextmanager
def translated(service: str = "Barbican", what: str = "") -> Iterator[None]:
    """``with translated("Barbican", "storing the key"):`` turns client errors into ours."""
    try:
        yield
    except KeytoolsError:
        raise
    except Exception as exc:
        raise translate(exc, service, what) from exc
