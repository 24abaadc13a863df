"""Changing a LUKS header's keyslots with cryptsetup: what ``migrate rekey`` does to a header.

``migrate.luks`` only reads headers (``migrate verify --luks``); this module writes them, one
cryptsetup call per step so that a kill between two steps leaves a header some known key opens:
``luksAddKey`` (the old passphrase unlocks, the new one goes into a free slot), ``open
--test-passphrase`` (which slot a key opens), ``luksKillSlot`` (a slot, verified with a passphrase
that stays) and ``reencrypt`` (LUKS2 only: a new volume key). Passphrases are os-brick's (hex of
the key bytes); they reach cryptsetup on stdin or through a pipe (``/dev/fd/N``), never a file or
the command line. Works on block devices and on plain image files (no device-mapper needed).
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from keytools.errors import KeytoolsError
from migrate import luks as lk

NO_FREE_SLOT = "no free keyslot"
LUKS1_SLOTS = 8
LUKS2_SLOTS = 32
_UNLOCKED = re.compile(rb"Key slot (\d+) unlocked")
_CREATED = re.compile(rb"Key slot (\d+) created")
_LUKS1_SLOT = re.compile(r"^Key Slot (\d+): ENABLED", re.M)
_LUKS2_SLOT = re.compile(r"^\s+(\d+): luks2", re.M)


class HeaderError(KeytoolsError):
    """A header cannot be used or changed; ``reason`` is one of luks' verdicts or NO_FREE_SLOT."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Pbkdf:
    """``--pbkdf``/``--pbkdf-force-iterations`` for new keyslots; empty: cryptsetup's defaults
    (argon2id for LUKS2: about a second and up to 1 GiB of memory per keyslot)."""

    kind: str | None = None
    iterations: int | None = None

    def args(self, version: int) -> list[str]:
        out: list[str] = []
        if self.kind and version != 1:  # LUKS1 keyslots are always pbkdf2
            out += ["--pbkdf", self.kind]
        if self.iterations:
            out += ["--pbkdf-force-iterations", str(self.iterations)]
        return out

    @property
    def memory_hard(self) -> bool:
        return self.kind not in ("pbkdf2",)


class Header:
    """One LUKS header (a block device or an image file) and the cryptsetup that changes it."""

    def __init__(self, path: str, cryptsetup: str, pbkdf: Pbkdf | None = None, timeout: float = lk.TIMEOUT) -> None:
        self.path = path
        self.cryptsetup = cryptsetup
        self.pbkdf = pbkdf or Pbkdf()
        self.timeout = timeout
        self._version: int | None = None

    # ---- running cryptsetup ----------------------------------------------------------------------

    def _run(self, args: Sequence[str], stdin: bytes = b"",
             extra_key: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        """cryptsetup ARGS; ``extra_key`` is handed over through a pipe named /dev/fd/N (its
        ``{fd}`` placeholder in ``args``), so no key ever touches a file or the command line."""
        read_fd = -1
        try:
            if extra_key is not None:
                read_fd, write_fd = os.pipe()
                os.write(write_fd, extra_key)  # < PIPE_BUF: never blocks
                os.close(write_fd)
                args = [a.replace("{fd}", str(read_fd)) for a in args]
            argv = [self.cryptsetup, *args]
            return subprocess.run(argv, input=stdin, capture_output=True, timeout=self.timeout,  # noqa: S603
                                  env={**os.environ, "LC_ALL": "C"}, pass_fds=(read_fd,) if read_fd >= 0 else ())
        except subprocess.TimeoutExpired:
            raise HeaderError(lk.ERROR, f"cryptsetup did not answer within {self.timeout:.0f} s") from None
        except OSError as exc:
            raise HeaderError(lk.ERROR, f"cannot run cryptsetup: {exc.strerror or exc}") from None
        finally:
            if read_fd >= 0:
                os.close(read_fd)

    @staticmethod
    def _text(proc: subprocess.CompletedProcess[bytes]) -> str:
        return " ".join((proc.stderr + b" " + proc.stdout).decode(errors="replace").split())[:300]

    # ---- reading --------------------------------------------------------------------------------------

    def check(self) -> None:
        """Refuse a missing, unreadable or non-LUKS path before any cryptsetup call."""
        early = lk.precheck(self.path)
        if early is not None:
            raise HeaderError(*early)

    def dump(self) -> str:
        proc = self._run(["luksDump", self.path])
        if proc.returncode != 0:
            text = self._text(proc)
            raise HeaderError(lk.NOT_LUKS if "not a valid LUKS" in text else lk.ERROR, text)
        return proc.stdout.decode(errors="replace")

    @property
    def version(self) -> int:
        if self._version is None:
            found = re.search(r"^Version:\s*(\d+)", self.dump(), re.M)
            self._version = int(found.group(1)) if found else 0
        return self._version

    def slots(self, text: str | None = None) -> list[int]:
        """Used keyslots, from luksDump."""
        text = text if text is not None else self.dump()
        pattern = _LUKS1_SLOT if self.version == 1 else _LUKS2_SLOT
        if self.version != 1:  # only the Keyslots: section
            text = text.split("Keyslots:", 1)[-1].split("Tokens:", 1)[0]
        return sorted(int(n) for n in pattern.findall(text))

    @property
    def capacity(self) -> int:
        return LUKS1_SLOTS if self.version == 1 else LUKS2_SLOTS

    def free_slots(self) -> int:
        return self.capacity - len(self.slots())

    def slot_of(self, key: bytes, slot: int | None = None) -> int | None:
        """The keyslot ``key`` (os-brick's passphrase of it) opens, or None when none does;
        ``slot``: try only that one (each slot tried costs one PBKDF: seconds with argon2id)."""
        only = ["--key-slot", str(slot)] if slot is not None else []
        proc = self._run(["open", "--test-passphrase", "--readonly", "-v", *only, "--key-file", "-", self.path],
                         stdin=lk.passphrase(key))
        if proc.returncode == 0:
            found = _UNLOCKED.search(proc.stdout + proc.stderr)
            return int(found.group(1)) if found else -1
        if proc.returncode == 2:
            return None
        text = self._text(proc)
        raise HeaderError(lk.NOT_LUKS if "not a valid LUKS" in text else lk.ERROR,
                          f"cryptsetup exit {proc.returncode}: {text}")

    def opens(self, key: bytes) -> bool:
        return self.slot_of(key) is not None

    def volume_key_digest(self) -> str:
        """The header's digest of its volume key (not the key): changes when the volume key does."""
        text = self.dump()
        if self.version == 1:
            found = re.search(r"^MK digest:\s*(.+)$", text, re.M)
            return found.group(1).strip() if found else ""
        digests = text.split("Digests:", 1)[-1]
        found = re.search(r"Digest:\s*((?:[0-9a-f]{2}\s+)+)", digests)
        return " ".join(found.group(1).split()) if found else ""

    def reencrypt_pending(self) -> bool:
        """A LUKS2 reencryption was started and not finished (a crash, a kill)."""
        if self.version != 2:
            return False
        found = re.search(r"^Requirements:\s*(.*)$", self.dump(), re.M)
        return bool(found and "reencrypt" in found.group(1))

    # ---- writing --------------------------------------------------------------------------------------

    def add(self, old: bytes, new: bytes) -> int:
        """A new keyslot for ``new``, unlocked by ``old``; returns its slot (tested)."""
        args = ["luksAddKey", "-q", "-v", *self.pbkdf.args(self.version), "--key-file", "-", self.path,
                "/dev/fd/{fd}"]
        proc = self._run(args, stdin=lk.passphrase(old), extra_key=lk.passphrase(new))
        if proc.returncode != 0:
            text = self._text(proc)
            if "full" in text.lower() or "no free" in text.lower() or "not enough space" in text.lower():
                raise HeaderError(NO_FREE_SLOT, f"{self.capacity - len(self.slots())} of {self.capacity} "
                                  f"keyslots free ({text})")
            if proc.returncode == 2:
                raise HeaderError(lk.DOES_NOT_OPEN, "the old key opens no keyslot")
            raise HeaderError(lk.ERROR, f"cryptsetup luksAddKey exit {proc.returncode}: {text}")
        created = _CREATED.search(proc.stdout + proc.stderr)
        slot = self.slot_of(new, int(created.group(1)) if created else None)
        if slot is None:
            raise HeaderError(lk.ERROR, "luksAddKey succeeded but the new key does not open the header")
        return slot

    def kill(self, slot: int, remaining: bytes) -> None:
        """Wipe ``slot``; cryptsetup first checks that ``remaining`` opens another slot."""
        proc = self._run(["luksKillSlot", "--key-file", "-", self.path, str(slot)], stdin=lk.passphrase(remaining))
        if proc.returncode != 0:
            raise HeaderError(lk.ERROR, f"cryptsetup luksKillSlot {slot} exit {proc.returncode}: {self._text(proc)}")

    def remove_key(self, key: bytes, remaining: bytes, known: int | None = None) -> list[int]:
        """Kill every slot ``key`` opens (verified with ``remaining``, which must stay); returns them.
        ``known``: the slot it was seen to open (saves one search); the loop ends only when ``key``
        opens no slot at all: that last test is the proof."""
        killed = []
        if known is not None and self.slot_of(key, known) == known:
            self.kill(known, remaining)
            killed.append(known)
        while (slot := self.slot_of(key)) is not None:
            if slot < 0 or slot in killed:
                raise HeaderError(lk.ERROR, f"cannot tell which keyslot to remove (slot {slot})")
            self.kill(slot, remaining)
            killed.append(slot)
        return killed

    def drop_unbound(self) -> list[int]:
        """Wipe the keyslots a reencryption killed during its start left behind: ``(unbound)``
        slots (holding the next volume key, bound to no data). They make ``open`` fail with "No
        usable keyslot" and a new ``reencrypt`` makes its own. Only while none is in progress."""
        if self.version != 2 or self.reencrypt_pending():
            return []
        text = self.dump().split("Keyslots:", 1)[-1].split("Tokens:", 1)[0]
        dropped = [int(n) for n in re.findall(r"^\s+(\d+): luks2 \(unbound\)", text, re.M)]
        for slot in dropped:
            proc = self._run(["luksKillSlot", "-q", self.path, str(slot)])
            if proc.returncode != 0:
                raise HeaderError(lk.ERROR, f"cryptsetup luksKillSlot {slot} exit {proc.returncode}: "
                                  f"{self._text(proc)}")
        return dropped

    def reencrypt(self, key: bytes, resume: bool = False) -> None:
        """A new volume key (LUKS2, offline): cryptsetup re-wraps every keyslot with ``key``
        (the one passphrase left) and re-encrypts the data; ``resume`` finishes a killed run."""
        args = ["reencrypt", "-q", "--force-offline-reencrypt"]
        args += ["--resume-only"] if resume else self.pbkdf.args(2)
        proc = self._run([*args, "--key-file", "-", self.path], stdin=lk.passphrase(key))
        if proc.returncode != 0:
            raise HeaderError(lk.ERROR, f"cryptsetup reencrypt exit {proc.returncode}: {self._text(proc)}")
