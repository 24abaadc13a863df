"""Migrate Glance images off ConfKeyManager's all-zeros ``cinder_encryption_key_id``.

Per image, the same guarantees as the Cinder path (migrate.engine): journal the intent, create a
Barbican secret holding the fixed_key bytes exactly as cinder stores a key (or reuse one a killed
run stored), journal its ref, give read access to every member of the image's owner project
(listed from Keystone now: cinder reads the key with the token of whoever creates a volume from
the image), read the payload back and compare it with fixed_key, then compare-and-swap the image
property (re-read, PATCH, re-read: Glance has no conditional update). A kill at any instant
leaves the image on the all-zeros id (a rerun reuses or finds the secret by its name) or on a
secret that was stored and read back. The journal is migrate.journal's, one per Glance endpoint.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keytools.cinder_db import FIXED_KEY_ID
from keytools.errors import Forbidden, KeytoolsError, ServiceUnavailable
from keytools.logs import log_event
from keytools.project_members import ProjectMembers
from migrate import journal as jr
from migrate.barbican import Barbican, PayloadMismatch, cinder_text, key_id
from migrate.glance_images import GlanceImages, ImageRef, count_by_project

LOG = logging.getLogger("keytools.migrate")
TABLE = "images"
MAX_ERRORS = 3  # like cinder: abort after the 4th error


def journal_path(state_dir: str | Path | None, glance: GlanceImages) -> Path:
    """One journal per Glance endpoint, next to the Cinder journals."""
    return jr.journal_path(state_dir, f"glance:{glance.describe()}")


def grant_read_users(barbican: Barbican, ref: str, users: list[str]) -> None:
    """Read ACL naming ``users`` (project access stays as Barbican defaults it, like cinder's)."""
    def put() -> None:
        barbican.client.acls.create(entity_ref=ref, users=list(users)).submit()

    barbican.call(put, f"setting the ACL of {ref}")


@dataclass
class GlanceOutcome:
    """What one Glance run did; the CLI renders it as a table or JSON."""

    total: int = 0
    migrated: int = 0
    reused: int = 0
    lost: int = 0
    errors: int = 0
    aborted: bool = False
    acl_users: int = 0
    projects_without_members: list[str] = field(default_factory=list)
    orphans: list[dict[str, str]] = field(default_factory=list)
    deleted_orphans: int = 0
    remaining: int = 0
    seconds: float = 0.0
    journal: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"service": "glance", "total": self.total, "migrated": {"images": self.migrated},
                "reused_secrets": self.reused, "lost_races": self.lost, "errors": self.errors,
                "aborted": self.aborted, "acl_users": self.acl_users,
                "projects_without_members": self.projects_without_members, "orphans": self.orphans,
                "deleted_orphans": self.deleted_orphans, "remaining": {"images": self.remaining},
                "seconds": round(self.seconds, 3),
                "rate_per_s": round(self.migrated / self.seconds, 1) if self.seconds else None,
                "journal": self.journal}


class GlanceMigrator:
    """One run against one Glance and one Barbican."""

    def __init__(self, glance: GlanceImages, barbican: Barbican, members: ProjectMembers, journal: jr.Journal,
                 key: bytes, concurrency: int = 4) -> None:
        self.glance = glance
        self.barbican = barbican
        self.members = members
        self.journal = journal
        self.key = key
        self.concurrency = max(1, concurrency)
        self.replay = jr.replay(journal.path)
        self.outcome = GlanceOutcome(journal=str(journal.path))
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._errors: list[BaseException] = []
        self._start = 0.0

    def _secret_for(self, image: ImageRef) -> tuple[str, bool]:
        spare = self.replay.reusable(TABLE, image.id)
        if spare:
            try:
                self.barbican.check_payload(spare, self.key)
                return spare, True
            except (PayloadMismatch, KeytoolsError) as exc:
                LOG.debug("not reusing %s for image %s: %s", spare, image.id, exc)
        name = jr.secret_name(TABLE, image.id)
        self.journal.record("intent", TABLE, image.id, name=name)
        ref, _uncertain = self.barbican.create(name, self.key)
        self.journal.record("stored", TABLE, image.id, ref)
        return ref, False

    def migrate_one(self, image: ImageRef) -> None:
        log_event(LOG, logging.INFO, f"Migrating image {image.id} encryption key to Barbican", "migrating_item",
                  table=TABLE, id=image.id, project=image.owner)
        users = self.members.users(image.owner) if image.owner else []
        if not users:
            with self._lock:
                if image.owner not in self.outcome.projects_without_members:
                    self.outcome.projects_without_members.append(image.owner or "")
            LOG.warning("Project %s owning image %s has no members: only the secret's own project may "
                        "read the new key", image.owner, image.id)
        ref, reused = self._secret_for(image)
        grant_read_users(self.barbican, ref, users)
        if not reused:  # a reused secret was read back just now
            self.barbican.check_payload(ref, self.key)
        new_id = key_id(ref)
        result = self.glance.swap_key(image.id, new_id)
        if not result.won:
            self.journal.record("lost", TABLE, image.id, ref)
            with self._lock:
                self.outcome.lost += 1
            log_event(LOG, logging.WARNING, f"Image {image.id} was changed meanwhile (now {result.current}); "
                      f"secret {new_id} is unused", "lost_race", table=TABLE, id=image.id, secret_id=new_id)
            return
        self.journal.record("done", TABLE, image.id, ref)
        with self._lock:
            self.outcome.migrated += 1
            self.outcome.reused += int(reused)
            self.outcome.acl_users += len(users)
            done = self.outcome.migrated
        elapsed = max(time.monotonic() - self._start, 1e-6)
        log_event(LOG, logging.INFO, f"Migrated image {image.id} to Barbican secret {new_id}, readable by "
                  f"{len(users)} member(s) of project {image.owner} ({done}/{self.outcome.total}, "
                  f"{done / elapsed:.1f}/s)", "migrated", table=TABLE, id=image.id, project=image.owner,
                  secret_id=new_id, acl_users=len(users), reused=reused, done=done, total=self.outcome.total,
                  rate=round(done / elapsed, 1))

    def _resolve_lost_refs(self) -> None:
        """Images whose secret was being created when a previous run died: ask Barbican by name."""
        for table, image_id in self.replay.unresolved_intents():
            if table != TABLE:
                continue
            refs = self.barbican.find(jr.secret_name(table, image_id))
            st = self.replay.row(table, image_id)
            for ref in refs:
                if ref not in st.refs:
                    st.refs.append(ref)
            st.intents = len(st.refs)
            self.journal.record("searched", table, image_id, refs=refs)

    def _guarded(self, image: ImageRef) -> None:
        if self._stop.is_set():
            return
        try:
            self.migrate_one(image)
        except Exception as exc:  # noqa: BLE001 - counted like cinder, reported at the end
            LOG.error("Error migrating encryption key: %s", cinder_text(exc), extra={"keytools_event": {
                "event": "item_error", "table": TABLE, "id": image.id, "error": cinder_text(exc)}})
            with self._lock:
                self._errors.append(exc)
                self.outcome.errors += 1
                if self.outcome.errors > MAX_ERRORS and not self._stop.is_set():
                    self._stop.set()
                    self.outcome.aborted = True
                    log_event(LOG, logging.ERROR, "Aborting encryption key migration (too many errors).",
                              "aborted", errors=self.outcome.errors)

    def run(self, cleanup: bool = False) -> GlanceOutcome:
        self._start = start = time.monotonic()
        images = list(self.glance.fixed_key_images())
        self.outcome.total = len(images)
        self._resolve_lost_refs()
        pending: set[Future[None]] = set()
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="glance") as pool:
            for image in images:
                if self._stop.is_set():
                    break
                while len(pending) >= self.concurrency * 4:
                    _, pending = wait(pending, return_when=FIRST_COMPLETED)
                pending.add(pool.submit(self._guarded, image))
            wait(pending)
        self.outcome.orphans = find_orphans(self.glance, jr.replay(self.journal.path))
        if cleanup and not self.outcome.aborted:
            self.outcome.deleted_orphans = self.delete_orphans(self.outcome.orphans)
        self.outcome.remaining = sum(1 for _ in self.glance.fixed_key_images())
        self.outcome.seconds = time.monotonic() - start
        if self._errors:
            raise self._final_error()
        return self.outcome

    def _final_error(self) -> KeytoolsError:
        last = self._errors[-1]
        where = f"{self.outcome.errors} error(s)" + (", aborted" if self.outcome.aborted else "")
        hint = "Fix the cause and rerun: it continues where this run stopped and reuses the secrets already stored"
        if any(isinstance(e, Forbidden) for e in self._errors):
            forbidden = next(e for e in self._errors if isinstance(e, Forbidden))
            return Forbidden(f"Glance image migration failed ({where}): {cinder_text(forbidden)}", hint)
        if isinstance(last, KeytoolsError) and not isinstance(last, ServiceUnavailable):
            return type(last)(f"Glance image migration failed ({where}): {cinder_text(last)}", hint)
        return ServiceUnavailable(f"Glance image migration failed ({where}): {cinder_text(last)}", hint)

    def delete_orphans(self, orphans: list[dict[str, str]]) -> int:
        deleted = 0
        for orphan in orphans:
            if referenced(self.glance, orphan["secret_id"]):
                continue
            try:
                self.barbican.delete(orphan["ref"])
            except KeytoolsError as exc:
                if "not found" not in exc.message.lower():
                    LOG.warning("Could not delete orphan secret %s: %s", orphan["ref"], exc.message)
                    continue
            self.journal.record("deleted", ref=orphan["ref"])
            deleted += 1
            log_event(LOG, logging.INFO, f"Deleted orphan secret {orphan['secret_id']}", "orphan_deleted",
                      table=TABLE, id=orphan["id"], secret_id=orphan["secret_id"])
        return deleted


def referenced(glance: GlanceImages, secret_id: str) -> bool:
    """Does any image (of any project) name this key id? Such a secret is never an orphan."""
    return next(iter(glance.fixed_key_images(secret_id)), None) is not None


def find_orphans(glance: GlanceImages, replay: jr.Replay) -> list[dict[str, str]]:
    """Secrets this journal made for an image that points elsewhere (or for one that holds two)."""
    found = []
    for (table, image_id), st in replay.rows.items():
        if table != TABLE or not st.refs:
            continue
        current = glance.key_of(image_id)
        for ref in replay.orphans(table, image_id, current):
            if not referenced(glance, key_id(ref)):
                found.append({"table": TABLE, "id": image_id, "ref": ref, "secret_id": key_id(ref)})
    return found


def plan(glance: GlanceImages, members: ProjectMembers | None, path: Path, key_bits: int) -> dict[str, Any]:
    """What a Glance run would do: reads Glance, Keystone and the journal; contacts no Barbican."""
    images = list(glance.fixed_key_images())
    replay = jr.replay(path)
    reusable = sum(1 for i in images if replay.reusable(TABLE, i.id))
    owners = sorted({i.owner for i in images if i.owner})
    users = {p: len(members.users(p)) for p in owners} if members else {}
    actions = []
    if images:
        actions.append(f"create {len(images) - reusable} Barbican secret(s) holding fixed_key (AES, {key_bits} bits, "
                       "symmetric), one per image")
        actions.append("give each a read ACL for the members of the image's owner project, listed from Keystone "
                       f"at migration time (now {sum(users.values())} user(s) in {len(owners)} project(s))")
        actions.append(f"point {len(images)} image(s) at their new secret: re-read, PATCH "
                       "cinder_encryption_key_id only if still all-zeros, re-read")
    if reusable:
        actions.append(f"reuse {reusable} secret(s) a previous run stored but did not use")
    orphans = find_orphans(glance, replay)
    if orphans:
        actions.append(f"report {len(orphans)} orphan secret(s) from earlier runs (delete them with --cleanup)")
    return {"service": "glance", "endpoint": glance.describe(), "to_migrate": {"images": len(images)},
            "by_project": [dict(r, members=users.get(r["project"])) for r in count_by_project(images)],
            "images": [i.as_dict() for i in images],
            "journal": {"path": str(path), "reusable_secrets": reusable,
                        "unresolved_intents": len(replay.unresolved_intents()), "orphans": len(orphans)},
            "orphans": orphans, "actions": actions}


def verify(glance: GlanceImages, barbican: Barbican, members: ProjectMembers, key: bytes,
           path: Path) -> dict[str, Any]:
    """Every image this journal migrated: still on its secret, which exists, holds fixed_key and
    whose read ACL names every current member of the image's owner project."""
    problems: list[dict[str, Any]] = []
    checked = skipped = 0
    seen: set[str] = set()

    def rows() -> Iterator[tuple[str, str]]:
        for table, image_id, ref in jr.iter_done(path):
            if table == TABLE and image_id not in seen:
                seen.add(image_id)
                yield image_id, ref

    for image_id, ref in rows():
        secret = key_id(ref)

        def problem(text: str, image_id: str = image_id, secret: str = secret) -> None:
            problems.append({"table": TABLE, "id": image_id, "secret_id": secret, "problem": text})

        try:
            doc = glance.get(image_id)
        except KeytoolsError as exc:
            if "not found" in exc.message.lower():
                skipped += 1
                continue
            problem(f"cannot read the image: {exc.message}")
            continue
        current = doc.get("cinder_encryption_key_id")
        checked += 1
        if current != secret:
            problem(f"image now uses key {current}, not the migrated secret")
            continue
        try:
            if not barbican.exists(ref):
                problem("secret does not exist (dangling key id)")
                continue
            if not hmac.compare_digest(barbican.payload(ref), key):
                problem("secret does not hold fixed_key")
            acl = set(barbican.acl_users(ref))
            owner = doc.get("owner")
            missing = [u for u in (members.users(owner) if owner else []) if u not in acl]
            if missing:
                problem(f"{len(missing)} member(s) of owner project {owner} not in the read ACL "
                        f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}; joined later?)")
        except KeytoolsError as exc:
            problem(f"cannot check: {exc.message}")
    remaining = sum(1 for _ in glance.fixed_key_images())
    return {"service": "glance", "checked": checked, "deleted_images_skipped": skipped,
            "problems": sorted(problems, key=lambda p: p["id"]), "remaining": {"images": remaining},
            "fixed_key_id": FIXED_KEY_ID}
