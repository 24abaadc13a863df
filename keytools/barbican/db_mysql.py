"""Barbican on MySQL/MariaDB: ``mysqldump --single-transaction`` (or a PyMySQL dumper when the
client tools are absent) and a restore that replaces every row in ONE transaction.

Restore never runs DDL inside the data transaction (DDL commits implicitly): missing tables are
created first (each CREATE is atomic and a rerun skips the ones that exist), then all rows of the
dumped tables are deleted and re-inserted and committed at once. A restore killed midway is rolled
back by the server; Barbican keeps seeing the old rows until the commit, the new ones after it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from keytools import redaction
from keytools.barbican import faults, sqldump
from keytools.barbican.db_base import Snapshot, Stats, build_stats
from keytools.errors import AuthenticationFailed, KeytoolsError, ServiceUnavailable, UsageError

CHUNK = 1 << 20
DUMP_TOOLS = ("auto", "mysqldump", "pymysql")


def find_mysqldump() -> str | None:
    return shutil.which("mariadb-dump") or shutil.which("mysqldump")


class MysqlDatabase:
    engine = "mysql"
    files_dir = None  # a server's files are not ours: restores work beside barbican.conf

    def __init__(self, url: Any, dump_tool: str = "auto") -> None:
        if not url.database:
            raise UsageError("[database] connection names no database", "Add the database name to the URL")
        self.host = url.host or "localhost"
        self.port = int(url.port or 3306)
        self.user = url.username or ""
        self.password = url.password or ""
        self.database = url.database
        self.socket = url.query.get("unix_socket") if url.query else None
        redaction.register_secret(self.password)
        self.display = f"mysql://{self.user}@{self.host}:{self.port}/{self.database}"
        if dump_tool not in DUMP_TOOLS:
            raise UsageError(f"--dump-tool {dump_tool!r} is not one of {', '.join(DUMP_TOOLS)}")
        self.dump_tool = dump_tool

    # --- connections -----------------------------------------------------------------------

    def _connect(self, database: bool = True) -> Any:
        import pymysql

        kwargs: dict[str, Any] = {"user": self.user, "password": self.password, "charset": "utf8mb4",
                                  "autocommit": False, "connect_timeout": 10}
        if self.socket:
            kwargs["unix_socket"] = self.socket
        else:
            kwargs.update(host=self.host, port=self.port)
        if database:
            kwargs["database"] = self.database
        try:
            return pymysql.connect(**kwargs)
        except pymysql.err.OperationalError as exc:
            code = exc.args[0] if exc.args else 0
            if code == 1045:
                raise AuthenticationFailed(f"the database server refused the credentials of {self.display}",
                                           "Check user and password in [database] connection") from None
            if code == 1049:
                raise UsageError(f"database {self.database!r} does not exist on {self.host}:{self.port}",
                                 f"Create it: CREATE DATABASE {self.database} CHARACTER SET utf8mb4, and "
                                 "grant the Barbican user on it") from None
            raise ServiceUnavailable(f"cannot connect to the database {self.display}: "
                                     f"{redaction.redact(str(exc.args[-1]) if exc.args else str(exc))}",
                                     "Check that the database server is running and reachable") from None

    @contextlib.contextmanager
    def _connection(self) -> Iterator[Any]:
        conn = self._connect()
        try:
            yield conn
        finally:
            with contextlib.suppress(Exception):
                conn.close()

    def _stats(self, cur: Any) -> Stats:
        cur.execute("SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA=%s "
                    "ORDER BY TABLE_NAME, ORDINAL_POSITION", (self.database,))
        tables: dict[str, list[str]] = {}
        for table, column in cur.fetchall():
            tables.setdefault(table, []).append(column)

        def query(sql: str) -> list[tuple[Any, ...]]:
            cur.execute(sql)
            return list(cur.fetchall())

        return build_stats(tables, query, lambda name: f"`{name}`")

    def stats(self) -> Stats:
        with self._connection() as conn, conn.cursor() as cur:
            cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
            stats = self._stats(cur)
            conn.rollback()
            return stats

    # --- dump --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[Snapshot]:
        tool = find_mysqldump() if self.dump_tool in ("auto", "mysqldump") else None
        if self.dump_tool == "mysqldump" and not tool:
            raise UsageError("--dump-tool mysqldump: neither mariadb-dump nor mysqldump is installed",
                             "Install the MariaDB/MySQL client, or use --dump-tool pymysql")
        if tool:
            # Its own --single-transaction snapshot starts right after this one: counts are as of
            # the moment before the dump (a concurrent write may differ by a row).
            yield Snapshot(self.stats(), Path(tool).name, lambda out: self._mysqldump(tool, out))
            return
        with self._connection() as conn, conn.cursor() as cur:
            cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
            yield Snapshot(self._stats(cur), "pymysql", lambda out: self._pymysql_dump(conn, out))
            conn.rollback()

    def _mysqldump(self, tool: str, out: BinaryIO) -> None:
        # Credentials through a pipe read as an option file: never on the command line (visible in
        # ps), never in a file (a kill -9 would leave it behind).
        lines = ["[client]", f"user={self.user}", f"password={self.password}"]
        lines += [f"socket={self.socket}"] if self.socket else [f"host={self.host}", f"port={self.port}"]
        read_fd, write_fd = os.pipe()
        try:
            os.write(write_fd, ("\n".join(lines) + "\n").encode())  # far below a pipe's buffer
            os.close(write_fd)
            write_fd = -1
            argv = [tool, f"--defaults-extra-file=/dev/fd/{read_fd}", "--single-transaction", "--skip-lock-tables",
                    "--skip-add-locks", "--hex-blob", "--no-tablespaces", "--skip-triggers",
                    "--default-character-set=utf8mb4", "--skip-comments", self.database]
            with tempfile.TemporaryFile() as err, subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err,
                                                                   pass_fds=(read_fd,)) as proc:
                os.close(read_fd)
                read_fd = -1
                assert proc.stdout is not None
                shutil.copyfileobj(proc.stdout, out, CHUNK)
                code = proc.wait()
                err.seek(0)
                text = " ".join(err.read().decode(errors="replace").split())[-300:]
        finally:
            for fd in (read_fd, write_fd):
                if fd >= 0:
                    os.close(fd)
        if code != 0:
            raise ServiceUnavailable(f"{Path(tool).name} failed for {self.display} (exit {code}): "
                                     f"{redaction.redact(text)}",
                                     "Check the database server and the user's privileges, or "
                                     "use --dump-tool pymysql")

    def _pymysql_dump(self, conn: Any, out: BinaryIO) -> None:
        """Every table in the snapshot already opened on ``conn``."""
        with conn.cursor() as cur:
            out.write(sqldump.HEADER.encode())
            cur.execute("SHOW FULL TABLES WHERE Table_type = 'BASE TABLE'")
            tables = sorted(row[0] for row in cur.fetchall())
            for table in tables:
                cur.execute(f"SHOW CREATE TABLE `{table}`")
                create_sql = cur.fetchone()[1]
                sqldump.write_table(conn, table, create_sql, out)

    # --- restore -----------------------------------------------------------------------------

    def check_dump(self, dump: Path) -> Stats:
        schema = sqldump.read_schema(dump)
        return Stats(exists=True, alembic_version=schema.alembic_version, tables=schema.columns)

    def restore(self, dump: Path, progress: Callable[[str], None] | None = None) -> None:
        import pymysql

        schema = sqldump.read_schema(dump)
        delay = faults.step_delay()
        with self._connection() as conn, conn.cursor() as cur:
            try:
                cur.execute("SET SESSION FOREIGN_KEY_CHECKS=0")
                cur.execute("SET SESSION innodb_lock_wait_timeout=120")
                cur.execute("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s",
                            (self.database,))
                existing = {row[0] for row in cur.fetchall()}
                for table, create_sql in schema.creates.items():
                    if table not in existing:  # DDL commits: only for tables a rerun still lacks
                        cur.execute(create_sql)
                        if progress:
                            progress(f"created table {table}")
                cur.execute("START TRANSACTION")
                for table in schema.creates:
                    cur.execute(f"DELETE FROM `{table}`")
                # Inside the data transaction from here on. The fault delay also pauses here, so
                # a crash test has a kill point that exists whatever the dump holds (a dump may
                # have a single INSERT, which is followed only by the commit).
                if progress:
                    progress(f"deleted the rows of {len(schema.creates)} tables")
                faults.pause(delay)
                done = 0
                for st in sqldump.iter_statements(dump):
                    if st.kind in ("set", "insert"):
                        cur.execute(st.sql)
                        done += st.kind == "insert"
                        if st.kind == "insert":
                            faults.pause(delay)
                            if progress:
                                progress(f"{done} insert statements")
                conn.commit()
            except pymysql.err.MySQLError as exc:
                with contextlib.suppress(Exception):
                    conn.rollback()
                raise KeytoolsError(f"restoring {self.display} failed and was rolled back: "
                                    f"{redaction.redact(str(exc))}",
                                    "Nothing changed; fix the cause and rerun the restore") from None
