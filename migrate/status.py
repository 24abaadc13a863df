"""``keytools migrate status`` as a library call: what is left on the all-zeros id, what the logs say.

Read-only: Cinder rows (all hosts, by host and project, stranded snapshots), Nova instances per
cell, Glance images per project (admin credentials), and a per-host summary of cinder's (and
keytools') log lines. Each part is present only when its source is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from keytools.errors import UsageError
from migrate import config, logparse


@dataclass
class StatusResult:
    """Sources not given stay None (and are left out of ``as_dict``)."""

    cinder_remaining: dict[str, int] | None = None
    cinder_by_host: list[dict[str, Any]] | None = None
    stranded_snapshots: int | None = None
    nova: dict[str, Any] | None = None  # {"remaining": {"instances": n}, "by_cell": [...]}
    glance: dict[str, Any] | None = None  # {"remaining": {"images": n}, "by_project": [...]}
    hosts: list[dict[str, Any]] | None = None  # logparse.summarize

    def as_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {}
        if self.glance is not None:
            doc["glance"] = self.glance
        if self.nova is not None:
            doc["nova"] = self.nova
        if self.cinder_remaining is not None:
            doc.update(remaining=self.cinder_remaining, by_host=self.cinder_by_host,
                       stranded_snapshots=self.stranded_snapshots)
        if self.hosts is not None:
            doc["hosts"] = self.hosts
        return doc


def migration_status(config_file: str | None = None, db_url: str | None = None, logs: Sequence[str] = (),
                     nova_config_file: str | None = None, nova_api_db_url: str | None = None,
                     nova_db_url: Sequence[str] = (), glance_cloud: str | None = None,
                     glance_endpoint: str | None = None) -> StatusResult:
    """Ask every given source, in this order: Glance, Nova, Cinder, the logs."""
    nova_given = bool(nova_config_file or nova_api_db_url or nova_db_url)
    if not (config_file or db_url or logs or nova_given or glance_cloud):
        raise UsageError("nothing to report on",
                         "Pass --config-file/--db-url, --nova-api-db-url, --glance-cloud and/or --log FILE")
    result = StatusResult()
    if glance_cloud:
        from keytools import auth
        from keytools.glance_images import GlanceImages, count_by_project

        images = GlanceImages(auth.session_from_cloud(glance_cloud), glance_endpoint)
        images.check_admin()
        by_project = count_by_project(images.fixed_key_images())
        result.glance = {"remaining": {"images": sum(by_project.values())},
                         "by_project": [{"table": "images", "project": p, "rows": n} for p, n in by_project.items()]}
    if nova_given:
        from keytools.nova_db import NovaCells, load_settings

        cells = NovaCells(load_settings(nova_config_file, nova_api_db_url, tuple(nova_db_url)))
        try:
            cells.check()
            result.nova = {"remaining": {"instances": cells.count()}, "by_cell": cells.breakdown()}
        finally:
            cells.dispose()
    if config_file or db_url:
        from keytools.cinder_rows import CinderRows

        if db_url is None:
            db_url = config.load(config_file, None, None, "barbican").db_url if config_file else None
        db = CinderRows(db_url or "")
        try:
            db.check()
            result.cinder_remaining = db.global_counts()
            result.cinder_by_host = [r for t in ("volumes", "backups") for r in db.breakdown(t)]
            result.stranded_snapshots = len(db.stranded_snapshots())
        finally:
            db.dispose()
    if logs:
        result.hosts = logparse.summarize(list(logs))
    return result
