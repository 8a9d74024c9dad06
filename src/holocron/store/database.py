"""Engine, connections and transactions: the dialect-specific plumbing of the store.

SQLite runs in WAL mode with foreign keys on. Write transactions start with ``BEGIN IMMEDIATE`` so that two
processes never both read and then fail to upgrade to a write lock; reads stay deferred and never block.
PostgreSQL gets pgvector's types registered once per connection.

A write waits up to ``SQLITE_BUSY_TIMEOUT_MS`` for SQLite's write lock; ``write(timeout_s=...)`` waits less
(a lease renewal must fail fast and try again rather than wait past the lease). On PostgreSQL the same
argument bounds the waits for row locks and the statements of that transaction.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, make_url, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from holocron.store.revision import HEAD_REVISION
from holocron.store.schema import Tables, tables_for
from holocron.store.types import PgHnswParams, db_now

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

    def now(self) -> datetime:
        """The database server's clock (see :func:`holocron.store.types.db_now`), never this host's."""
        value: datetime = self.execute(select(db_now())).scalar_one()
        return value


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
    def write(self, *, timeout_s: float | None = None) -> Iterator[Tx]:
        """A transaction that will write: commits on success, rolls back on any error.

        ``timeout_s`` bounds how long it waits for locks (SQLite's write lock; PostgreSQL's row locks and its
        statements) instead of the default: past it the transaction fails with the driver's error.
        """
        if timeout_s is not None and timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        with self.engine.connect() as conn:
            conn = conn.execution_options(holocron_write=True)
            if timeout_s is not None and self.is_sqlite:
                with _sqlite_busy_timeout(conn, round(timeout_s * 1000)), conn.begin():
                    yield Tx(conn, self.t, self.hnsw)
                return
            with conn.begin():
                if timeout_s is not None and self.dialect == "postgresql":
                    ms = max(1, round(timeout_s * 1000))
                    conn.exec_driver_sql(f"SET LOCAL lock_timeout = {ms}")
                    conn.exec_driver_sql(f"SET LOCAL statement_timeout = {ms}")
                yield Tx(conn, self.t, self.hnsw)

    @contextmanager
    def read(self) -> Iterator[Tx]:
        with self.engine.connect() as conn, conn.begin():
            yield Tx(conn, self.t, self.hnsw)

    def upgrade(self) -> bool:
        """Bring the schema to the newest migration; False when it was there already (see
        :func:`holocron.store.migrate.upgrade`: one process migrates, the others wait and find nothing to do).

        A store already at :data:`HEAD_REVISION` is recognised by one query, without loading alembic (a
        quarter of a second of a cold command's start); anything else goes through alembic.
        """
        if self._stored_revision() == HEAD_REVISION:
            return False
        from holocron.store.migrate import upgrade

        return upgrade(self)

    def _stored_revision(self) -> str | None:
        try:
            with self.engine.connect() as conn:
                return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except SQLAlchemyError:
            return None  # no version table yet: alembic creates it

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


@contextmanager
def _sqlite_busy_timeout(conn: Connection, ms: int) -> Iterator[None]:
    """This connection's busy timeout for one transaction, then the default again (connections are pooled).

    Set on the driver's connection directly: a statement through SQLAlchemy would begin a transaction first.
    """
    raw = conn.connection.dbapi_connection
    assert raw is not None
    raw.execute(f"PRAGMA busy_timeout={max(1, ms)}")
    try:
        yield
    finally:
        try:
            raw.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        except Exception:  # the connection broke: never hand it out again with the short timeout
            conn.invalidate()


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


def upsert(tx: Tx, table: Any, values: dict[str, Any], conflict_columns: list[str]) -> None:
    """``INSERT ... ON CONFLICT (...) DO UPDATE`` every other column, on both engines."""
    if tx.dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        statement: Any = pg_insert(table).values(**values)
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        statement = sqlite_insert(table).values(**values)
    changed = {name: statement.excluded[name] for name in values if name not in conflict_columns}
    tx.execute(statement.on_conflict_do_update(index_elements=conflict_columns, set_=changed))
