"""Last line of defence against leaking secrets: every log line and error message is filtered.

Code that handles a secret (fixed_key, passwords, tokens, KEKs) registers it here once; any text
leaving keytools through logging or the CLI's error path has registered values masked.

Masking is by substring, so a registered value must be one that cannot occur by accident: values
shorter than ``MIN_LENGTH``, short digit strings and common words (booleans, ``null``, format and
field names) are never registered, or a ``password = true`` would turn every "true" of a JSON
document into ``***`` and break it. Those values are masked where they are shown instead (the
audit does this by position, ``config_checks.secrets.shown``); config values read by the audit
are never registered here at all.
"""

from __future__ import annotations

import threading

MASK = "***"
MIN_LENGTH = 6
# Words that occur in keytools' own output (JSON keywords, booleans, formats, field names, levels):
# never secrets worth a global substring mask, whatever option they were the value of.
COMMON_WORDS = frozenset({
    "true", "false", "null", "none", "yes", "no", "on", "off", "json", "yaml", "text", "table", "sarif",
    "junit", "xml", "html", "info", "low", "medium", "high", "critical", "error", "warning", "debug",
    "password", "passwd", "secret", "token", "changeme", "admin", "service", "default", "localhost",
    "keystone", "barbican", "cinder", "glance", "swift", "nova", "openstack", "stack", "devstack",
    "testing", "unset", "enabled", "disabled", "message", "remediation", "expected", "actual",
})
_lock = threading.Lock()
_secrets: set[str] = set()


def maskable(value: str) -> bool:
    """Whether ``value`` is safe to mask as a substring everywhere (long, not a common word)."""
    text = value.strip()
    if len(text) < MIN_LENGTH or text.lower() in COMMON_WORDS:
        return False
    return not (text.isdigit() and len(text) < 10)


def register_secret(value: str | bytes | None) -> None:
    """Remember ``value`` (and its hex form when bytes) so that it is masked in all output;
    values that are not ``maskable`` are ignored (mask those where they are shown)."""
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
        _secrets.update(f for f in forms if maskable(f))


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
