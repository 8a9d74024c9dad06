"""Column types that hide the dialect: vectors, JSON and UTC timestamps.

SQLite stores a vector as float32 bytes (see :mod:`holocron.vectors`); PostgreSQL as a pgvector ``vector``.
Either way the code above the store passes and receives numpy arrays.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

import numpy as np
from sqlalchemy import JSON, DateTime, Float, LargeBinary, String, literal
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import CompileError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.operators import OperatorType, custom_op
from sqlalchemy.types import TypeDecorator, TypeEngine

from holocron.vectors import decode_vector, encode_vector

JsonType = JSON().with_variant(JSONB(), "postgresql")


@functools.cache
def _pg_vector_type() -> TypeEngine[Any]:
    """pgvector's ``vector`` without a dimension, handing values to psycopg untouched.

    pgvector's own SQLAlchemy type turns every vector into decimal text and every result into a list of Python
    floats. Passing the ``pgvector.Vector`` object instead lets the adapters that
    :mod:`holocron.store.database` registers on each connection send it in pgvector's binary format: exact
    float32 and no per-element formatting.
    """
    from pgvector.sqlalchemy import VECTOR

    class _PgVector(VECTOR):
        cache_ok = True

        def bind_processor(self, dialect: Dialect) -> None:
            return None

        def result_processor(self, dialect: Dialect, coltype: object) -> None:
            return None

    return _PgVector()


# pgvector's distance operators: L2, negative inner product, cosine, L1.
DISTANCE_OPERATORS = frozenset({"<->", "<#>", "<=>", "<+>"})


class VectorType(TypeDecorator[np.ndarray]):
    """A dense float32 vector of any dimension (the space row says which)."""

    impl = LargeBinary
    cache_ok = True

    class comparator_factory(TypeDecorator.Comparator[np.ndarray]):  # noqa: N801 - SQLAlchemy's name
        """``vector.op("<=>")(query)`` is a float distance, not another vector (SQLAlchemy's default for ops)."""

        def _adapt_expression(
            self, op: OperatorType, other_comparator: TypeEngine.Comparator[Any]
        ) -> tuple[OperatorType, TypeEngine[Any]]:
            if isinstance(op, custom_op) and op.opstring in DISTANCE_OPERATORS:
                return op, Float()
            return super()._adapt_expression(op, other_comparator)

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(_pg_vector_type())
        return dialect.type_descriptor(LargeBinary())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "postgresql":
            from pgvector import Vector

            return value if isinstance(value, Vector) else Vector(np.asarray(value, dtype=np.float32))
        return encode_vector(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> np.ndarray | None:
        if value is None:
            return None
        if dialect.name == "postgresql":
            from pgvector import Vector

            # A str only from a connection without pgvector's adapters: the extension's text form.
            vector = Vector.from_text(value) if isinstance(value, str) else value
            return vector.to_numpy()
        return decode_vector(value)


class UtcDateTime(TypeDecorator[datetime]):
    """Timestamps are always timezone-aware UTC in Python, whatever the engine keeps."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use holocron.store.types.utcnow()")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


# --- the database's clock ----------------------------------------------------------------------------------------


class DbNow(FunctionElement[datetime]):
    """The database server's current time (plus an offset in seconds), as a :class:`UtcDateTime`.

    Leases, heartbeats and backoff are computed with it so that every host agrees on when a lease runs out,
    however far apart their own clocks are. PostgreSQL: ``statement_timestamp()`` (one value per statement,
    so the columns one statement sets agree). SQLite: ``'now'`` at millisecond precision, written exactly as
    :class:`UtcDateTime` stores values there (``YYYY-MM-DD HH:MM:SS.ffffff``), so that stored and computed
    times compare correctly as text.
    """

    type = UtcDateTime()
    inherit_cache = True
    name = "db_now"


def db_now(offset_seconds: float | ColumnElement[Any] | None = None) -> DbNow:
    """The database's "now", or "now + offset_seconds" (a number or a bound parameter; negative goes back)."""
    if offset_seconds is None:
        return DbNow()
    if isinstance(offset_seconds, int | float):
        offset_seconds = literal(float(offset_seconds), Float())
    return DbNow(offset_seconds)


_SQLITE_TIME_FORMAT = "'%Y-%m-%d %H:%M:%f'"


@compiles(DbNow, "sqlite")
def _db_now_sqlite(element: DbNow, compiler: SQLCompiler, **kw: Any) -> str:
    clauses = list(element.clauses)
    if not clauses:
        return f"(strftime({_SQLITE_TIME_FORMAT}, 'now') || '000')"
    offset = compiler.process(clauses[0], **kw)
    return f"(strftime({_SQLITE_TIME_FORMAT}, julianday('now') + ({offset}) / 86400.0) || '000')"


@compiles(DbNow, "postgresql")
def _db_now_postgresql(element: DbNow, compiler: SQLCompiler, **kw: Any) -> str:
    clauses = list(element.clauses)
    if not clauses:
        return "statement_timestamp()"
    offset = compiler.process(clauses[0], **kw)
    return f"(statement_timestamp() + make_interval(secs => CAST({offset} AS DOUBLE PRECISION)))"


@compiles(DbNow)
def _db_now_other(element: DbNow, compiler: SQLCompiler, **kw: Any) -> str:
    raise CompileError(f"no database clock for the {compiler.dialect.name} dialect (SQLite and PostgreSQL have one)")


@dataclass(frozen=True)
class PgHnswParams:
    """Graph connectivity ``m``, build candidate list ``ef_construction`` and search list ``ef_search``.

    The defaults were chosen with ``bench/postgres.py`` (recall@10 against exact search, see
    ``docs/deployment.md``).
    """

    m: int = 16
    ef_construction: int = 64
    ef_search: int = 300

    def __post_init__(self) -> None:
        if not 2 <= self.m <= 100:
            raise ValueError("hnsw m must be between 2 and 100")
        if not 4 <= self.ef_construction <= 1000 or self.ef_construction < 2 * self.m:
            raise ValueError("hnsw ef_construction must be between 4 and 1000 and at least 2 * m")
        if not 1 <= self.ef_search <= 1000:
            raise ValueError("hnsw ef_search must be between 1 and 1000")


class WorkItemStatus(TypeDecorator[str]):
    """``ingest.work_items.status`` as the inventory names its states, read and written as the queue's.

    The one queue implementation speaks ``NEW``/``RUNNING``/``SUCCEEDED``/``FAILED``/``DEADLETTER``; the work
    items table keeps ``pending``/``claimed``/``completed``/``failed``. A failed attempt that will be retried is
    ``pending`` again (with its attempt count and last error), and a dead letter or a cancelled item is
    ``failed``: on reading, ``pending`` is ``NEW`` and ``failed`` is ``DEADLETTER``.
    """

    impl = String(20)
    cache_ok = True

    STORED: ClassVar[dict[str, str]] = {
        "NEW": "pending",
        "FAILED": "pending",
        "RUNNING": "claimed",
        "SUCCEEDED": "completed",
        "DEADLETTER": "failed",
        "CANCELLED": "failed",
    }
    READ: ClassVar[dict[str, str]] = {
        "pending": "NEW",
        "claimed": "RUNNING",
        "completed": "SUCCEEDED",
        "failed": "DEADLETTER",
    }

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else self.STORED.get(str(value), str(value))

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else self.READ.get(value, value)
