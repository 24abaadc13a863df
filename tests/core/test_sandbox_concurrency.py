"""Barbican under concurrent writers: serialised on SQLite, real workers on MariaDB."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import psutil

from keytools import keymanager
from keytools.sandbox import manager


def _store_many(session, count: int = 24, threads: int = 8) -> list[str]:
    client = keymanager.barbican_client(session)

    def one(i: int) -> str:
        secret = client.secrets.create(name=f"conc-{i}", payload=os.urandom(32), algorithm="AES",
                                       bit_length=256, secret_type="symmetric")
        return secret.store()

    with ThreadPoolExecutor(threads) as pool:
        refs = list(pool.map(one, range(count)))
    for ref in refs:
        client.secrets.delete(ref)
    return refs


def test_sqlite_barbican_survives_concurrent_writers(creator_session):
    # Without serialisation SQLite answers 'database is locked' (HTTP 500) here.
    assert len(set(_store_many(creator_session))) == 24


def test_mariadb_sandbox_runs_several_barbican_workers(mariadb_sandbox):
    rows = {s.name: s for s in manager.status(mariadb_sandbox.state)}
    assert rows["mariadb"].healthy and rows["barbican"].healthy
    workers = psutil.Process(rows["barbican"].pid).children()
    assert len(workers) == 4
    assert "mysql+pymysql://" in (mariadb_sandbox.state.path("barbican", ".barbican", "barbican.conf")).read_text()
    assert len(set(_store_many(mariadb_sandbox.session("demo")))) == 24
