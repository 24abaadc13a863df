"""The non-destructive restore drill: restore a backup into a scratch Barbican and prove, through
Barbican's own API, that every secret (or a reproducible sample) decrypts with its metadata and ACLs,
and that secrets, containers, orders and consumers are all there. Production is only read (a backup
of ``--config`` with a throwaway key), or not touched at all (``--archive``).
"""

from __future__ import annotations

import contextlib
import os
import secrets as pysecrets
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keytools.barbican import barbican_conf, operations, scratch, store_config
from keytools.barbican.archive import KeySource
from keytools.barbican.database import open_database
from keytools.barbican.drill import Step, StepReport, run_step
from keytools.barbican.restore_check import ApiChecker, Inventory, choose, inventory
from keytools.errors import KeytoolsError, UsageError

COMPARED = ("secrets", "containers", "orders", "container_consumers")


@dataclass
class ScratchReport(StepReport):
    result: str = "fail"
    mode: str = "scratch"
    source: str = ""
    steps: list[Step] = field(default_factory=list)
    manifest_counts: dict[str, int] = field(default_factory=dict)
    api_counts: dict[str, int] = field(default_factory=dict)
    secrets_total: int = 0
    secrets_checked: int = 0
    sample: int | None = None
    seed: int | None = None
    problems: list[str] = field(default_factory=list)
    port: int | None = None
    seconds: float = 0.0


class Loss(Exception):
    """Something of the backup did not come back (the message says what)."""


class ScratchDrill:
    def __init__(self, config: str | None = None, archive: str | None = None, source: KeySource | None = None,
                 sample: int | None = None, seed: int | None = None, port: int | None = None,
                 scratch_db: str | None = None, progress: Callable[[str], None] | None = None,
                 keks: list[str] | None = None) -> None:
        """``keks``: run the scratch Barbican with these KEKs instead of the archive's (the KEK
        rotation's validate stage proves the secrets decrypt with the new KEK alone)."""
        if sample is not None and sample < 1:
            raise UsageError(f"--sample {sample} must be at least 1", "Omit --sample to check every secret")
        if archive and source is None:
            raise UsageError("--archive needs the archive's passphrase or key file",
                             "Use --passphrase-file, --passphrase-env or --key-file")
        self.config, self.archive, self.source = config, archive, source
        self.sample, self.port, self.scratch_db = sample, port, scratch_db
        self.seed = seed if seed is not None else pysecrets.randbelow(2**31)
        self.progress = progress or (lambda _msg: None)
        self.report = ScratchReport(source=f"archive {archive}" if archive else f"backup of {config}",
                                    sample=sample, seed=self.seed if sample is not None else None)
        self.error: KeytoolsError | None = None
        self.keks = keks
        self._cleanups: list[Callable[[], None]] = []

    def step(self, name: str) -> contextlib.AbstractContextManager[Step]:
        return run_step(self, name, Loss, "the scratch Barbican")

    def failure(self) -> KeytoolsError | None:
        """After run(): what ``keytools barbican drill`` fails with, if anything."""
        return self.report.failure(self.error)

    def run(self) -> ScratchReport:
        started = time.monotonic()
        try:
            with scratch.workdir(self._scratch_base()) as work:
                try:
                    self._run(work)
                finally:
                    for cleanup in reversed(self._cleanups):
                        with contextlib.suppress(Exception):
                            cleanup()
            self.report.result = "pass"
        except Loss:
            self.report.result = "fail"
        self.report.seconds = round(time.monotonic() - started, 3)
        return self.report

    def _scratch_base(self) -> Path:
        """Beside the SQLite database of --config (same protection), else beside its barbican.conf
        (a MySQL server), else beside --archive: never a shared temp directory."""
        if self.config:
            conf = barbican_conf.load(self.config, need_kek=False)
            return open_database(conf.connection).files_dir or conf.path.resolve().parent
        assert self.archive
        return Path(self.archive).resolve().parent

    def _run(self, work: Path) -> None:
        with self.step("check the scratch Barbican can run") as st:
            scratch.require_server_packages()
            port = scratch.pick_port(self.port)
            st.detail = f"127.0.0.1:{port}"
        if self.archive:
            path, source = self.archive, self.source
            assert source is not None
        else:
            with self.step("back up --config (production only read)") as st:
                assert self.config
                path, source = str(work / "drill.ktbak"), KeySource.random()
                made = operations.backup(self.config, path, source)
                st.detail = f"{made['bytes']} bytes, {made['db_dump']}"
        with self.step("decrypt and authenticate the archive") as st:
            data = operations.extract(path, source, work)
            manifest = data.manifest
            if not self.archive:
                os.unlink(path)
            self.report.manifest_counts = dict(manifest.get("counts") or {})
            st.detail = f"created {manifest.get('created_at')}, {manifest['db_engine']}, KEK {manifest['kek_fingerprint']}"
        with self.step("restore into a scratch database") as st:
            connection, query, quote = self._scratch_database(work, data.dump, manifest)
            st.detail = connection.split("://", 1)[0] + " scratch copy, " + ", ".join(
                f"{k}={v}" for k, v in self.report.manifest_counts.items())
        with self.step("start the scratch Barbican (Barbican's own server code)") as st:
            server_cm = scratch.run(work, connection, self.keks or data.keks, port,
                                    p11=store_config.p11_section(self.config) if self.config else None)
            server = server_cm.__enter__()
            self.report.port = server.port
            st.detail = f"127.0.0.1:{server.port}, pid {server.pid}, {len(self.keks or data.keks)} KEK(s)"
        try:
            self._check(ApiChecker(server), inventory(query, quote))
        finally:
            with self.step("stop the scratch Barbican, remove the scratch copy"):
                server_cm.__exit__(None, None, None)

    def _scratch_database(self, work: Path, dump: Path, manifest: dict[str, Any]) -> tuple[str, Any, Any]:
        engine = manifest["db_engine"]
        if engine == "sqlite":
            db_file = work / "barbican.db"
            dumped = open_database(f"sqlite:///{dump}").check_dump(dump)
            os.replace(dump, db_file)
            conn = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True, check_same_thread=False)
            query = lambda sql: conn.execute(sql).fetchall()  # noqa: E731
            connection = f"sqlite:///{db_file}"
        else:
            if not self.scratch_db:
                raise UsageError("this archive holds a MySQL/MariaDB database: the scratch copy needs a database server",
                                 "Pass --scratch-db mysql+pymysql://USER:PW@127.0.0.1/EMPTY_DB (an empty database "
                                 "that is not production's)")
            db = open_database(self.scratch_db)
            if self.config and _same_database(self.config, self.scratch_db):
                raise UsageError("--scratch-db names the production database", "Give an empty scratch database")
            target = db.stats()
            if not target.empty:
                raise UsageError(f"--scratch-db {db.display} is not empty", "Give an empty scratch database")
            db.check_dump(dump)
            self._cleanups.append(lambda: _drop_tables(db))  # the restored secrets must not stay there
            db.restore(dump)
            dumped = db.stats()  # what the dump really held, as restored
            if dumped.digest != manifest.get("content_digest") and manifest.get("db_dump") != "pymysql":
                # mysqldump: the manifest is read just before the dump's own snapshot (documented
                # caveat), so a write in between is no loss: compare with what the dump holds
                self.report.manifest_counts = dict(dumped.counts)
                dumped.digest = manifest.get("content_digest")
            conn = db._connect()  # type: ignore[attr-defined]
            self._cleanups.append(conn.close)

            def query(sql: str) -> list[tuple[Any, ...]]:
                with conn.cursor() as cur:
                    cur.execute(sql)
                    return list(cur.fetchall())

            connection = self.scratch_db
        if dumped.digest != manifest.get("content_digest"):
            raise Loss("the database inside the archive does not hold the rows its manifest lists")
        return connection, query, (lambda n: f'"{n}"') if engine == "sqlite" else (lambda n: f"`{n}`")

    def _check(self, api: ApiChecker, inv: Inventory) -> None:
        with self.step("count secrets, containers, orders, consumers through the API") as st:
            self.report.api_counts = api.counts(inv)
            self.report.secrets_total = len(inv.secrets)
            wrong = []
            for name in COMPARED:
                want = self.report.manifest_counts.get(name, inv.counts.get(name))
                if self.report.api_counts.get(name) != want:
                    wrong.append(f"{name}: {self.report.api_counts.get(name)} through the API, {want} backed up")
            st.detail = ", ".join(f"{k}={v}" for k, v in self.report.api_counts.items())
            if wrong:
                self.report.problems.extend(wrong)
                raise Loss("; ".join(wrong))
        what = "every secret" if self.sample is None else f"a sample of {self.sample} (seed {self.seed})"
        with self.step(f"decrypt {what}, compare metadata and ACLs") as st:
            ids = choose(list(inv.secrets), self.sample, self.seed)
            problems = api.check_secrets([inv.secrets[i] for i in ids])
            self.report.secrets_checked = len(ids)
            st.detail = f"{len(ids) - len(problems)}/{len(ids)} secrets whole"
            if problems:
                self.report.problems.extend(problems)
                raise Loss(f"{len(problems)} of {len(ids)} secrets did not come back whole; first: {problems[0]}")


def _same_database(config: str, url: str) -> bool:
    from sqlalchemy.engine import make_url

    from keytools.barbican import barbican_conf

    try:
        prod = make_url(barbican_conf.load(config, need_kek=False).connection)
        other = make_url(url)
    except Exception:
        return False
    return (prod.host, prod.port, prod.database) == (other.host, other.port, other.database)


def _drop_tables(db: Any) -> None:
    """Empty the scratch MySQL database again (tables only: the database itself is the operator's)."""
    conn = db._connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SET FOREIGN_KEY_CHECKS = 0")
            cur.execute("SHOW TABLES")
            for (table,) in cur.fetchall():
                cur.execute(f"DROP TABLE `{table}`")
        conn.commit()
    finally:
        conn.close()
