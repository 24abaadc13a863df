"""Last line of defence against leaking secrets: every log line and error message is filtered.

Code that handles a secret (fixed_key, passwords, tokens, KEKs) registers it here once; any text
leaving keytools through logging or the CLI's error path has registered values masked.
"""

from __future__ import annotations

import threading

MASK = "***"
_lock = threading.Lock()
_secrets: set[str] = set()


def register_secret(value: str | bytes | None) -> None:
    """Remember ``value`` (and its hex form when bytes) so that it is masked in all output."""
    if not value:
        return
    forms: list[str] = []
    if isinstance(value, bytes):
        forms.append(value.hex())
        forms.append(value.hex().upper())
        try:
            forms.append(value.decode("utf-8"))
        except UnicodeDecodeError:
            pass
    else:
        forms.append(value)
    with _lock:
        _secrets.update(f for f in forms if len(f) >= 4)


def redact(text: str) -> str:
    """Return ``text`` with every registered secret replaced by ``***``."""
    if not _secrets or not text:
        return text
    with _lock:
        values = sorted(_secrets, key=len, reverse=True)
    for value in values:
        if value in text:
            text = text.replace(value, MASK)
    return text


def clear() -> None:
    """Forget all registered secrets (tests)."""
    with _lock:
        _secrets.clear()


def redact_bulk(text: str, window: int = 8) -> str:
    """``redact`` for large texts (reports of thousands of files): same result, but a secret is
    searched for only when its first ``window`` characters occur somewhere in ``text``."""
    if not _secrets or not text:
        return text
    with _lock:
        values = sorted(_secrets, key=len, reverse=True)
    windows = {text[i:i + window] for i in range(len(text) - window + 1)}
    for value in values:
        if (len(value) < window or value[:window] in windows) and value in text:
            text = text.replace(value, MASK)
    return text
