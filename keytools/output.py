"""Rendering results for humans (tables) and tools (JSON), shared by every command."""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import click
import prettytable

from keytools import redaction

FORMATS = ("table", "json")
MAX_CELL_WIDTH = 60

format_option = click.option(
    "--format",
    "-f",
    "output_format",
    type=click.Choice(FORMATS),
    default="table",
    show_default=True,
    help="Output format: a table for people, JSON for tools.",
)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(_cell(v) for v in value)
    return str(value)


def table(rows: Iterable[Mapping[str, Any]], columns: Sequence[str], headers: Sequence[str] | None = None) -> str:
    """A plain ASCII table like the openstack CLI prints."""
    tbl = prettytable.PrettyTable(list(headers or columns))
    tbl.align = "l"
    tbl.max_width = MAX_CELL_WIDTH  # long details wrap instead of making 300-column tables
    for row in rows:
        tbl.add_row([_cell(row.get(col)) for col in columns])
    return tbl.get_string()


_SURROGATE = re.compile("[\ud800-\udfff]")


def _escape_surrogate(match: re.Match[str]) -> str:
    code = ord(match.group())
    # 0xdc80-0xdcff: a byte that was not UTF-8 (a file or directory name read with surrogateescape)
    return f"\\x{code - 0xdc00:02x}" if 0xdc80 <= code <= 0xdcff else f"\\u{code:04x}"


def clean_text(text: str) -> str:
    """``text`` with lone surrogates written out as ``\\xNN`` (a non-UTF-8 byte of a file name) or
    ``\\uNNNN``: they cannot be encoded, so UTF-8 output, JSON parsers and XML all refuse them."""
    return _SURROGATE.sub(_escape_surrogate, text) if not text.isascii() else text


def _non_finite(value: float) -> str:
    return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"


def _json_key(key: Any) -> Any:
    if isinstance(key, float) and not math.isfinite(key):
        return _non_finite(key)
    if key is None or isinstance(key, (int, float)):
        return key  # json writes these as strings itself
    return clean_text(str(key))


def json_safe(data: Any) -> Any:
    """``data`` as JSON can hold it: strings (keys too) without lone surrogates, NaN and Infinity
    as the strings "NaN"/"Infinity" (a JSON number cannot be either), tuples and sets as lists,
    anything else as its text."""
    if isinstance(data, str):
        return clean_text(data)
    if isinstance(data, bool) or data is None or isinstance(data, int):
        return data
    if isinstance(data, float):
        return data if math.isfinite(data) else _non_finite(data)
    if isinstance(data, Mapping):
        return {_json_key(k): json_safe(v) for k, v in data.items()}
    if isinstance(data, (list, tuple, set, frozenset)):
        return [json_safe(v) for v in data]
    return clean_text(str(data))


def to_json(data: Any, indent: int | None = 2, **kwargs: Any) -> str:
    """The one JSON rendering of results and reports: always valid JSON (no NaN/Infinity, no lone
    surrogates), whatever strings and numbers ``data`` holds."""
    return json.dumps(json_safe(data), indent=indent, allow_nan=False, **kwargs)


def emit(data: Any, output_format: str, columns: Sequence[str] | None = None,
         headers: Sequence[str] | None = None) -> None:
    """Print ``data`` (a list of row dicts, or one dict) in the chosen format on stdout."""
    if output_format == "json":
        text = to_json(data)
    elif isinstance(data, Mapping):
        text = table(({"field": k, "value": v} for k, v in data.items()), ["field", "value"],
                     ["Field", "Value"])
    else:
        rows = list(data)
        cols = list(columns or (rows[0].keys() if rows else []))
        text = table(rows, cols, headers)
    click.echo(redaction.redact(clean_text(text)))


def safe_streams() -> None:
    """stdout and stderr never fail on text they cannot encode (a lone surrogate in a file name or a
    log line): it is written as a backslash escape instead of ending the run with exit 70."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:
                reconfigure(errors="backslashreplace")
            except (ValueError, OSError):  # closed or detached: nothing will be written there
                pass


def is_tty(stream: Any = None) -> bool:
    stream = stream or sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())
