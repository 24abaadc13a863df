"""Edit a config file with crudini on a private copy, and check that the edit did only that.

crudini is the documented tool: every byte other than the option stays as it was.
"""

from __future__ import annotations

import difflib
import re
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from config_checks.fixed_key.placements import OPTION
from config_checks.rules.keymanager import FIXED_KEY_SECTIONS
from keytools import oslo_ini, redaction
from keytools.errors import ConfigError
from keytools.tools import find_tool

BOM = b"\xef\xbb\xbf"
_HEADER = re.compile(r"^\s*\[([^\]]+)\]\s*$")


def crudini_exe() -> str:
    return find_tool("crudini", "pip install crudini (or apt-get install crudini)")


def raw_sections(text: str, wanted: str) -> list[str]:
    """Section names as written (crudini is case-sensitive, oslo.config is not)."""
    names: list[str] = []
    for line in text.lstrip("\ufeff").splitlines():
        m = _HEADER.match(line)
        if m and oslo_ini.normalize_section(m.group(1)) == wanted and m.group(1) not in names:
            names.append(m.group(1))
    return names


def crudini_delete(data: bytes, sections: Sequence[str], name: str) -> bytes:
    """Run ``crudini --del`` for each raw section on a private copy of ``data``; return the result.

    A UTF-8 byte order mark hides the first section header from crudini: it is set aside and put back.
    """
    bom = BOM if data.startswith(BOM) else b""
    data = data[len(bom):]
    new = _on_private_copy(data, name, [("--del", section) for section in sections], "keytools-retire-")
    last_line = data.rsplit(b"\n", 1)[-1]
    if last_line and new.endswith(b"\n") and new.rstrip(b"\r\n").endswith(last_line):
        # crudini added a newline at the end of a file that had none: take it off again
        new = new[:-2] if new.endswith(b"\r\n") and not data.endswith(b"\r") else new[:-1]
    return bom + new


def crudini_set(data: bytes, section: str, value: str, name: str) -> bytes:
    """Run ``crudini --set [section] fixed_key value`` on a private copy of ``data``; return the result."""
    return _on_private_copy(data, name, [("--set", section, value)], "keytools-restore-")


def _on_private_copy(data: bytes, name: str, steps: Sequence[tuple[str, ...]], prefix: str) -> bytes:
    """Run crudini once per (verb, section[, value]) step on a 0600 copy of ``data`` named ``name``
    in a private temp directory (the real file is never touched here); return the copy's bytes."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        copy = Path(tmp, name)
        copy.write_bytes(data)
        copy.chmod(0o600)
        for verb, section, *value in steps:
            result = subprocess.run([crudini_exe(), verb, str(copy), section, OPTION, *value],
                                    capture_output=True, text=True)
            if result.returncode != 0:
                raise ConfigError(f"{name}: crudini {verb} [{section}] {OPTION} failed: "
                                  f"{redaction.redact(result.stderr.strip())[:200]}")
        return copy.read_bytes()


def verify_only_deleted(path: str, old: bytes, new: bytes) -> None:
    """The edit may only remove fixed_key lines (and their continuation lines)."""
    old_lines = old.splitlines(keepends=True)
    new_lines = new.splitlines(keepends=True)
    for tag, i1, i2, _j1, _j2 in difflib.SequenceMatcher(a=old_lines, b=new_lines, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        if tag != "delete":
            raise ConfigError(f"{path}: crudini would change more than the {OPTION} line(s); file left as it was",
                              "Remove fixed_key by hand (crudini --del) and rerun")
        removed = [oslo_ini.decode(b) for b in old_lines[i1:i2]]
        continuation = all(not ln.strip() or ln[0] in " \t" for ln in removed[1:])
        if not removed or not re.match(rf"^{OPTION}\s*[=:]", removed[0].strip()) or not continuation:
            raise ConfigError(f"{path}: crudini would remove lines other than {OPTION}; file left as it was",
                              "Remove fixed_key by hand (crudini --del) and rerun")
    conf = oslo_ini.parse_text(oslo_ini.decode(new), path)
    if any(conf.get(sec, OPTION) for sec in FIXED_KEY_SECTIONS):
        raise ConfigError(f"{path}: {OPTION} still set after crudini --del; file left as it was",
                          "Check for an unusual section header and remove it by hand")
