"""Logging in oslo.log's line format (what operators' log tooling parses) or as JSON lines.

Text lines look like cinder's own:
``2026-11-23 12:45:36.200 23845 INFO keytools.migrate [None req-<uuid> - - - - - -] message``.
Structured events (``log_event``) add machine-readable fields; in JSON mode they become keys of
the line's object. Every line passes through ``redaction.redact`` so secrets never reach a log.
"""

from __future__ import annotations

import logging
import sys
import time
import uuid
from typing import Any, TextIO

from keytools import output, redaction

REQUEST_ID = f"req-{uuid.uuid4()}"
_EVENT_ATTR = "keytools_event"


class OsloFormatter(logging.Formatter):
    """oslo.log's default context format with a request id that is constant for one run."""

    def __init__(self) -> None:
        super().__init__(datefmt="%Y-%m-%d %H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        stamp = f"{self.formatTime(record, self.datefmt)}.{int(record.msecs):03d}"
        message = record.getMessage()
        line = (
            f"{stamp} {record.process} {record.levelname} {record.name} "
            f"[None {REQUEST_ID} - - - - - -] {message}"
        )
        if record.exc_info and record.levelno >= logging.ERROR and _debug_enabled():
            line += "\n" + self.formatException(record.exc_info)
        return redaction.redact(line)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp, level, logger, message, request id and event fields."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "request_id": REQUEST_ID,
            "message": record.getMessage(),
        }
        fields = getattr(record, _EVENT_ATTR, None)
        if fields:
            doc.update(fields)
        return redaction.redact(output.to_json(doc, indent=None))


_DEBUG = False


def _debug_enabled() -> bool:
    return _DEBUG


def setup_logging(log_format: str = "text", debug: bool = False, stream: TextIO | None = None) -> None:
    """Configure the root logger for a CLI run: INFO (DEBUG with --debug) to stderr.

    Calling it again replaces the earlier setup entirely (global options given after the
    subcommand are applied after the root's).
    """
    global _DEBUG
    _DEBUG = debug
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else OsloFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_keytools", False):
            root.removeHandler(old)
    handler._keytools = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    # Client libraries are chatty at INFO and may log request bodies at DEBUG.
    for noisy in ("keystoneauth", "urllib3", "stevedore", "barbicanclient", "castellan",
                  "openstack", "cinderclient", "glanceclient"):
        logging.getLogger(noisy).setLevel(logging.NOTSET if debug else logging.WARNING)


def log_event(logger: logging.Logger, level: int, message: str, event: str, **fields: Any) -> None:
    """Log ``message`` as text, carrying ``event`` and ``fields`` for the JSON format.

    Never pass key bytes or passwords in ``fields``; they are redacted anyway, but should not get
    there.
    """
    logger.log(level, message, extra={_EVENT_ATTR: {"event": event, **fields}})
