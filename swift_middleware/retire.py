"""``keytools swift retire-key OLD``: drop a root secret from the keymaster config once nothing
uses it any more.

Refuses (exit 6) while a fresh key-usage scan finds any object with data or metadata under OLD,
and for the active key. Then prints the keymaster config without OLD's line, or with ``--config``
edits the file (``keymaster_config_path`` or proxy-server.conf) with crudini, keeping comments and
order: a ``.bak`` copy first (0600), the result written atomically (0600).

Each keymaster's own form: ``key_id*`` in ``[kms_keymaster]`` (keytools' and Swift's
``kms_keymaster``), ``encryption_root_secret*`` in ``[keymaster]`` (Swift's ``keymaster``), or in
the filter section without ``keymaster_config_path``. Inline secret values are never printed.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keytools import redaction
from keytools.errors import KeytoolsError, StateError
from keytools.fileutil import atomic_write
from keytools.tools import find_tool
from swift_middleware import cryptometa, internal
from swift_middleware.proxykeys import RootKey
from swift_middleware.reencrypt import resolve_key
from swift_middleware.usage import UsageReport


@dataclass
class RetireResult:
    option: str
    key_id: str | None  # None: an inline secret (Swift's keymaster)
    file: str
    section: str
    text: str = field(repr=False)
    edited: bool
    backup: str | None
    prefix: str = "key_id"

    @property
    def inline(self) -> bool:
        return self.key_id is None

    def key_lines(self) -> list[str]:
        return key_lines(self.text, self.section, self.prefix, masked=self.inline)

    def as_dict(self) -> dict[str, Any]:
        return {"option": self.option, "key_id": self.key_id, "file": self.file, "section": self.section,
                "edited": self.edited, "backup": self.backup, "key_lines": self.key_lines(),
                "reminder": reminder(self)}


def reminder(result: RetireResult) -> str:
    if result.inline:
        backup = (f"; the backup {result.backup} still holds the retired secret: delete it then"
                  if result.backup else "")
        return (f"Restart every proxy with the new config; keep the old {result.option} value in a "
                "safe place until all of them run without it (and until backups holding objects "
                f"written with it have expired){backup}")
    return (f"Restart every proxy with the new config; keep Barbican secret {result.key_id} until all "
            "of them run without it (and until backups holding objects written with it have expired)")


def where(setup: internal.ProxySetup) -> tuple[Path, str]:
    """The file and section holding the root secret options, in the keymaster's own form."""
    return Path(setup.keys.file), setup.keys.section


def refuse_if_used(setup: internal.ProxySetup, old: str, report: UsageReport) -> RootKey:
    ref = resolve_key(setup.keys, old)
    if ref.secret_id == setup.keys.active_secret_id:
        raise StateError(f"{ref.option} is the active root secret; it cannot be retired",
                         "Make another key active, reencrypt, then retire this one")
    found = report.key(ref.secret_id or cryptometa.DEFAULT_ID)
    if found is not None and found.objects:
        raise StateError(f"{found.objects} object(s) in {found.containers} container(s) are still "
                         f"encrypted under {ref.option}",
                         f"Run 'keytools swift reencrypt --from-key-id {ref.option}' first")
    return ref


def _crudini() -> str:
    return find_tool("crudini", "Install it: pip install crudini", KeytoolsError)


def without_option(path: Path, section: str, option: str) -> str:
    """The file's text without ``option`` in ``section`` (crudini on a private copy)."""
    with tempfile.TemporaryDirectory(prefix="keytools-retire-") as tmp:
        work = Path(tmp) / path.name
        work.write_bytes(path.read_bytes())
        work.chmod(0o600)
        result = subprocess.run([_crudini(), "--del", str(work), section, option], capture_output=True,
                                text=True)
        if result.returncode != 0:
            raise KeytoolsError(f"crudini could not edit {path}: "
                                f"{redaction.redact(result.stderr.strip())}", "Check the file's syntax")
        return work.read_text()


def key_lines(text: str, section: str, prefix: str = "key_id", masked: bool = False) -> list[str]:
    """The section's ``prefix``* and active_root_secret_id lines: what an operator copies (the other
    options, credentials among them, stay as they are and are never printed). ``masked``: inline
    secrets, shown by name only."""
    lines, inside = [f"[{section}]"], False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            inside = stripped == f"[{section}]"
            continue
        name = stripped.split("=", 1)[0].strip()
        if inside and (name == prefix or name.startswith(f"{prefix}_")):
            lines.append(f"{name} = <unchanged>" if masked else stripped)
        elif inside and name == "active_root_secret_id":
            lines.append(stripped)
    return lines


def retire(setup: internal.ProxySetup, ref: RootKey, edit: bool) -> RetireResult:
    path, section = where(setup)
    text = without_option(path, section, ref.option)
    backup = None
    if edit:
        original = path.read_bytes()
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        backup_path = path.with_name(f"{path.name}.keytools-{stamp}.bak")
        atomic_write(backup_path, original, mode=0o600)
        atomic_write(path, text, mode=0o600)
        backup = str(backup_path)
    return RetireResult(ref.option, ref.key_id, str(path), section, text, edit, backup,
                        setup.keys.option_prefix)
