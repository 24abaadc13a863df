"""Rendering results for humans (tables) and tools (JSON), shared by every command."""

from __future__ import annotations

import json
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


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=False, default=str)


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
    click.echo(redaction.redact(text))


def is_tty(stream: Any = None) -> bool:
    stream = stream or sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())
