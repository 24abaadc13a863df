"""Show, retire and restore ConfKeyManager's fixed_key across config trees.

Retiring follows the documented procedure: values must match everywhere, no Cinder row may still
use the all-zeros key id, a 0600 backup of each value is written first, then the option is deleted
with crudini (the documented tool, so every other byte of the file stays as it was) on a private
copy, checked, and swapped in atomically with the file's owner and mode. A rerun after a crash
converges: files already retired have nothing left to do.
"""

from __future__ import annotations

import base64
import datetime as dt
import difflib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from config_checks import secrets
from config_checks.inputs import AuditInput, ServiceConfig, discover
from config_checks.rules.keymanager import FIXED_KEY_SECTIONS
from keytools import cinder_db, oslo_ini, redaction
from keytools.errors import ConfigError, Forbidden, ServiceUnavailable, StateError, UsageError
from keytools.fixed_key_refs import Inventory, Reference
from keytools.fileutil import atomic_write, private_dir

OPTION = "fixed_key"
BACKUP_VERSION = 1
BOM = b"\xef\xbb\xbf"
_HEADER = re.compile(r"^\s*\[([^\]]+)\]\s*$")


@dataclass(frozen=True)
class Placement:
    """One fixed_key assignment: where it is and its fingerprint (never the value in output)."""

    node: str
    service: str
    path: str
    relpath: str
    section: str
    line: int
    value: str = field(repr=False)

    @property
    def digest(self) -> str:
        return secrets.digest(self.value, as_hex_key=True)

    def to_dict(self) -> dict[str, Any]:
        return {"node": self.node, "service": self.service, "path": self.path, "relpath": self.relpath,
                "section": self.section,
                "line": self.line, "value": "set", "length": len(self.value), "sha256": self.digest}


def placements(audit: AuditInput) -> list[Placement]:
    found: list[Placement] = []
    for cfg in audit.configs():
        if cfg.conf is None:
            continue
        for section in FIXED_KEY_SECTIONS:
            for s in cfg.conf.get_all(section, OPTION):
                if s.value:
                    redaction.register_secret(s.value)
                    found.append(Placement(cfg.node, cfg.service, s.path, cfg.rel(s.path), section, s.line, s.value))
    return found


_FIXED_KEY_LINE = re.compile(r"^([-+ ]\s*fixed_key\s*[:=])(.*?)(\r?\n?)$")


def _mask_fixed_key_line(line: str) -> str:
    """A diff line setting fixed_key keeps its option name, never its value (masked by position:
    a short value such as ``00`` is not registered for substring redaction)."""
    if line.startswith(("---", "+++")):
        return line
    m = _FIXED_KEY_LINE.match(line)
    if not m or not m.group(2).strip():
        return line
    value = m.group(2)
    return f"{m.group(1)}{value[:len(value) - len(value.lstrip())]}{redaction.MASK}{m.group(3)}"


def distinct_digests(found: Sequence[Placement]) -> dict[str, list[Placement]]:
    groups: dict[str, list[Placement]] = {}
    for p in found:
        groups.setdefault(p.digest, []).append(p)
    return groups


def show(roots: Sequence[str], per_node: bool = False) -> tuple[list[Placement], bool, list[tuple[str, str]]]:
    """Every fixed_key, whether all values match, and the files that could not be read."""
    audit = discover(roots, per_node=per_node)
    found = placements(audit)
    unreadable = [(str(p), why) for cfg in audit.configs() for p, why in cfg.unreadable]
    return found, len(distinct_digests(found)) <= 1, unreadable


# --- retire -------------------------------------------------------------------------------------

def crudini_exe() -> str:
    exe = Path(sys.executable).with_name("crudini")
    found = str(exe) if exe.exists() else shutil.which("crudini")
    if not found:
        raise UsageError("crudini is not installed", "pip install crudini (or apt-get install crudini)")
    return found


def raw_sections(text: str, wanted: str) -> list[str]:
    """Section names as written (crudini is case-sensitive, oslo.config is not)."""
    names: list[str] = []
    for line in text.lstrip("\ufeff").splitlines():
        m = _HEADER.match(line)
        if m and oslo_ini.normalize_section(m.group(1)) == wanted and m.group(1) not in names:
            names.append(m.group(1))
    return names


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def crudini_delete(data: bytes, sections: Sequence[str], name: str) -> bytes:
    """Run ``crudini --del`` for each raw section on a private copy of ``data``; return the result.

    A UTF-8 byte order mark hides the first section header from crudini: it is set aside and put back.
    """
    bom = BOM if data.startswith(BOM) else b""
    data = data[len(bom):]
    with tempfile.TemporaryDirectory(prefix="keytools-retire-") as tmp:
        copy = Path(tmp, name)
        copy.write_bytes(data)
        copy.chmod(0o600)
        for section in sections:
            result = subprocess.run([crudini_exe(), "--del", str(copy), section, OPTION],
                                    capture_output=True, text=True)
            if result.returncode != 0:
                raise ConfigError(f"{name}: crudini --del [{section}] {OPTION} failed: "
                                  f"{redaction.redact(result.stderr.strip())[:200]}")
        new = copy.read_bytes()
    last_line = data.rsplit(b"\n", 1)[-1]
    if last_line and new.endswith(b"\n") and new.rstrip(b"\r\n").endswith(last_line):
        # crudini added a newline at the end of a file that had none: take it off again
        new = new[:-2] if new.endswith(b"\r\n") and not data.endswith(b"\r") else new[:-1]
    return bom + new


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
        removed = [_decode(b) for b in old_lines[i1:i2]]
        continuation = all(not ln.strip() or ln[0] in " \t" for ln in removed[1:])
        if not removed or not re.match(rf"^{OPTION}\s*[=:]", removed[0].strip()) or not continuation:
            raise ConfigError(f"{path}: crudini would remove lines other than {OPTION}; file left as it was",
                              "Remove fixed_key by hand (crudini --del) and rerun")
    conf = oslo_ini.parse_text(_decode(new), path)
    if any(conf.get(sec, OPTION) for sec in FIXED_KEY_SECTIONS):
        raise ConfigError(f"{path}: {OPTION} still set after crudini --del; file left as it was",
                          "Check for an unusual section header and remove it by hand")


@dataclass
class FileChange:
    path: str
    node: str
    service: str
    placements: list[Placement]
    old: bytes = field(repr=False)
    new: bytes = field(repr=False)
    raw_sections: list[str]
    backup: str | None = None

    def diff(self) -> str:
        """Unified diff with the secret masked (fixed_key is registered for redaction)."""
        lines = difflib.unified_diff(_decode(self.old).splitlines(keepends=True),
                                     _decode(self.new).splitlines(keepends=True),
                                     fromfile=f"a{self.path}" if self.path.startswith("/") else f"a/{self.path}",
                                     tofile=f"b{self.path}" if self.path.startswith("/") else f"b/{self.path}")
        return redaction.redact("".join(_mask_fixed_key_line(line) for line in lines))

    def to_dict(self, dry_run: bool) -> dict[str, Any]:
        return {"path": self.path, "node": self.node, "service": self.service,
                "action": "would retire" if dry_run else "retired",
                "sections": sorted({p.section for p in self.placements}),
                "sha256": sorted({p.digest for p in self.placements}), "backup": self.backup}


def plan_retire(roots: Sequence[str], per_node: bool = False,
                seen_files: list[str] | None = None) -> list[FileChange]:
    """Check the preconditions on the files and compute every edit; nothing is written.
    ``seen_files`` (if given) receives every config file found."""
    audit = discover(roots, per_node=per_node)
    if seen_files is not None:
        seen_files.extend(str(f) for cfg in audit.configs() for f in cfg.files)
    unreadable = [(str(p), why) for cfg in audit.configs() for p, why in cfg.unreadable]
    if unreadable:
        path, why = unreadable[0]
        raise ConfigError(f"{path}: {why}; cannot tell whether it holds {OPTION}",
                          "Fix or remove the file (keytools audit lists all such files) and rerun")
    found = placements(audit)
    groups = distinct_digests(found)
    if len(groups) > 1:
        summary = "; ".join(f"{d} in {', '.join(f'{p.service}@{p.node}' for p in ps[:3])}"
                            for d, ps in groups.items())
        raise StateError(f"{OPTION} values differ ({len(groups)} distinct: {summary}); refusing to retire",
                         "Find the value the volumes were encrypted with, make every node agree, migrate, "
                         "then rerun (keytools fixed-key show)")
    by_file: dict[str, list[Placement]] = {}
    service_of: dict[str, ServiceConfig] = {}
    for p in found:
        by_file.setdefault(p.path, []).append(p)
    for cfg in audit.configs():
        for f in cfg.files:
            service_of.setdefault(str(f), cfg)
    changes: list[FileChange] = []
    for path, ps in by_file.items():
        old = Path(path).read_bytes()
        text = _decode(old)
        raws = [raw for sec in sorted({p.section for p in ps}) for raw in raw_sections(text, sec)]
        new = crudini_delete(old, raws, Path(path).name)
        verify_only_deleted(path, old, new)
        cfg = service_of[path]
        changes.append(FileChange(path, cfg.node, cfg.service, ps, old, new, raws))
    return changes


def check_inventory(inv: Inventory) -> None:
    """Refuse (exit 6) while anything references the all-zeros id or a service was not seen; an
    error that made a service blind keeps its own exit code (2 bad input, 4 unreachable)."""
    failed = [b for b in inv.blocking_blind if b.exit_code]
    if failed:
        b = failed[0]
        cls = {2: UsageError, 4: ServiceUnavailable, 5: Forbidden}.get(b.exit_code, StateError)
        raise cls(f"{b.service}: {b.reason}; refusing to retire {OPTION}",
                  f"Fix it, or pass --ignore-service {b.service} if {b.service} never used fixed_key")
    if inv.total:
        detail = ", ".join(f"{r.count} {r.service} {r.kind}" + ("" if r.certain else " (may depend)")
                           for r in _merged(inv))
        blind = "".join(f"; could not see {b.service} ({b.reason})" for b in inv.blocking_blind)
        raise StateError(f"{inv.total} reference(s) to the all-zeros key id {cinder_db.FIXED_KEY_ID} remain "
                         f"({detail}){blind}; refusing to retire {OPTION}",
                         "Finish the key migration first ('keytools migrate run', then 'keytools fixed-key "
                         "inventory'), then rerun")
    if inv.blocking_blind:
        raise StateError("could not see " + "; ".join(f"{b.service} ({b.reason})" for b in inv.blocking_blind)
                         + f"; refusing to retire {OPTION}",
                         "Give the missing database/credentials, or --ignore-service NAME for a service "
                         "that never used fixed_key")


def _merged(inv: Inventory) -> list[Reference]:
    merged: dict[tuple[str, str, bool], int] = {}
    for r in inv.references:
        merged[(r.service, r.kind, r.certain)] = merged.get((r.service, r.kind, r.certain), 0) + r.count
    return [Reference(s, k, None, None, n, c) for (s, k, c), n in merged.items()]


def check_cinder_db(db_url: str) -> dict[str, int]:
    """Refuse (exit 6) while Cinder still has rows on the all-zeros key id."""
    pw = secrets.url_password(db_url)
    redaction.register_secret(pw)
    counts = cinder_db.count_fixed_key_rows(db_url)
    if any(counts.values()):
        detail = ", ".join(f"{n} {t}" for t, n in counts.items() if n)
        raise StateError(f"the Cinder database still has rows on the all-zeros key id {cinder_db.FIXED_KEY_ID} "
                         f"({detail}); refusing to retire {OPTION}",
                         "Finish the key migration first (keytools migrate), then rerun")
    return counts


def backup_name(path: str, digest: str) -> str:
    return hashlib.sha256(os.path.abspath(path).encode()).hexdigest()[:16] + "-" + digest.split(":")[-1] + ".json"


def write_backup(backup_dir: Path, change: FileChange, inventory: Inventory | None = None) -> Path:
    st = os.stat(change.path)
    doc = {
        "version": BACKUP_VERSION,
        "path": os.path.abspath(change.path),
        "node": change.node,
        "service": change.service,
        "retired_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "entries": [{"section": p.section,
                     "raw_section": (raw_sections(_decode(change.old), p.section) or [p.section])[0], "line": p.line,
                     "option": OPTION, "value": p.value, "length": len(p.value), "sha256": p.digest}
                    for p in change.placements],
        "original_sha256": hashlib.sha256(change.old).hexdigest(),
        "retired_sha256": hashlib.sha256(change.new).hexdigest(),
        "original_b64": base64.b64encode(change.old).decode("ascii"),
        "mode": f"{st.st_mode & 0o7777:04o}",
    }
    if inventory is not None:
        doc["inventory"] = {"seen": inventory.seen, "per_service": inventory.totals(),
                            "blind": [b.as_dict() for b in inventory.blind]}
        doc["ignored_services"] = inventory.ignored
    target = backup_dir / backup_name(change.path, change.placements[0].digest)
    atomic_write(target, json.dumps(doc, indent=2) + "\n", mode=0o600)
    return target


def retire(roots: Sequence[str], backup_dir: str | None, per_node: bool = False, db_url: str | None = None,
           dry_run: bool = False, inventory: Inventory | None = None) -> list[FileChange]:
    """Plan, check the database, back up, then swap each file atomically (backup before edit).
    ``inventory`` (checked by the caller) is recorded in every backup: what was seen, what ignored."""
    if db_url:
        check_cinder_db(db_url)
    if inventory is not None and not dry_run:
        check_inventory(inventory)
    seen: list[str] = []
    changes = plan_retire(roots, per_node=per_node, seen_files=seen)
    if not dry_run:
        for path in seen:  # temp files an earlier killed run left next to any config file
            remove_stale_temps(Path(path))
    if dry_run or not changes:
        return changes
    if not backup_dir:
        raise UsageError("--backup-dir is required to retire fixed_key",
                         "Give a directory on a safe disk; it receives a 0600 copy of each value")
    bdir = private_dir(backup_dir)
    for change in changes:
        change.backup = str(write_backup(bdir, change, inventory))
        current = Path(change.path).read_bytes()
        if current != change.old:  # compare-and-swap: someone edited it since we planned
            raise StateError(f"{change.path} changed while retiring; nothing written to it", "Rerun the command")
        atomic_write(change.path, change.new, mode=None)
    return changes


def remove_stale_temps(path: Path) -> None:
    """A kill -9 during atomic_write can leave its 0600 temp file (``.<name>.*.tmp``) behind."""
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        tmp.unlink(missing_ok=True)


# --- restore ------------------------------------------------------------------------------------

@dataclass
class Restored:
    path: str
    action: str  # restored | re-inserted | already present
    sha256: str

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "action": self.action, "sha256": self.sha256}


def load_backups(backup_dir: str) -> list[dict[str, Any]]:
    bdir = Path(backup_dir)
    if not bdir.is_dir():
        raise UsageError(f"{bdir}: no such backup directory", "Give the --backup-dir used with retire")
    docs = []
    for f in sorted(bdir.glob("*.json")):
        try:
            doc = json.loads(f.read_text())
            if doc.get("version") != BACKUP_VERSION or "path" not in doc:
                raise ValueError("not a keytools fixed_key backup")
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{f}: unreadable backup ({exc})", "Restore the file from your safe copy") from None
        for e in doc["entries"]:
            redaction.register_secret(e["value"])
        doc["_file"] = str(f)
        docs.append(doc)
    if not docs:
        raise UsageError(f"{bdir}: holds no fixed_key backups", "Give the --backup-dir used with retire")
    return docs


def crudini_set(data: bytes, section: str, value: str, name: str) -> bytes:
    with tempfile.TemporaryDirectory(prefix="keytools-restore-") as tmp:
        copy = Path(tmp, name)
        copy.write_bytes(data)
        copy.chmod(0o600)
        result = subprocess.run([crudini_exe(), "--set", str(copy), section, OPTION, value],
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise ConfigError(f"{name}: crudini --set [{section}] {OPTION} failed: "
                              f"{redaction.redact(result.stderr.strip())[:200]}")
        return copy.read_bytes()


def restore(backup_dir: str, dry_run: bool = False) -> list[Restored]:
    """Put each backed-up value back: byte-identical when the file is as retire left it, otherwise
    re-inserted with crudini --set (the rest of the file keeps its later edits)."""
    by_path: dict[str, list[dict[str, Any]]] = {}
    for doc in load_backups(backup_dir):
        by_path.setdefault(doc["path"], []).append(doc)
    done: list[Restored] = []
    for path, docs in by_path.items():
        try:
            current = Path(path).read_bytes()
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read ({exc.strerror})", "Restore the config file first") from None
        digest = hashlib.sha256(current).hexdigest()
        docs.sort(key=lambda d: d["retired_at"], reverse=True)
        match_orig = next((d for d in docs if d["original_sha256"] == digest), None)
        match_retired = next((d for d in docs if d["retired_sha256"] == digest), None)
        if match_orig is not None:
            done.append(Restored(path, "already present", match_orig["entries"][0]["sha256"]))
            continue
        if match_retired is not None:
            if not dry_run:
                atomic_write(path, base64.b64decode(match_retired["original_b64"]), mode=None)
                remove_stale_temps(Path(path))
            done.append(Restored(path, "restored" if not dry_run else "would restore",
                                 match_retired["entries"][0]["sha256"]))
            continue
        doc = docs[0]
        conf = oslo_ini.parse_text(_decode(current), path)
        if any(conf.get(sec, OPTION) for sec in FIXED_KEY_SECTIONS):
            done.append(Restored(path, "already present", secrets.digest(
                next(conf.get(s, OPTION) for s in FIXED_KEY_SECTIONS if conf.get(s, OPTION)) or "", True)))
            continue
        new = current
        for entry in doc["entries"]:
            section = entry.get("raw_section") or entry["section"]
            new = crudini_set(new, section, entry["value"], Path(path).name)
        if not dry_run:
            atomic_write(path, new, mode=None)
        done.append(Restored(path, "re-inserted" if not dry_run else "would re-insert", doc["entries"][0]["sha256"]))
    return done

