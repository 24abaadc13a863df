"""Errors are decided by type and status, never by message text; reports say how they fail."""

from __future__ import annotations

import pytest
from castellan.common import exception as castellan_exc
from keystoneauth1 import exceptions as ksa_exc

from keytools import service_errors
from keytools.errors import (EXIT_FORBIDDEN, EXIT_PROBLEMS, EXIT_UNREACHABLE, EXIT_USAGE, Forbidden,
                             KeytoolsError, NotFound, ProblemsFound, ServiceUnavailable, UsageError)


class _ClientError(Exception):
    """Like barbicanclient's HTTPClientError: the status is an attribute, the text is free."""

    def __init__(self, status: int, text: str = "nothing telling here") -> None:
        super().__init__(text)
        self.status_code = status


def _castellan_wrapped(status: int) -> BaseException:
    """castellan's shape: KeyManagerError(reason=e) raised inside except, without 'from'."""
    try:
        try:
            raise _ClientError(status)
        except _ClientError as exc:
            raise castellan_exc.KeyManagerError(reason=str(exc))
    except castellan_exc.KeyManagerError as wrapped:
        return wrapped


@pytest.mark.parametrize(("status", "kind", "code"), [
    (403, Forbidden, EXIT_FORBIDDEN), (404, NotFound, EXIT_USAGE), (503, ServiceUnavailable, EXIT_UNREACHABLE)])
def test_castellan_wrapped_status_decides_without_any_telling_text(status, kind, code):
    err = service_errors.translate(_castellan_wrapped(status))
    assert isinstance(err, kind) and err.exit_code == code
    assert service_errors.is_forbidden(_castellan_wrapped(status)) is (status == 403)
    assert service_errors.is_not_found(_castellan_wrapped(status)) is (status == 404)
    assert service_errors.is_transient(_castellan_wrapped(status)) is (status == 503)


def test_message_text_alone_decides_nothing():
    for text in ("Forbidden: go away", "Unable to establish connection", "timed out", "Not Found"):
        err = service_errors.translate(RuntimeError(text))
        assert type(err) is KeytoolsError and err.exit_code == EXIT_PROBLEMS
        assert not service_errors.is_transient(RuntimeError(text))


def test_the_outermost_telling_exception_decides():
    try:
        try:
            raise _ClientError(404)
        except _ClientError:
            raise _ClientError(500)  # e.g. creating after a lookup found nothing
    except _ClientError as exc:
        outer = exc
    assert not service_errors.is_not_found(outer) and service_errors.is_transient(outer)


@pytest.mark.parametrize("exc", [ConnectionRefusedError(111, "refused"), TimeoutError("read"),
                                 ksa_exc.ConnectFailure("x"), ksa_exc.ConnectTimeout("x")])
def test_connection_failures_are_transient_by_type(exc):
    assert service_errors.is_transient(exc)


def test_castellan_and_keystoneauth_types_decide():
    assert service_errors.is_forbidden(castellan_exc.Forbidden())
    assert service_errors.is_not_found(castellan_exc.ManagedObjectNotFoundError(uuid="x"))
    assert service_errors.is_unauthorized(ksa_exc.Unauthorized())
    assert service_errors.is_endpoint_missing(ksa_exc.EndpointNotFound("key-manager"))


def test_with_report_keeps_the_error_and_its_type():
    shown = []
    err = ServiceUnavailable("down").with_report(lambda: shown.append(1))
    assert isinstance(err, ServiceUnavailable) and err.report is not None
    err.report()
    assert shown == [1]


def test_drill_failure_is_the_cause_only_when_the_drill_could_not_run():
    from keytools.barbican.drill import DrillReport, Step

    report = DrillReport(result="fail", steps=[Step("back up", True, 0.1), Step("restore", False, 0.2, "boom")])
    for cause in (UsageError("bad"), NotFound("gone"), ServiceUnavailable("down"), Forbidden("no")):
        assert report.failure(cause) is cause
    failure = report.failure(KeytoolsError("a step broke"))
    assert isinstance(failure, ProblemsFound)
    assert failure.message == "the Barbican restore drill failed at 'restore': boom"
    assert isinstance(report.failure(None), ProblemsFound)
    assert DrillReport(result="pass").failure(ServiceUnavailable("down")) is None


def test_swift_check_failure_is_the_cause_or_the_failed_checks():
    from swift_middleware.check import CheckReport

    report = CheckReport("proxy.conf")
    report.add("SWIFT001 pipeline order", True, "fine")
    assert report.failure() is None
    report.add("SWIFT006 root secrets", False, "refused")
    failure = report.failure()
    assert isinstance(failure, ProblemsFound) and failure.message == "proxy.conf: 1 check(s) failed"
    report.cause = ServiceUnavailable("Barbican down")
    assert report.failure() is report.cause
