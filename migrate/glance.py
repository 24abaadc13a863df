"""Glance's implementation of the migration ``Consumer``: images on the all-zeros
``cinder_encryption_key_id``.

One secret per image (the engine creates it, journals it, reads it back), read ACL for every
member of the image's owner project, listed from Keystone when the image is migrated: cinder
reads the key with the token of whoever creates a volume from the image, usually a member of
that project. The swap re-reads the image and PATCHes the property only if it is still the
all-zeros id, then re-reads it (Glance has no conditional update, see keytools.glance_images).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from keytools.errors import Forbidden, KeytoolsError, ServiceUnavailable, StateError
from keytools.fileutil import private_dir
from keytools.glance_images import GlanceImages, count_by_project
from keytools.keystone_members import ProjectMembers
from migrate.consumer import log_remaining
from migrate.db import Item

LOG = logging.getLogger("keytools.migrate")
ACL_NOTE = ("every member of the image's owner project (listed from Keystone at migration time; "
            "later members are not added)")


class GlanceConsumer:
    service = "glance"
    tables = ("images",)
    acl_note = ACL_NOTE

    def __init__(self, images: GlanceImages, members: ProjectMembers) -> None:
        self.images = images
        self.members = members

    def identity(self) -> str:
        return f"glance:{self.images.describe()}"

    def describe(self) -> str:
        return self.images.describe()

    def check(self) -> None:
        self.images.check_admin()

    @contextlib.contextmanager
    def exclusive(self, journal_path: Path) -> Iterator[None]:
        """One ``migrate run`` per Glance and state dir at a time: Glance cannot compare-and-swap,
        so two runs could both PATCH an image (see keytools.glance_images). An flock next to the
        journal, released by the kernel however the run ends (kill -9 included)."""
        lock_path = journal_path.with_suffix(".lock")
        private_dir(lock_path.parent)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StateError(f"another 'keytools migrate run' is migrating the images of {self.describe()} "
                             f"(lock {lock_path})", "Wait for it to finish; Glance images must be migrated "
                             "by one run at a time") from None
        try:
            yield
        finally:
            os.close(fd)

    def count(self, table: str, scope: Any) -> int:
        return sum(1 for _ in self.images.fixed_key_images()) if table == "images" else 0

    def items(self, table: str, scope: Any) -> Iterator[Item]:
        if table != "images":
            return
        for image in self.images.fixed_key_images():
            yield Item("images", image.id, None, image.owner, None)

    def readers(self, item: Item) -> list[str]:
        return self._members(item.project_id, item.id)

    def _members(self, project: str | None, image_id: str) -> list[str]:
        try:
            return self.members(project)
        except (Forbidden, ServiceUnavailable):
            raise
        except KeytoolsError as exc:  # a project without members (or deleted): no user to name
            LOG.warning("Image %s: %s; only the secret's own project can read the new key", image_id, exc.message)
            return []

    def swap(self, item: Item, new_key_id: str) -> tuple[bool, int]:
        return self.images.swap_key(item.id, new_key_id).won, 0

    def current_key(self, table: str, row_id: str) -> str | None:
        return self.images.key_of(row_id)

    def owner(self, table: str, row_id: str) -> str | None:
        return None  # no single owning user: see expected_readers

    def expected_readers(self, table: str, row_id: str) -> list[str]:
        """verify: every current member of the image's owner project must be in the read ACL."""
        project = self.images.get(row_id).get("owner")
        return self._members(project, row_id) if project else []

    def referenced(self, key_id: str) -> bool:
        return next(iter(self.images.fixed_key_images(key_id)), None) is not None

    def repair(self, scope: Any, journal_path: Any, holds: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        return [], []

    def remaining(self) -> dict[str, int]:
        return {"images": self.count("images", None)}

    def breakdown(self, scope: Any) -> list[dict[str, Any]]:
        """Per owner project, with how many users its members' ACL would name today (plan)."""
        return [{"table": "images", "host": None, "project": p, "rows": n,
                 "acl_users": len(self._members(p, "-")) if p else 0}
                for p, n in count_by_project(self.images.fixed_key_images()).items()]

    def item_line(self, item: Item) -> str:
        return f"Migrating image {item.id} encryption key to Barbican (project {item.project_id})"

    def log_status(self) -> dict[str, int]:
        left = self.remaining()
        log_remaining("images", left["images"],
                      "There are still {n} image(s) using the ConfKeyManager's all-zeros cinder_encryption_key_id.",
                      "No images are using the ConfKeyManager's cinder_encryption_key_id.")
        return left

    def follower_problems(self, item_id: str, secret_id: str) -> list[dict[str, Any]]:
        return []

    def dispose(self) -> None:
        return None
