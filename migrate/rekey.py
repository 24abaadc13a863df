"""``migrate rekey``: give Cinder volumes whose key is fixed_key (or any named volume) a new key.

A migrated volume's secret still holds fixed_key, because its LUKS header was made with it. This
re-keys the header and the database, one volume at a time and never with the single
``luksChangeKey`` step, so that at every instant the header has a keyslot the key the database
points at opens:

1. a new secret with a fresh random key of the volume type's key size, ACL'd like the old one
   (the old secret's readers plus the owner, or the project with ``--acl project``), read back;
2. journal the intent; ``cryptsetup luksAddKey`` (old passphrase unlocks, new one in a free slot)
   and a test of the new passphrase;
3. compare-and-swap ``encryption_key_id`` old -> new (a volume changed meanwhile is left alone and
   its new keyslot removed again);
4. remove every keyslot the old key (and fixed_key) opens, prove neither opens the header any
   more, optionally re-encrypt the data with a new volume key (LUKS2), journal done.

A rerun takes the journal as a shortcut and re-checks the truth: the row's key id and which key
opens which slot. The old secret is never deleted: snapshots and backups keep copies of the old
header and still use it (they are reported).
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from keytools import redaction
from keytools.cinder_db import FIXED_KEY_ID
from keytools.errors import ConfigError, KeytoolsError, NotFound, ProblemsFound, ServiceUnavailable
from keytools.logs import log_event
from keytools.progress import progress
from keytools.secret_store import secret_id
from migrate import journal as jr
from migrate import luks as lk
from migrate.barbican import Barbican
from migrate.db import RekeyDB, VolumeRow
from migrate.keyslots import Header, HeaderError, Pbkdf

LOG = logging.getLogger("keytools.migrate")
NAME_PREFIX = "keytools-rekey"
GIB = 1024 ** 3

REKEYED, WOULD, REFUSED, LEFT, ERROR = "rekeyed", "would rekey", "refused", "left alone", "error"
LUKS1_NOTE = ("LUKS1 header: the passphrase was re-keyed but the volume key stayed (cryptsetup reencrypt "
              "works on LUKS2 only, and converting to LUKS2 is not done because qemu's native LUKS driver, "
              "used by Nova for attached volumes, reads LUKS1 only)")
IN_USE_NOTE = ("attached: an offline reencryption under an open mapping would corrupt the data; the volume key "
               "stayed: detach it and rerun with --volume ID --reencrypt-data")
KEPT_NOTE = ("the volume key stayed (keyslot change only): an old copy of the header plus the old key still gives "
             "it; --reencrypt-data rotates it on LUKS2")


def secret_name(volume_id: str, old_key_id: str) -> str:
    """The name of the new secret, findable by a rerun whose run died before it learnt the ref."""
    return f"{NAME_PREFIX}:volume:{volume_id}:from:{old_key_id}"


def journal_path(state_dir: str | os.PathLike[str] | None, db_identity: str) -> Path:
    path = jr.journal_path(state_dir, db_identity)
    return path.with_name("rekey-" + path.name)


# ---- the journal, replayed ------------------------------------------------------------------------


@dataclass
class Attempt:
    """One volume's move away from one old key id, as the journal remembers it."""

    old: str
    refs: list[str] = field(default_factory=list)  # new secrets stored for it, oldest first
    intents: int = 0
    done_ref: str | None = None
    lost: set[str] = field(default_factory=set)
    digest_before: str | None = None  # volume-key digest before --reencrypt-data started
    reencrypted: bool = False

    def ref_for(self, key_id: str | None) -> str | None:
        return next((r for r in self.refs if key_id and secret_id(r) == key_id), None)

    @property
    def unfinished(self) -> bool:
        return (not self.done_ref and any(r not in self.lost for r in self.refs)) or \
            (self.digest_before is not None and not self.reencrypted)


def replay(path: Path) -> dict[str, list[Attempt]]:
    """volume id -> its attempts, oldest first."""
    out: dict[str, list[Attempt]] = {}
    for doc in jr.records(path):
        vid, old, ref, op = doc.get("id"), doc.get("old"), doc.get("ref"), doc.get("op")
        if not vid or not old:
            continue
        attempts = out.setdefault(vid, [])
        att = next((a for a in attempts if a.old == old), None)
        if att is None:
            att = Attempt(old)
            attempts.append(att)
        if op == "intent":
            att.intents += 1
        elif op == "searched":
            att.refs += [r for r in doc.get("refs", []) if r not in att.refs]
            att.intents = len(att.refs)
        elif ref and ref not in att.refs and op in ("stored", "added", "swapped", "done"):
            att.refs.append(ref)
        if op == "done" and ref:
            att.done_ref = ref
        elif op == "lost" and ref:
            att.lost.add(ref)
        elif op == "reencrypt":
            att.digest_before = doc.get("digest")
        elif op == "reencrypted":
            att.reencrypted = True
    return out


# ---- results ------------------------------------------------------------------------------------------


@dataclass
class VolumeResult:
    """What happened to one volume; ``reason`` says why when it was not re-keyed."""

    volume_id: str
    status: str = ""
    reason: str = ""
    path: str | None = None
    header: str | None = None  # "LUKS1" / "LUKS2"
    old_key_id: str | None = None
    new_key_id: str | None = None
    key_bits: int | None = None
    reused_secret: bool = False
    slots_removed: list[int] = field(default_factory=list)
    old_key_kept_for: list[dict[str, str]] = field(default_factory=list)  # snapshots/backups on the old id
    volume_key: str | None = None  # "rotated" / "kept"
    volume_key_note: str = ""
    unused_secret: str | None = None  # made for a volume that changed meanwhile
    unreachable: bool = False

    @property
    def ok(self) -> bool:
        return self.status in (REKEYED, WOULD)

    def as_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc.pop("unreachable")
        doc["ok"] = self.ok
        return doc


@dataclass
class RekeyResult:
    volumes: list[VolumeResult]
    journal: str
    dry_run: bool
    concurrency: int
    concurrency_note: str = ""
    seconds: float = 0.0

    @property
    def bad(self) -> list[VolumeResult]:
        return [r for r in self.volumes if not r.ok]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.volumes:
            out[r.status] = out.get(r.status, 0) + 1
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "counts": self.counts(), "volumes": [r.as_dict() for r in self.volumes],
                "journal": self.journal, "concurrency": self.concurrency,
                "concurrency_note": self.concurrency_note, "seconds": round(self.seconds, 3)}

    def failure(self) -> KeytoolsError | None:
        """Exit 1 when any selected volume was refused, left alone or failed (4 when Barbican
        could not be reached for one); None when every one was re-keyed."""
        bad = self.bad
        if not bad:
            return None
        what = f"{len(bad)} of {len(self.volumes)} volume(s) not re-keyed"
        hint = "See each volume's reason; fix it and rerun 'keytools migrate rekey': it continues where it stopped"
        if any(r.unreachable for r in bad):
            return ServiceUnavailable(what + " (Barbican unreachable)", hint)
        return ProblemsFound(what, hint)


# ---- options --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RekeyOptions:
    volumes: tuple[str, ...] = ()
    host: str | None = None
    cluster: str | None = None
    include_in_use: bool = False
    dry_run: bool = False
    concurrency: int = 2
    pbkdf: Pbkdf = field(default_factory=Pbkdf)
    reencrypt_data: bool = False
    progress: bool | None = None


def memory_bound(requested: int, pbkdf: Pbkdf, available: int | None = None) -> tuple[int, str]:
    """``--concurrency`` lowered so that memory-hard keyslots (argon2id: up to 1 GiB each, and
    cryptsetup's default for LUKS2) fit in the memory available now."""
    if not pbkdf.memory_hard:
        return requested, ""
    if available is None:
        available = _mem_available()
    cap = max(1, available // GIB)
    if requested <= cap:
        return requested, ""
    return cap, (f"--concurrency {requested} lowered to {cap}: an argon2id keyslot takes up to 1 GiB of memory "
                 f"and {available / GIB:.1f} GiB are available (--pbkdf pbkdf2 needs none)")


def _mem_available() -> int:
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 2 * GIB


# ---- the run ----------------------------------------------------------------------------------------------


class Rekeyer:
    """One ``migrate rekey`` run: selection, then each volume's steps (see the module)."""

    def __init__(self, db: RekeyDB, spec: lk.PathSpec, barbican: Barbican | None, cryptsetup: str,
                 fixed_key: bytes | None, path: Path, options: RekeyOptions,
                 readers: Callable[[VolumeRow], list[str]] | None = None) -> None:
        self.db = db
        self.spec = spec
        self.barbican = barbican
        self.cryptsetup = cryptsetup
        self.fixed_key = fixed_key
        self.path = path
        self.options = options
        self.readers = readers or (lambda v: [v.user_id] if v.user_id else [])
        self.attempts = replay(path)
        self._journal: jr.Journal | None = None
        self._lock = threading.Lock()
        self._payloads: dict[str, bytes] = {}
        self._asked: set[str] = set()

    @property
    def journal(self) -> jr.Journal:
        with self._lock:
            if self._journal is None:
                self._journal = jr.Journal(self.path)
            return self._journal

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()

    def _record(self, op: str, volume_id: str, old: str, ref: str | None = None, **extra: Any) -> None:
        self.journal.record(op, "volumes", volume_id, ref, old=old, **extra)

    def _bb(self) -> Barbican:
        if self.barbican is None:
            raise KeytoolsError("internal error: this run needs Barbican but was given none")
        return self.barbican

    # ---- keys ------------------------------------------------------------------------------------------

    def key_of(self, key_id: str) -> bytes:
        """The bytes behind a key id: fixed_key for the all-zeros id, else the secret's payload."""
        if key_id == FIXED_KEY_ID:
            if self.fixed_key is None:
                raise ConfigError("the volume is on the all-zeros key id but fixed_key is not given",
                                  "Pass --fixed-key-file or --config-file with [key_manager] fixed_key")
            return self.fixed_key
        with self._lock:
            cached = self._payloads.get(key_id)
        if cached is None:
            cached = self._bb().payload(self._bb().ref_of(key_id))
            redaction.register_secret(cached)
            with self._lock:
                self._payloads[key_id] = cached
        return cached

    def is_fixed(self, key_id: str) -> bool:
        return key_id == FIXED_KEY_ID or (self.fixed_key is not None
                                          and hmac.compare_digest(self.key_of(key_id), self.fixed_key))

    # ---- selection -------------------------------------------------------------------------------------

    def select(self) -> tuple[list[str], list[VolumeResult]]:
        """Volume ids to work on (named ones, those keyed with fixed_key in scope, unfinished ones
        from the journal) and results for volumes that could not even be judged."""
        early: list[VolumeResult] = []
        chosen: dict[str, None] = dict.fromkeys(self.options.volumes)
        if not self.options.volumes:
            if self.fixed_key is None:
                raise ConfigError("fixed_key is not given, so the volumes it keys cannot be found",
                                  "Pass --fixed-key-file or --config-file with [key_manager] fixed_key, or name "
                                  "volumes with --volume")
            for row in self.db.encrypted_volumes(self.options.host, self.options.cluster):
                try:
                    if row.key_id and self.is_fixed(row.key_id):
                        chosen[row.id] = None
                except KeytoolsError as exc:
                    early.append(VolumeResult(row.id, ERROR, f"cannot read its secret {row.key_id}: {exc.message}",
                                              old_key_id=row.key_id, unreachable=isinstance(exc, ServiceUnavailable)))
        self._asked = set(chosen)  # named, or keyed with fixed_key now: the rest only finish a killed run
        for vid, attempts in self.attempts.items():
            if any(a.unfinished for a in attempts):
                chosen.setdefault(vid, None)
        return list(chosen), early

    # ---- one volume ------------------------------------------------------------------------------------

    def rekey_one(self, volume_id: str) -> VolumeResult:
        res = VolumeResult(volume_id)
        try:
            self._rekey(volume_id, res)
        except HeaderError as exc:
            res.status, res.reason = (ERROR if exc.reason == lk.ERROR else REFUSED), exc.message
        except KeytoolsError as exc:
            res.status, res.reason = ERROR, exc.message
            res.unreachable = isinstance(exc, ServiceUnavailable)
        self._log(res)
        return res

    def _rekey(self, volume_id: str, res: VolumeResult) -> None:
        vol = self.db.volume(volume_id)
        if vol is None or not vol.key_id:
            res.status, res.reason = LEFT, ("no such volume (deleted?)" if vol is None else "the volume has no key id")
            return
        res.path = self.spec.path_for(volume_id)
        if res.path is None:
            res.status, res.reason = REFUSED, "--luks names no path for it"
            return
        if not self._may_touch(vol, res):
            return
        header = Header(res.path, self.cryptsetup, self.options.pbkdf)
        header.check()
        res.header = f"LUKS{header.version}"
        attempt = next((a for a in self.attempts.get(volume_id, []) if a.ref_for(vol.key_id) and a.unfinished),
                       None)
        if attempt is not None:  # a killed run swapped this volume already: finish its step 4
            ref = attempt.ref_for(vol.key_id)
            assert ref is not None
            res.old_key_id, res.new_key_id = attempt.old, vol.key_id
            if self.options.dry_run:
                res.status, res.reason = WOULD, "finish a killed run: remove the old keyslot(s)"
                return
            self._finish(vol, header, attempt.old, self.key_of(attempt.old), ref, self._bb().payload(ref), res,
                         attempt)
            return
        old_kid = vol.key_id
        res.old_key_id = old_kid
        old_key = self.key_of(old_kid)
        continuing = any(a.old == old_kid and a.unfinished for a in self.attempts.get(volume_id, []))
        if volume_id not in self._asked and not continuing and not self.is_fixed(old_kid):
            self._abandon(vol, header, old_key, res)  # a killed run's volume, re-keyed by someone else since
            return
        old_slot = header.slot_of(old_key)
        if old_slot is None:
            res.status, res.reason = REFUSED, ("the key the database points at does not open the header"
                                              + (" (fixed_key)" if old_kid == FIXED_KEY_ID else ""))
            return
        res.key_bits = vol.key_bits or len(old_key) * 8
        if res.key_bits not in (128, 256, 512):
            res.status, res.reason = REFUSED, f"the volume type's key size {res.key_bits} is not 128, 256 or 512 bits"
            return
        attempt = self._attempt(volume_id, old_kid)
        if header.free_slots() == 0 and not any(r not in attempt.lost for r in attempt.refs):
            res.status, res.reason = REFUSED, f"no free keyslot ({header.capacity} of {header.capacity} used)"
            return
        if self.options.dry_run:
            res.status = WOULD
            return
        ref, new_key, res.reused_secret = self._new_secret(vol, old_kid, attempt, res.key_bits)  # step 1
        new_id = secret_id(ref)
        res.new_key_id = new_id
        if not res.reused_secret or header.slot_of(new_key) is None:  # step 2 (a reused one may be in already)
            self._record("add", volume_id, old_kid, ref)
            header.add(old_key, new_key)
            self._record("added", volume_id, old_kid, ref)
        if not self.db.swap_key(volume_id, old_kid, new_id):  # step 3
            self._lost(vol, header, old_key, ref, new_key, res)
            return
        self._record("swapped", volume_id, old_kid, ref)
        self._finish(vol, header, old_kid, old_key, ref, new_key, res, attempt, old_slot)  # step 4

    def _may_touch(self, vol: VolumeRow, res: VolumeResult) -> bool:
        if vol.status == "available" and not vol.in_use:
            return True
        if vol.in_use and self.options.include_in_use:
            return True
        res.status = LEFT
        res.reason = ("in use (attached): add --include-in-use (a keyslot change does not touch an open mapping)"
                      if vol.in_use else f"status {vol.status}: only available volumes (and in-use ones with "
                      "--include-in-use) are re-keyed")
        return False

    def _attempt(self, volume_id: str, old: str) -> Attempt:
        attempts = self.attempts.setdefault(volume_id, [])
        att = next((a for a in attempts if a.old == old), None)
        if att is None:
            att = Attempt(old)
            attempts.append(att)
        return att

    def _new_secret(self, vol: VolumeRow, old_kid: str, attempt: Attempt, bits: int) -> tuple[str, bytes, bool]:
        """Step 1: a stored, unused secret of the right size from an earlier run, else a new one;
        ACL'd, read back. Returns (ref, key, reused)."""
        bb = self._bb()
        name = secret_name(vol.id, old_kid)
        if attempt.intents > len(attempt.refs):  # a run died while creating: Barbican knows by name
            found = bb.find(name)
            attempt.refs += [r for r in found if r not in attempt.refs]
            attempt.intents = len(attempt.refs)
            self._record("searched", vol.id, old_kid, refs=found)
        readers = self._readers(vol, old_kid)
        for ref in reversed(attempt.refs):
            if ref in attempt.lost or self.db.referenced(secret_id(ref)):
                continue
            try:
                key = bb.payload(ref)
            except NotFound:
                continue
            if len(key) * 8 == bits:
                redaction.register_secret(key)
                bb.grant_read(ref, readers)
                return ref, key, True
        key = secrets.token_bytes(bits // 8)
        redaction.register_secret(key)
        self._record("intent", vol.id, old_kid, name=name)
        ref, _uncertain = bb.create(name, key)
        self._record("stored", vol.id, old_kid, ref)
        attempt.refs.append(ref)
        bb.grant_read(ref, readers)
        bb.check_payload(ref, key)
        return ref, key, False

    def _readers(self, vol: VolumeRow, old_kid: str) -> list[str]:
        """The old secret's readers plus the owner (or the project: ``--acl project``)."""
        users = list(self.readers(vol))
        if old_kid != FIXED_KEY_ID:
            users += self._bb().acl_users(self._bb().ref_of(old_kid))
        return list(dict.fromkeys(u for u in users if u))

    def _lost(self, vol: VolumeRow, header: Header, old_key: bytes, ref: str, new_key: bytes,
              res: VolumeResult) -> None:
        """Step 3 lost: the volume was deleted or re-keyed meanwhile. Take our keyslot out again
        (only while the old key still opens the header) and leave it alone."""
        now = self.db.volume(vol.id)
        keep = [old_key]
        if now is not None and now.key_id and now.key_id != res.old_key_id:
            try:
                keep.insert(0, self.key_of(now.key_id))  # the key the row points at now (another run's)
            except KeytoolsError:
                pass
        for remaining in keep:
            if header.slot_of(remaining) is not None:
                header.remove_key(new_key, remaining)
                break
        self._record("lost", vol.id, res.old_key_id or "", ref)
        res.status = LEFT
        res.reason = ("deleted meanwhile" if now is None else
                      f"re-keyed meanwhile (now key {now.key_id}); its keyslot for the new key was removed again")
        res.unused_secret, res.new_key_id = secret_id(ref), None

    def _abandon(self, vol: VolumeRow, header: Header, current: bytes, res: VolumeResult) -> None:
        """A killed run stored (maybe added) a new key, then the volume moved to another key
        before any rerun: take our keyslots out with the current key and leave it alone."""
        for attempt in self.attempts.get(vol.id, []):
            for ref in [r for r in attempt.refs if r not in attempt.lost]:
                try:
                    ours = self._bb().payload(ref)
                except NotFound:
                    ours = None
                if ours is not None and header.slot_of(current) is not None:
                    header.remove_key(ours, current)
                self._record("lost", vol.id, attempt.old, ref)
                attempt.lost.add(ref)
                res.unused_secret = secret_id(ref)
        res.status, res.reason = LEFT, f"re-keyed meanwhile (now key {vol.key_id}); a killed run's keyslot was removed"

    def _finish(self, vol: VolumeRow, header: Header, old_kid: str, old_key: bytes, ref: str, new_key: bytes,
                res: VolumeResult, attempt: Attempt, old_slot: int | None = None) -> None:
        """Step 4: old keyslots out, proof, the volume key (``--reencrypt-data``), journal done."""
        if self.options.reencrypt_data or attempt.digest_before:  # a killed --reencrypt-data:
            if header.reencrypt_pending():
                header.reencrypt(new_key, resume=True)  # cryptsetup's own resume
            else:
                header.drop_unbound()  # killed while it started: it starts again below
        if header.slot_of(new_key) is None:
            raise HeaderError(lk.ERROR, "the key the database points at does not open the header; nothing removed")
        known = old_slot if old_slot is not None and old_slot >= 0 else None
        res.slots_removed = header.remove_key(old_key, new_key, known)
        if self.fixed_key is not None and not hmac.compare_digest(self.fixed_key, old_key) \
                and not hmac.compare_digest(self.fixed_key, new_key):
            res.slots_removed += header.remove_key(self.fixed_key, new_key)  # proof included: loops until none
        self._volume_key(vol, header, old_kid, ref, new_key, res, attempt)
        if not attempt.done_ref:
            self._record("done", vol.id, old_kid, ref)
            attempt.done_ref = ref
        res.status = REKEYED
        res.old_key_kept_for = self.db.key_users(old_kid, vol.id)

    def _volume_key(self, vol: VolumeRow, header: Header, old_kid: str, ref: str, new_key: bytes,
                    res: VolumeResult, attempt: Attempt) -> None:
        if header.version != 2:
            res.volume_key, res.volume_key_note = "kept", LUKS1_NOTE if self.options.reencrypt_data else KEPT_NOTE
            return
        if not self.options.reencrypt_data and attempt.digest_before is None:
            res.volume_key, res.volume_key_note = "kept", KEPT_NOTE
            return
        if vol.in_use and attempt.digest_before is None:
            res.volume_key, res.volume_key_note = "kept", IN_USE_NOTE
            return
        digest = header.volume_key_digest()
        if attempt.digest_before is None:
            attempt.digest_before = digest
            self._record("reencrypt", vol.id, old_kid, ref, digest=digest)
        if digest == attempt.digest_before and not attempt.reencrypted:
            header.reencrypt(new_key)
            digest = header.volume_key_digest()
        if digest == attempt.digest_before:
            raise HeaderError(lk.ERROR, "cryptsetup reencrypt ended but the volume key did not change")
        if not attempt.reencrypted:
            self._record("reencrypted", vol.id, old_kid, ref)
            attempt.reencrypted = True
        res.volume_key = "rotated"

    def _log(self, res: VolumeResult) -> None:
        level = logging.INFO if res.ok else logging.WARNING
        text = {REKEYED: f"Re-keyed volume {res.volume_id}: key {res.old_key_id} -> {res.new_key_id}",
                WOULD: f"Would re-key volume {res.volume_id} (key {res.old_key_id})"}.get(
                    res.status, f"Volume {res.volume_id} not re-keyed ({res.status}): {res.reason}")
        fields = {k: v for k, v in res.as_dict().items() if k in (
            "status", "reason", "path", "header", "old_key_id", "new_key_id", "volume_key", "slots_removed")}
        log_event(LOG, level, text, "volume_rekey", volume_id=res.volume_id, **fields)

    # ---- all of them -----------------------------------------------------------------------------------

    def run(self) -> RekeyResult:
        start = time.monotonic()
        concurrency, note = memory_bound(self.options.concurrency, self.options.pbkdf)
        if note:
            LOG.warning(note)
        ids, results = self.select()
        show = None if self.options.progress is None else self.options.progress
        by_id: dict[str, VolumeResult] = {}
        with progress(len(ids), "Re-keying", enabled=show if ids else False) as advance:
            def work(vid: str) -> None:
                by_id[vid] = self.rekey_one(vid)
                advance(1)

            with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="rekey") as pool:
                list(pool.map(work, ids))
        results += [by_id[v] for v in ids]
        return RekeyResult(results, str(self.path), self.options.dry_run, concurrency, note,
                           time.monotonic() - start)


def rekey_volumes(db: RekeyDB, spec: lk.PathSpec, connect: Callable[[], Barbican], cryptsetup: str,
                  fixed_key: bytes | None, path: Path, options: RekeyOptions,
                  readers: Callable[[VolumeRow], list[str]] | None = None) -> RekeyResult:
    """The library entry point of ``keytools migrate rekey`` (see the module)."""
    db.check_rekey()
    rekeyer = Rekeyer(db, spec, connect(), cryptsetup, fixed_key, path, options, readers)
    try:
        return rekeyer.run()
    finally:
        rekeyer.close()


def iter_unfinished(path: Path) -> Iterator[str]:
    """Volumes a killed run left between steps (status, tests)."""
    for vid, attempts in replay(path).items():
        if any(a.unfinished for a in attempts):
            yield vid
