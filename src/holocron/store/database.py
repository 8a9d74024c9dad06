"""Engine, connections and transactions: the dialect-specific plumbing of the store.

SQLite runs in WAL mode with foreign keys on. Write transactions start with ``BEGIN IMMEDIATE`` so that two
processes never both read and then fail to upgrade to a write lock; reads stay deferred and never block.
PostgreSQL gets pgvector's types registered once per connection.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, make_url
from sqlalchemy.pool import NullPool

from holocron.store.schema import Tables, tables_for
from holocron.store.types import PgHnswParams

SQLITE_BUSY_TIMEOUT_MS = 60_000


@dataclass
class Tx:
    """An open connection inside a transaction, with the tables of its dialect."""

    conn: Connection
    t: Tables
    hnsw: PgHnswParams = field(default_factory=PgHnswParams)
    """The pgvector HNSW parameters the store was opened with (the caller's settings, never read here)."""

    @property
    def dialect(self) -> str:
        return self.conn.dialect.name

    def execute(self, statement: Any, parameters: Any = None) -> Any:
        return self.conn.execute(statement, parameters) if parameters is not None else self.conn.execute(statement)


class Database:
    """One per process: owns the engine and hands out read and write transactions."""

    def __init__(self, url: str, *, echo: bool = False, hnsw: PgHnswParams | None = None) -> None:
        self.hnsw = hnsw or PgHnswParams()
        self.url = make_url(url)
        self.dialect = self.url.get_backend_name()
        self.engine: Engine = _create_engine(url, self.dialect, echo=echo)
        self.t: Tables = tables_for(self.engine.dialect.name)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @property
    def sqlite_path(self) -> Path | None:
        if not self.is_sqlite or not self.url.database or self.url.database == ":memory:":
            return None
        return Path(self.url.database)

    @contextmanager
    def write(self) -> Iterator[Tx]:
        """A transaction that will write: commits on success, rolls back on any error."""
        with self.engine.connect() as conn:
            conn = conn.execution_options(holocron_write=True)
            with conn.begin():
                yield Tx(conn, self.t, self.hnsw)

    @contextmanager
    def read(self) -> Iterator[Tx]:
        with self.engine.connect() as conn, conn.begin():
            yield Tx(conn, self.t, self.hnsw)

    def upgrade(self) -> None:
        """Bring the schema to the newest migration (a no-op when it is there already)."""
        from holocron.store.migrate import upgrade

        upgrade(self)

    def dispose(self) -> None:
        self.engine.dispose()


def _create_engine(url: str, dialect: str, *, echo: bool) -> Engine:
    if dialect == "sqlite":
        parsed = make_url(url)
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
            poolclass=NullPool if parsed.database in (None, "", ":memory:") else None,
        )
        _configure_sqlite(engine)
        return engine
    engine = create_engine(url, echo=echo, pool_pre_ping=True, pool_size=5, max_overflow=10)
    if dialect == "postgresql":
        _configure_postgres(engine)
    return engine


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA temp_store=MEMORY")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get("holocron_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


_VECTOR_PENDING = "holocron_vector_pending"


def _configure_postgres(engine: Engine) -> None:
    """Register pgvector's adapters on each new connection, or at its first checkout once the extension exists.

    Migration 0001 creates the extension, so the connections opened before it (the migration's own, to begin
    with) find no ``vector`` type; they are marked and registered as soon as the type is there.
    """
    try:
        from pgvector.psycopg import register_vector
        from psycopg.types import TypeInfo
    except ImportError as exc:  # pragma: no cover - depends on the extra being installed
        raise RuntimeError("PostgreSQL mode needs the extra: pip install 'holocron[postgres]'") from exc

    def _register(dbapi_connection: Any, record: Any) -> None:
        # TypeInfo.fetch leaves the connection in the transaction state it found it in.
        if TypeInfo.fetch(dbapi_connection, "vector") is None:
            record.info[_VECTOR_PENDING] = True
            return
        register_vector(dbapi_connection)
        record.info.pop(_VECTOR_PENDING, None)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, record: Any) -> None:
        _register(dbapi_connection, record)

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if record.info.get(_VECTOR_PENDING):
            _register(dbapi_connection, record)


def insert_ignoring_conflicts(tx: Tx, table: Any, conflict_columns: list[str]) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING`` on both engines: the basis of every idempotent write."""
    if tx.dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing(index_elements=conflict_columns)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).on_conflict_do_nothing(index_elements=conflict_columns)
