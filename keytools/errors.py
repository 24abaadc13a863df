"""One error hierarchy for every feature; the CLI maps it to exit codes and one-line messages.

Every expected failure is a ``KeytoolsError`` subclass carrying a user-facing message (naming the
file, option or object) and, where there is one, the remedy. Anything else is a bug and gets a
traceback only with ``--debug``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

# Documented exit codes (README "Exit codes"). Commands with a richer contract (verify) reuse these.
EXIT_OK = 0
EXIT_PROBLEMS = 1  # the command ran and found problems (check failed, conflict, invalid signature)
EXIT_USAGE = 2  # bad input: option, file, configuration, missing data
EXIT_CERTIFICATE = 3  # certificate problem (expired, not yet valid, untrusted)
EXIT_UNREACHABLE = 4  # a service (Keystone, Barbican, database) cannot be reached
EXIT_FORBIDDEN = 5  # authenticated but not allowed (missing role)
EXIT_STATE = 6  # refused because of the state of the cloud (in use, still migrating, locked)
EXIT_INTERNAL = 70  # unexpected error: a bug, please report with --debug output
EXIT_CLOSED_STDOUT = 141  # stdout closed early (keytools ... | head): what a shell shows for SIGPIPE

_E = TypeVar("_E", bound="KeytoolsError")  # typing.Self needs Python 3.11


class KeytoolsError(Exception):
    """Base class: ``message`` says what is wrong, ``hint`` what to do about it.

    Commands that print a report and then fail (verify, audit, volume-type check, swift check,
    barbican drill, barbican kek rotate) use the two optional parts:
    ``details`` holds the facts established before the failure (what the report shows), and
    ``report`` renders them; the CLI root calls it before printing the one-line error, so every
    command fails the same way.
    """

    exit_code = EXIT_PROBLEMS

    def __init__(self, message: str, hint: str | None = None, *,
                 details: Mapping[str, Any] | None = None,
                 report: Callable[[], None] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details: dict[str, Any] = dict(details or {})
        self.report = report

    def with_report(self: _E, report: Callable[[], None]) -> _E:
        """This error, to be raised once ``report`` has rendered what the command established:
        ``raise failure.with_report(render)`` (the root renders, then prints the one-line error)."""
        self.report = report
        return self

    def one_line(self) -> str:
        text = self.message.rstrip(".")
        if self.hint:
            text = f"{text}. {self.hint.rstrip('.')}."
        else:
            text += "."
        return " ".join(text.split())


class UsageError(KeytoolsError):
    """Bad option, file or configuration given by the user."""

    exit_code = EXIT_USAGE


class SignatureFormatError(UsageError, ValueError):
    """A Glance img_signature* value (key type, hash method, base64, UUID) is malformed.

    Still a ValueError, so code that parses values the way cursive does can catch it as one.
    """


class ConfigError(UsageError):
    """A configuration file is missing, unreadable or holds a bad value."""


class ProblemsFound(KeytoolsError):
    """A check ran to completion and found problems (already reported)."""

    exit_code = EXIT_PROBLEMS


class Conflict(KeytoolsError):
    """The object exists with a different definition."""

    exit_code = EXIT_PROBLEMS


class CertificateError(KeytoolsError):
    exit_code = EXIT_CERTIFICATE


class ServiceUnavailable(KeytoolsError):
    """Keystone, Barbican, a database or another service cannot be reached or keeps failing."""

    exit_code = EXIT_UNREACHABLE


class Forbidden(KeytoolsError):
    """Authenticated, but the role needed is missing."""

    exit_code = EXIT_FORBIDDEN


class AuthenticationFailed(KeytoolsError):
    """Keystone refused the credentials."""

    exit_code = EXIT_FORBIDDEN


class StateError(KeytoolsError):
    """The cloud's state forbids the change (type in use, rows still on the fixed key, lock held)."""

    exit_code = EXIT_STATE


class NotFound(KeytoolsError):
    exit_code = EXIT_USAGE
