"""HNSW indexes on PostgreSQL: one partial pgvector index per embedding space.

``vector.embedding.vector`` is a ``vector`` without a fixed dimension, because every space has its own.
pgvector can only index vectors of one dimension, so each space gets an expression index over the column
cast to its dimension, restricted to the space's rows::

    CREATE INDEX ix_vector_embedding_hnsw_space_7 ON vector.embedding
        USING hnsw ((vector::vector(384)) vector_cosine_ops) WITH (m = 16, ef_construction = 64)
        WHERE embedding_space_id = 7

The planner uses such an index only for a query whose ``ORDER BY`` is exactly that expression and whose
``WHERE`` names the space id as a constant (a bound parameter would not prove the partial predicate once
psycopg prepares the statement), so :func:`hnsw_search` builds both from the same helpers as the index.
:func:`exact_search` orders by the uncast column, which no index covers: a sequential scan, exact by
construction, used as the fallback and as the recall baseline.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from sqlalchemy import ColumnElement, Float, Select, cast, literal_column, select, text
from sqlalchemy.sql.elements import BinaryExpression

from holocron.store.database import Database, Tx
from holocron.store.types import PgHnswParams, VectorType

# metric -> (operator class, distance operator)
METRIC_OPS: dict[str, tuple[str, str]] = {
    "cosine": ("vector_cosine_ops", "<=>"),
    "ip": ("vector_ip_ops", "<#>"),
    "l2": ("vector_l2_ops", "<->"),
}
# pgvector's HNSW index holds at most this many dimensions for ``vector``.
HNSW_MAX_DIMENSIONS = 2000
# One advisory lock key for every index build: builds never run two at a time, so two transactions that both
# hold row locks on the embedding table can never wait on each other's SHARE lock.
_BUILD_LOCK_KEY = 0x484F4C4F  # "HOLO"


class SpaceLike(Protocol):
    """What the index needs to know about a space (``EmbeddingSpace`` has it)."""

    @property
    def embedding_space_id(self) -> int: ...

    @property
    def dimensions(self) -> int: ...

    @property
    def distance_metric(self) -> str: ...


@dataclass(frozen=True)
class SpaceKey:
    """A space reduced to what the index needs, for callers that only have the row's values."""

    embedding_space_id: int
    dimensions: int
    distance_metric: str


def index_name(embedding_space_id: int) -> str:
    return f"ix_vector_embedding_hnsw_space_{int(embedding_space_id)}"


def _ops(space: SpaceLike) -> tuple[str, str]:
    try:
        return METRIC_OPS[space.distance_metric]
    except KeyError:
        raise ValueError(f"no HNSW operator class for metric {space.distance_metric!r}") from None


def create_index_sql(tx: Tx, space: SpaceLike, params: PgHnswParams) -> str:
    """The DDL of the space's index (the literal ints are validated, never user text)."""
    opclass, _ = _ops(space)
    dims, space_id = int(space.dimensions), int(space.embedding_space_id)
    return (
        f"CREATE INDEX IF NOT EXISTS {index_name(space_id)} ON {tx.t.qualified(tx.t.embedding)} "
        f"USING hnsw ((vector::vector({dims})) {opclass}) "
        f"WITH (m = {int(params.m)}, ef_construction = {int(params.ef_construction)}) "
        f"WHERE embedding_space_id = {space_id}"
    )


def index_exists(tx: Tx, embedding_space_id: int) -> bool:
    schema = tx.t.embedding.schema or "public"
    found = tx.execute(
        text("SELECT to_regclass(:name) IS NOT NULL"), {"name": f"{schema}.{index_name(embedding_space_id)}"}
    ).scalar_one()
    return bool(found)


_KNOWN: set[tuple[str, int]] = set()


def ensure_space_index_tx(tx: Tx, space: SpaceLike, params: PgHnswParams | None = None, *, wait: bool = False) -> bool:
    """Create the space's index inside ``tx`` unless it exists; True when this call created it.

    Called before a space's embeddings are written, in the writing transaction. Builds are serialised by an
    advisory lock; without ``wait`` a caller that finds another build in progress skips (that build waits for
    this transaction and then indexes its rows too), so writers never deadlock on each other's table locks.
    A no-op on SQLite and for spaces too wide for pgvector's HNSW (exact search serves them).
    """
    if tx.dialect != "postgresql" or int(space.dimensions) > HNSW_MAX_DIMENSIONS:
        return False
    key = (tx.conn.engine.url.render_as_string(hide_password=True), int(space.embedding_space_id))
    if key in _KNOWN:
        return False
    if index_exists(tx, space.embedding_space_id):
        _KNOWN.add(key)
        return False
    if wait:
        tx.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _BUILD_LOCK_KEY})
    elif not tx.execute(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": _BUILD_LOCK_KEY}).scalar_one():
        return False
    if index_exists(tx, space.embedding_space_id):  # built by the holder of the lock before us
        return False
    tx.execute(text(create_index_sql(tx, space, params or tx.hnsw)))
    return True


_AUTO_CREATE = threading.local()


@contextmanager
def deferred_index_build() -> Iterator[None]:
    """Bulk loads in this thread write vectors without creating the index; build it once afterwards.

    Maintaining an HNSW graph row by row is far slower than building it over the loaded rows in one go.
    """
    previous = getattr(_AUTO_CREATE, "off", False)
    _AUTO_CREATE.off = True
    try:
        yield
    finally:
        _AUTO_CREATE.off = previous


def ensure_space_index_for(tx: Tx, embedding_space_id: int) -> bool:
    """:func:`ensure_space_index_tx` for a space known by id (the embedding insert path calls this)."""
    if tx.dialect != "postgresql" or getattr(_AUTO_CREATE, "off", False):
        return False
    key = (tx.conn.engine.url.render_as_string(hide_password=True), int(embedding_space_id))
    if key in _KNOWN:
        return False
    s = tx.t.embedding_space
    row = tx.execute(
        select(s.c.embedding_space_id, s.c.dimensions, s.c.distance_metric).where(
            s.c.embedding_space_id == embedding_space_id
        )
    ).first()
    if row is None:
        return False
    return ensure_space_index_tx(tx, SpaceKey(int(row[0]), int(row[1]), str(row[2])))


def ensure_space_index(db: Database, space: SpaceLike, params: PgHnswParams | None = None) -> bool:
    """Create the space's index now, in its own transaction (``holocron`` does it at the first embeddings).

    Building over existing rows is faster with more ``maintenance_work_mem``: the graph should fit in it.
    """
    if db.dialect != "postgresql":
        return False
    with db.write() as tx:
        tx.execute(text("SELECT set_config('maintenance_work_mem', '512MB', true)"))
        created = ensure_space_index_tx(tx, space, params, wait=True)
        if created:  # fresh statistics, or the planner may keep choosing exact scans for a freshly loaded space
            tx.execute(text(f"ANALYZE {tx.t.qualified(tx.t.embedding)}"))
        return created


def drop_space_index(db: Database, embedding_space_id: int) -> None:
    """Drop the space's index (before a bulk load, or to rebuild it with new parameters)."""
    if db.dialect != "postgresql":
        return
    with db.write() as tx:
        schema = tx.t.embedding.schema or "public"
        tx.execute(text(f"DROP INDEX IF EXISTS {schema}.{index_name(embedding_space_id)}"))
    _KNOWN.difference_update({key for key in _KNOWN if key[1] == int(embedding_space_id)})


# -- search ----------------------------------------------------------------------------------------------------


def _query_param(tx: Tx, query: npt.ArrayLike) -> Any:
    from sqlalchemy import bindparam

    q = np.asarray(query, dtype=np.float32).reshape(-1)
    return bindparam("query", q, type_=tx.t.embedding.c.vector.type)


def indexed_expression(tx: Tx, space: SpaceLike) -> ColumnElement[Any]:
    """``vector::vector(<dims>)``: the expression the space's index is built on."""
    from pgvector.sqlalchemy import VECTOR

    return cast(tx.t.embedding.c.vector, VECTOR(int(space.dimensions)))


def _distance(tx: Tx, space: SpaceLike, query: npt.ArrayLike, *, indexed: bool) -> BinaryExpression[Any]:
    _, operator = _ops(space)
    column: ColumnElement[Any] = indexed_expression(tx, space) if indexed else tx.t.embedding.c.vector
    return column.op(operator, return_type=Float)(_query_param(tx, query))


def _score(metric: str, distance: float) -> float:
    """Higher is better: cosine similarity, inner product, or negative L2 distance."""
    if metric == "cosine":
        return 1.0 - distance
    return -distance


def _search_statement(
    tx: Tx,
    space: SpaceLike,
    query: npt.ArrayLike,
    k: int,
    *,
    indexed: bool,
    allowed_sql_filter: ColumnElement[bool] | None,
    current_only: bool,
) -> Select[Any]:
    e, c, reg = tx.t.embedding, tx.t.chunk, tx.t.source_registry
    distance = _distance(tx, space, query, indexed=indexed)
    # The space id as a constant: only then can the planner match the partial index's predicate.
    in_space = e.c.embedding_space_id == literal_column(str(int(space.embedding_space_id)))
    statement = select(e.c.embedding_id, distance.label("distance")).where(in_space)
    if current_only or allowed_sql_filter is not None:
        statement = statement.select_from(e.join(c, c.c.chunk_id == e.c.chunk_id))
        if current_only:
            statement = statement.where(c.c.content_sha256 == e.c.input_content_sha256)
        if allowed_sql_filter is not None:
            statement = statement.join(reg, reg.c.source_id == c.c.source_id).where(allowed_sql_filter)
    return statement.order_by(distance).limit(literal_column(str(int(k))))


def _set_local(tx: Tx, name: str, value: str) -> None:
    tx.execute(text("SELECT set_config(:name, :value, true)"), {"name": name, "value": value})


def _through_the_index(tx: Tx, ef_search: int | None, *, filtered: bool) -> None:
    """The graph's search settings; an unfiltered search also walks the graph and looks its hits' chunks up by key.

    The join to ``vector.chunk`` tests two equalities at once (the chunk, and its current text), which the
    planner multiplies into an estimate of one row; with one row expected, sorting every vector of the space
    looks cheaper than the index, and the search turns into a scan of the whole space (52 ms at 20,000
    vectors, linear beyond). Hash and merge joins and a separate sort are therefore off for this statement:
    the index scan then drives a nested loop over the chunk table's primary key (10 ms at 20,000, and
    logarithmic in the space's size). A filtered search keeps the planner's choice: for a selective filter an
    exact scan of the rows that pass is the right plan, and the graph would give up after
    ``hnsw.max_scan_tuples``. ``SET LOCAL``: nothing outlives the transaction.
    """
    _set_local(tx, "hnsw.ef_search", str(int(ef_search or tx.hnsw.ef_search)))
    _set_local(tx, "hnsw.iterative_scan", "relaxed_order")
    if not filtered:
        for plan in ("enable_hashjoin", "enable_mergejoin", "enable_sort"):
            _set_local(tx, plan, "off")


def hnsw_search(
    tx: Tx,
    space: SpaceLike,
    query: npt.ArrayLike,
    k: int,
    *,
    allowed_sql_filter: ColumnElement[bool] | None = None,
    ef_search: int | None = None,
    current_only: bool = True,
) -> list[tuple[int, float]]:
    """The k nearest embeddings of the space through its HNSW index, as (embedding_id, score), best first.

    ``allowed_sql_filter`` is a condition over ``tx.t.chunk`` and ``tx.t.source_registry`` (what
    ``SearchFilters.condition`` returns). pgvector 0.8's iterative scan (``relaxed_order``) keeps walking
    the graph until k rows pass the filter (or ``hnsw.max_scan_tuples`` is reached), so a filtered search
    still returns k hits when k exist; the rows are re-sorted here because relaxed order may interleave them.
    ``current_only`` leaves out embeddings of a chunk's earlier text.
    """
    if k <= 0:
        return []
    _through_the_index(tx, ef_search, filtered=allowed_sql_filter is not None)
    statement = _search_statement(
        tx, space, query, k, indexed=True, allowed_sql_filter=allowed_sql_filter, current_only=current_only
    )
    rows = sorted((float(r.distance), int(r.embedding_id)) for r in tx.execute(statement))
    return [(embedding_id, _score(space.distance_metric, d)) for d, embedding_id in rows]


def exact_search(
    tx: Tx,
    space: SpaceLike,
    query: npt.ArrayLike,
    k: int,
    *,
    allowed_sql_filter: ColumnElement[bool] | None = None,
    current_only: bool = True,
) -> list[tuple[int, float]]:
    """The true k nearest (a sequential scan): the fallback and the baseline HNSW recall is measured against."""
    if k <= 0:
        return []
    statement = _search_statement(
        tx, space, query, k, indexed=False, allowed_sql_filter=allowed_sql_filter, current_only=current_only
    )
    rows = [
        (float(r.distance), int(r.embedding_id))
        for r in tx.execute(
            statement.order_by(None).order_by(literal_column("distance"), tx.t.embedding.c.embedding_id)
        )
    ]
    return [(embedding_id, _score(space.distance_metric, d)) for d, embedding_id in rows]


def explain(tx: Tx, space: SpaceLike, query: npt.ArrayLike, k: int, **options: Any) -> str:
    """``EXPLAIN`` of :func:`hnsw_search`'s statement, to check that the index is used."""
    _through_the_index(tx, options.pop("ef_search", None), filtered=options.get("allowed_sql_filter") is not None)
    statement = _search_statement(
        tx,
        space,
        query,
        k,
        indexed=True,
        allowed_sql_filter=options.get("allowed_sql_filter"),
        current_only=options.get("current_only", True),
    )
    compiled = statement.compile(dialect=tx.conn.dialect)
    params = dict(compiled.params)
    for name, value in list(params.items()):
        if name == "query":
            params[name] = VectorType().process_bind_param(value, tx.conn.dialect)
    raw = tx.conn.exec_driver_sql("EXPLAIN " + str(compiled), params)
    return "\n".join(str(row[0]) for row in raw)


def recall_at_k(approx: Sequence[Sequence[int]], exact: Sequence[Sequence[int]], k: int) -> float:
    """Mean share of the exact top k that the approximate top k found."""
    if not exact:
        return 1.0
    total = 0.0
    for a, e in zip(approx, exact, strict=True):
        truth = set(list(e)[:k])
        total += len(truth & set(list(a)[:k])) / max(len(truth), 1)
    return total / len(exact)
