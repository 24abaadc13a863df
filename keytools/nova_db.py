"""Nova's cell databases, as found through the nova_api database, and their all-zeros key ids.

With ``[ephemeral_storage_encryption] enabled = True`` nova's ConfKeyManager ``create_key`` returns
``00000000-0000-0000-0000-000000000000`` and nova stores it in ``instances.ephemeral_key_uuid`` of
the instance's **cell** database. Cells are the rows of nova_api's ``cell_mappings`` (cell0 holds
instances that failed to schedule; their key id is set too), whose ``database_connection`` may be
a template formatted with ``[database] connection`` (``CellMapping.format_db_url``). "Not
deleted" means ``deleted = 0`` (nova soft-deletes by setting ``deleted`` to the row id).

The schema used by tests and benchmarks is always made by nova's own tools (``nova-manage``).
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib import parse

import sqlalchemy as sa

from keytools import oslo_ini, redaction
from keytools.errors import ConfigError, ServiceUnavailable, UsageError
from keytools.key_refs.model import FIXED_KEY_ID
from keytools.tools import find_tool

NEED_COLUMNS = {"uuid", "ephemeral_key_uuid", "deleted", "user_id", "project_id", "host"}


@dataclass(frozen=True)
class Cell:
    name: str
    uuid: str | None
    url: str = ""

    def describe(self) -> str:
        return _hide(self.url)


def _hide(url: str) -> str:
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is shown without its netloc
        return url.split("@")[-1]


def _register(url: str | None) -> None:
    if not url:
        return
    try:
        redaction.register_secret(sa.engine.make_url(url).password)
    except Exception:  # noqa: BLE001
        return


def format_db_url(template: str, default: str | None) -> str:
    """nova.objects.cell_mapping.CellMapping._format_url: ``{username}``, ``{password}``, ... from
    ``[database] connection``."""
    if "{" not in template or not default:
        return template
    d = parse.urlparse(default)
    subs = {"username": d.username, "password": d.password, "hostname": d.hostname, "port": d.port,
            "scheme": d.scheme, "query": d.query, "fragment": d.fragment, "path": d.path.lstrip("/")}
    try:
        return template.format(**subs)
    except (KeyError, IndexError, ValueError):
        return template


def _engine(url: str, what: str) -> sa.Engine:
    _register(url)
    try:
        parsed = sa.engine.make_url(url)
    except Exception:
        raise UsageError(f"{what}: the database URL is not valid",
                         "Give a SQLAlchemy URL such as mysql+pymysql://nova:PW@HOST/nova") from None
    kwargs: dict[str, Any] = {"future": True}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and not Path(parsed.database).exists():
            raise ServiceUnavailable(f"{what}: no database file {parsed.database}",
                                     "Check the URL ([api_database]/[database] connection, cell_mappings)")
        kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
    else:
        kwargs.update(pool_pre_ping=True, pool_recycle=3600)
    try:
        return sa.create_engine(parsed, **kwargs)
    except Exception as exc:
        raise UsageError(f"{what}: database URL not usable: {type(exc).__name__}",
                         "Use mysql+pymysql:// or sqlite:///") from None


def _unreachable(what: str, url: str, exc: sa.exc.DBAPIError) -> ServiceUnavailable:
    return ServiceUnavailable(f"cannot connect to {what} {_hide(url)}: {' '.join(str(exc.orig).split())[:160]}",
                              "Check the connection URL and that the database server is up")


def cells_from_api(api_url: str, default_connection: str | None = None) -> list[Cell]:
    """Every cell of ``cell_mappings`` (cell0 included), URLs formatted as nova formats them."""
    eng = _engine(api_url, "the nova_api database")
    try:
        with eng.connect() as conn:
            if "cell_mappings" not in sa.inspect(conn).get_table_names():
                raise UsageError(f"{_hide(api_url)} is not a nova_api database (no table cell_mappings)",
                                 "Point --nova-api-db-url or [api_database] connection at nova_api")
            rows = conn.execute(sa.text("SELECT uuid, name, database_connection FROM cell_mappings ORDER BY id")).all()
    except sa.exc.DBAPIError as exc:
        raise _unreachable("the nova_api database", api_url, exc) from None
    finally:
        eng.dispose()
    cells = []
    for uuid, name, conn_url in rows:
        url = format_db_url(conn_url or "", default_connection)
        _register(url)
        cells.append(Cell(name or uuid, uuid, url))
    if not cells:
        raise UsageError(f"{_hide(api_url)}: cell_mappings is empty",
                         "Run 'nova-manage cell_v2 map_cell0' / 'create_cell', or give --nova-db-url per cell")
    return cells


def cells_from_urls(urls: Sequence[str]) -> list[Cell]:
    """``--nova-db-url [NAME=]URL`` (repeatable); unnamed cells are cell-1, cell-2, ..."""
    cells = []
    for n, spec in enumerate(urls, 1):
        name, sep, url = spec.partition("=")
        if not sep or "://" in name:
            name, url = f"cell-{n}", spec
        _register(url)
        cells.append(Cell(name, None, url))
    return cells


@dataclass(frozen=True)
class NovaSettings:
    api_url: str | None = None
    cell_urls: tuple[str, ...] = ()
    default_connection: str | None = None  # [database] connection, for templated cell URLs
    config_file: str | None = None

    @property
    def configured(self) -> bool:
        return bool(self.api_url or self.cell_urls)


def load_settings(config_file: str | None, api_url: str | None, cell_urls: Sequence[str] = ()) -> NovaSettings:
    """nova.conf ``[api_database] connection`` and ``[database] connection``; explicit options win."""
    default = None
    if config_file:
        if not Path(config_file).is_file():
            raise ConfigError(f"--nova-config-file {config_file}: no such file", "Give the path of nova.conf")
        conf = oslo_ini.parse_with_conf_d(config_file)
        api_url = api_url or conf.get("api_database", "connection") or None
        default = conf.get("database", "connection") or None
        if not api_url and not cell_urls and not default:
            raise ConfigError(f"{config_file}: neither [api_database] nor [database] connection is set",
                              "Give --nova-api-db-url or --nova-db-url per cell")
        if not api_url and not cell_urls and default:
            cell_urls = (f"cell={default}",)  # a compute/cell conductor's nova.conf: its one cell
    _register(api_url)
    _register(default)
    return NovaSettings(api_url or None, tuple(cell_urls), default, config_file)


class NovaCells:
    """Open engines on every cell; refuse early (one line) when a cell is not a Nova schema."""

    def __init__(self, settings: NovaSettings) -> None:
        if not settings.configured:
            raise UsageError("no Nova database given",
                             "Pass --nova-config-file nova.conf, --nova-api-db-url or --nova-db-url per cell")
        self.settings = settings
        self.cells = (cells_from_urls(settings.cell_urls) if settings.cell_urls
                      else cells_from_api(settings.api_url or "", settings.default_connection))
        self.engines: dict[str, sa.Engine] = {}
        self.tables: dict[str, sa.Table] = {}

    def describe(self) -> str:
        if self.settings.cell_urls:
            return ", ".join(f"{c.name}={c.describe()}" for c in self.cells)
        return f"nova_api {_hide(self.settings.api_url or '')}, {len(self.cells)} cell(s)"

    def identity(self) -> str:
        return "nova:" + "|".join(sorted(c.describe() for c in self.cells))

    def check(self) -> None:
        for cell in self.cells:
            self.table(cell.name)

    def cell(self, name: str) -> Cell:
        return next(c for c in self.cells if c.name == name)

    def table(self, cell_name: str) -> sa.Table:
        if cell_name in self.tables:
            return self.tables[cell_name]
        cell = self.cell(cell_name)
        what = f"the Nova cell database {cell.name!r}"
        eng = _engine(cell.url, what)
        try:
            with eng.connect() as conn:
                if "instances" not in sa.inspect(conn).get_table_names():
                    raise UsageError(f"{what} ({cell.describe()}) is not a Nova cell database (no table instances)",
                                     "Fix cell_mappings.database_connection or --nova-db-url; run 'nova-manage db sync'")
                t = sa.Table("instances", sa.MetaData(), autoload_with=conn)
        except sa.exc.DBAPIError as exc:
            eng.dispose()
            raise _unreachable(what, cell.url, exc) from None
        except UsageError:
            eng.dispose()
            raise
        missing = NEED_COLUMNS - set(t.c.keys())
        if missing:
            eng.dispose()
            raise UsageError(f"{what}: table instances has no {', '.join(sorted(missing))}",
                             "Run 'nova-manage db sync' (a Nova schema from Liberty on)")
        self.engines[cell_name] = eng
        self.tables[cell_name] = t
        return t

    def connect(self, cell_name: str) -> sa.Connection:
        self.table(cell_name)
        return self.engines[cell_name].connect()

    def begin(self, cell_name: str):  # noqa: ANN201 - a context manager
        self.table(cell_name)
        return self.engines[cell_name].begin()

    def dispose(self) -> None:
        for eng in self.engines.values():
            eng.dispose()
        self.engines.clear()
        self.tables.clear()

    # ---- queries ------------------------------------------------------------------------------------

    def zeros(self, t: sa.Table) -> sa.ColumnElement[bool]:
        return sa.and_(t.c.ephemeral_key_uuid == FIXED_KEY_ID, t.c.deleted == 0)

    def rows(self, cell_name: str, page: int = 500) -> Iterator[Any]:
        """Non-deleted instances on the all-zeros id in one cell, keyset-paged by uuid."""
        t = self.table(cell_name)
        last = ""
        while True:
            with self.connect(cell_name) as conn:
                rows = conn.execute(sa.select(t.c.uuid, t.c.user_id, t.c.project_id, t.c.host)
                                    .where(self.zeros(t), t.c.uuid > last).order_by(t.c.uuid).limit(page)).all()
            yield from rows
            if len(rows) < page:
                return
            last = rows[-1].uuid

    def count(self, cell_name: str | None = None) -> int:
        total = 0
        for cell in self.cells:
            if cell_name and cell.name != cell_name:
                continue
            t = self.table(cell.name)
            with self.connect(cell.name) as conn:
                total += conn.execute(sa.select(sa.func.count()).select_from(t).where(self.zeros(t))).scalar_one()
        return total

    def breakdown(self, cell_name: str | None = None) -> list[dict[str, Any]]:
        out = []
        for cell in self.cells:
            if cell_name and cell.name != cell_name:
                continue
            t = self.table(cell.name)
            with self.connect(cell.name) as conn:
                for r in conn.execute(sa.select(t.c.host, t.c.project_id, sa.func.count().label("rows"))
                                      .where(self.zeros(t)).group_by(t.c.host, t.c.project_id)
                                      .order_by(t.c.host, t.c.project_id)):
                    out.append({"table": "instances", "cell": cell.name, "host": r.host, "project": r.project_id,
                                "rows": r.rows})
        return out

    def find(self, uuid: str) -> tuple[str, Any] | None:
        """(cell, row) of a non-deleted instance, wherever it lives."""
        for cell in self.cells:
            t = self.table(cell.name)
            with self.connect(cell.name) as conn:
                row = conn.execute(sa.select(t.c.uuid, t.c.user_id, t.c.project_id, t.c.host, t.c.ephemeral_key_uuid)
                                   .where(t.c.uuid == uuid, t.c.deleted == 0)).first()
            if row is not None:
                return cell.name, row
        return None

    def referenced(self, key: str) -> bool:
        """Does any instance (deleted or not) in any cell point at this key id?"""
        for cell in self.cells:
            t = self.table(cell.name)
            with self.connect(cell.name) as conn:
                if conn.execute(sa.select(t.c.uuid).where(t.c.ephemeral_key_uuid == key).limit(1)).first():
                    return True
        return False

    def swap(self, cell_name: str, uuid: str, new_key_id: str) -> bool:
        """Compare-and-swap: point the instance at ``new_key_id`` only while it is on the all-zeros id."""
        t = self.table(cell_name)
        stmt = (sa.update(t).where(t.c.uuid == uuid, t.c.ephemeral_key_uuid == FIXED_KEY_ID, t.c.deleted == 0)
                .values(ephemeral_key_uuid=new_key_id))
        with self.begin(cell_name) as conn:
            return conn.execute(stmt).rowcount == 1


# ---- schema from nova's own tools (tests, benchmarks, demo) -------------------------------------------

def nova_manage() -> str:
    return find_tool("nova-manage", "Install the sandbox extra: pip install 'keytools[sandbox]'")


def _manage(conf: Path, *args: str) -> None:
    result = subprocess.run([nova_manage(), "--config-file", str(conf), *args], capture_output=True, text=True)
    if result.returncode != 0:
        lines = [ln for ln in (result.stdout + "\n" + result.stderr).splitlines()
                 if ln.strip() and "eventlet" not in ln.lower()]
        tail = " | ".join(lines[-3:])
        raise ServiceUnavailable(f"nova-manage {' '.join(args[:2])} failed: {redaction.redact(tail)[:400]}")


def create_databases(api_url: str, cell0_url: str, cells: dict[str, str]) -> None:
    """``nova-manage api_db sync``, ``cell_v2 map_cell0``, ``cell_v2 create_cell`` and ``db sync``
    per cell: the deployment's own sequence (each cell's schema synced with its own [database])."""
    with tempfile.TemporaryDirectory(prefix="keytools-nova-") as tmp:
        def conf(db_url: str) -> Path:
            path = Path(tmp, f"nova-{abs(hash(db_url))}.conf")
            path.write_text(f"[DEFAULT]\nstate_path = {tmp}\ntransport_url = fake://\n"
                            f"[api_database]\nconnection = {api_url}\n[database]\nconnection = {db_url}\n")
            path.chmod(0o600)
            return path

        base = conf(cell0_url)
        _manage(base, "api_db", "sync")
        _manage(base, "cell_v2", "map_cell0", "--database_connection", cell0_url)
        _manage(base, "db", "sync")
        for name, url in cells.items():
            _manage(base, "cell_v2", "create_cell", "--name", name, "--database_connection", url,
                    "--transport-url", f"fake://127.0.0.1/{name}")  # unique per cell; never contacted
            _manage(conf(url), "db", "sync")
