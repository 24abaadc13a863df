"""Reading and writing mysqldump-style SQL text, so one restore path serves dumps from
``mysqldump``/``mariadb-dump`` and from the PyMySQL fallback dumper.

A dump is classified statement by statement: session ``SET``s, ``CREATE TABLE`` (schema),
``INSERT`` (data); locks, ``DROP TABLE`` and key toggles are dropped because a restore runs the
data in one transaction (any DDL would commit it early). Anything else is refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO

from keytools.barbican.archive import ArchiveError

_CREATE = re.compile(r"^CREATE TABLE `([^`]+)`", re.S)
_INSERT = re.compile(r"^INSERT INTO `([^`]+)`", re.S)
_SET = re.compile(r"^(/\*M?!\d+\s+)?SET\s", re.S | re.I)
_SKIP = re.compile(r"^(DROP TABLE|LOCK TABLES|UNLOCK TABLES|/\*M?!\d+\s+ALTER TABLE `[^`]+` (DIS|EN)ABLE KEYS)",
                   re.S | re.I)
_COLUMN = re.compile(r"^\s+`([^`]+)`\s")
_ALEMBIC = re.compile(r"VALUES\s*\('([^']+)'\)")


@dataclass
class Statement:
    kind: str  # "set" | "create" | "insert" | "skip"
    table: str | None
    sql: str


@dataclass
class DumpSchema:
    creates: dict[str, str] = field(default_factory=dict)  # table -> CREATE TABLE statement
    columns: dict[str, list[str]] = field(default_factory=dict)
    alembic_version: str | None = None
    statements: int = 0


def iter_raw(path: Path) -> Iterator[str]:
    """Statements of a dump file: a statement ends with a line ending in ``;`` (mysqldump escapes
    newlines inside strings, so a raw newline never falls inside a literal)."""
    buf: list[str] = []
    with open(path, encoding="utf-8", newline="\n") as handle:
        try:
            for line in handle:
                text = line.rstrip("\n")
                if not buf:
                    stripped = text.strip()
                    if not stripped or stripped.startswith("--"):
                        continue
                    if stripped.startswith("/*") and stripped.endswith("*/"):
                        continue  # a standalone comment, e.g. MariaDB's sandbox-mode marker
                buf.append(text)
                if text.rstrip().endswith(";"):
                    yield "\n".join(buf)
                    buf = []
        except UnicodeDecodeError:
            raise ArchiveError("the database dump inside the archive is not UTF-8 SQL",
                               "Use another backup") from None
    if buf:
        raise ArchiveError("the database dump inside the archive ends inside a statement",
                           "Use another backup")


def classify(sql: str) -> Statement:
    body = sql.lstrip()
    if m := _CREATE.match(body):
        return Statement("create", m.group(1), body.rstrip().rstrip(";"))
    if m := _INSERT.match(body):
        return Statement("insert", m.group(1), body.rstrip().rstrip(";"))
    if _SKIP.match(body):
        return Statement("skip", None, body)
    if _SET.match(body):
        return Statement("set", None, body.rstrip().rstrip(";"))
    raise ArchiveError(f"the database dump holds an unsupported statement ({body[:40]!r}...)",
                       "Only table definitions and rows can be restored; use another backup")


def iter_statements(path: Path) -> Iterator[Statement]:
    for raw in iter_raw(path):
        yield classify(raw)


def read_schema(path: Path) -> DumpSchema:
    """One pass over the dump: table definitions, columns, Alembic version; validates every statement."""
    schema = DumpSchema()
    for st in iter_statements(path):
        schema.statements += 1
        if st.kind == "create" and st.table:
            schema.creates[st.table] = st.sql
            schema.columns[st.table] = [m.group(1) for line in st.sql.splitlines()[1:]
                                        if (m := _COLUMN.match(line))]
        elif st.kind == "insert" and st.table == "alembic_version":
            if m := _ALEMBIC.search(st.sql):
                schema.alembic_version = m.group(1)
    if "secrets" not in schema.creates:
        raise ArchiveError("the database dump inside the archive has no Barbican 'secrets' table",
                           "Use a backup of Barbican's database")
    return schema


# --- writing (the PyMySQL fallback dumper) ---------------------------------------------------

HEADER = ("/*!40101 SET NAMES utf8mb4 */;\n"
          "/*!40103 SET TIME_ZONE='+00:00' */;\n"
          "/*!40014 SET FOREIGN_KEY_CHECKS=0 */;\n"
          "/*!40101 SET SQL_MODE='NO_AUTO_VALUE_ON_ZERO' */;\n")
BATCH_BYTES = 512 * 1024


def literal(conn: Any, value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "X'" + bytes(value).hex() + "'"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, float, Decimal)):
        return str(value)
    return str(conn.escape(value))


def write_table(conn: Any, table: str, create_sql: str, out: BinaryIO) -> int:
    """``DROP``/``CREATE`` then batched ``INSERT``s of every row, streamed with a server-side cursor."""
    import pymysql.cursors

    out.write(f"DROP TABLE IF EXISTS `{table}`;\n{create_sql};\n".encode())
    rows = 0
    with conn.cursor(pymysql.cursors.SSCursor) as cur:
        cur.execute(f"SELECT * FROM `{table}`")
        batch: list[str] = []
        size = 0
        for row in cur:
            tuple_sql = "(" + ",".join(literal(conn, v) for v in row) + ")"
            batch.append(tuple_sql)
            size += len(tuple_sql)
            rows += 1
            if size >= BATCH_BYTES:
                out.write(f"INSERT INTO `{table}` VALUES\n{','.join(batch)};\n".encode())
                batch, size = [], 0
        if batch:
            out.write(f"INSERT INTO `{table}` VALUES\n{','.join(batch)};\n".encode())
    return rows
