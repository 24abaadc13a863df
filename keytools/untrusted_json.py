"""The one loader for JSON that others wrote: --properties, archive headers and manifests, log lines.

``json.loads`` accepts things no keytools input needs and that break later code: NaN and Infinity
(echoed into JSON output no parser reads), ``1e999`` (a float that is infinite), integers of
thousands of digits (Python refuses to print them: ValueError later), and nesting thousands deep
(RecursionError), and strings with a lone surrogate (``"\\ud800"``: no output can encode
them). ``loads`` refuses all of them, and more than ``max_bytes``, with one error line
naming the source, so every caller fails the same way (exit 2 by default).
"""

from __future__ import annotations

import json
import math
from typing import Any

from keytools.errors import UsageError
from keytools.fileutil import MAX_SMALL

MAX_DEPTH = 64  # keytools' own documents nest 4 deep; Glance/openstack output a few more
MAX_INT_DIGITS = 40  # 2**128 has 39 digits: no count, size or id needs more


class Refused(ValueError):
    """A JSON value keytools refuses (the text says why)."""


def _constant(name: str) -> Any:
    raise Refused(f"{name} is not a JSON number")


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise Refused(f"an integer of {len(text.lstrip('-'))} digits")
    return int(text)


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise Refused(f"the number {text[:20]}{'...' if len(text) > 20 else ''} is out of range")
    return value


def _printable(text: str) -> bool:
    """False for a string with a lone surrogate (``"\\ud800"``): no output can encode it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _problem(value: Any, max_depth: int) -> str | None:
    """Why ``value`` is refused after parsing (iterative: no recursion of its own), or None."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if not _printable(item):
                return "a string with a lone surrogate"
            continue
        if isinstance(item, dict):
            if not all(_printable(key) for key in item):
                return "a string with a lone surrogate"
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > max_depth:
            return f"nested deeper than {max_depth} levels"
        stack.extend((child, depth + 1) for child in children)
    return None


def loads(data: bytes | str, source: str, *, error: type[UsageError] = UsageError,
          hint: str | None = None, max_bytes: int = MAX_SMALL, max_depth: int = MAX_DEPTH) -> Any:
    """The value of ``data``, or ``error`` "SOURCE is not valid JSON (why)" with ``hint``.

    ``source`` names where the text came from ("--properties file X", "archive X's header").
    Bytes must be UTF-8. Refused: more than ``max_bytes``, NaN/Infinity/-Infinity, numbers
    beyond a float's range, integers of more than MAX_INT_DIGITS digits, nesting deeper than
    ``max_depth``, lone surrogates. The message quotes no part of the text (it may hold secrets).
    """
    if len(data) > max_bytes:
        raise error(f"{source} is not valid JSON (more than {max_bytes} bytes)", hint)
    try:
        text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
        value = json.loads(text, parse_constant=_constant, parse_int=_int, parse_float=_float)
    except UnicodeDecodeError:
        raise error(f"{source} is not valid JSON (not UTF-8 text)", hint) from None
    except RecursionError:
        raise error(f"{source} is not valid JSON (nested deeper than {max_depth} levels)", hint) from None
    except Refused as exc:
        raise error(f"{source} is not valid JSON ({exc})", hint) from None
    except json.JSONDecodeError as exc:
        raise error(f"{source} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})",
                    hint) from None
    except ValueError as exc:  # anything else json or int() refuses
        raise error(f"{source} is not valid JSON ({type(exc).__name__})", hint) from None
    problem = _problem(value, max_depth)
    if problem:
        raise error(f"{source} is not valid JSON ({problem})", hint)
    return value
