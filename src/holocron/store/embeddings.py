"""Embedding rows: one vector per (chunk, space, chunk text version), written idempotently; on SQLite, the change
log that the embedded vector index replays, and the bulk reads it rebuilds from."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import LargeBinary, Table, and_, delete, func, select, type_coerce

from holocron.store.database import Tx, insert_ignoring_conflicts
from holocron.store.info import get_info, set_info
from holocron.store.pg_hnsw import ensure_space_index_for
from holocron.store.types import utcnow
from holocron.vectors import Matrix, vector_sha256

Ids = npt.NDArray[np.int64]


@dataclass(frozen=True)
class EmbeddingWrite:
    chunk_id: str
    input_content_sha256: str


def insert_embeddings(
    tx: Tx, embedding_space_id: int, items: Sequence[EmbeddingWrite], vectors: Matrix, run_id: str | None
) -> int:
    """Insert one vector per item; an existing (chunk, space, content hash) is left alone. Returns rows written."""
    if len(items) != len(vectors):
        raise ValueError(f"{len(items)} chunks but {len(vectors)} vectors")
    if not items:
        return 0
    if tx.dialect == "postgresql":  # the space's HNSW index exists before its first vectors are written
        ensure_space_index_for(tx, embedding_space_id)
    now = utcnow()
    table = tx.t.embedding
    rows = []
    for item, vector in zip(items, np.asarray(vectors, dtype=np.float32), strict=True):
        rows.append(
            {
                "chunk_id": item.chunk_id,
                "embedding_space_id": embedding_space_id,
                "input_content_sha256": item.input_content_sha256,
                "run_id": run_id,
                "vector": vector,
                "vector_sha256": vector_sha256(vector),
                "created_utc": now,
            }
        )
    statement = insert_ignoring_conflicts(tx, table, ["chunk_id", "embedding_space_id", "input_content_sha256"])
    return len(tx.execute(statement.returning(table.c.embedding_id), rows).all())


def count_embeddings(tx: Tx, embedding_space_id: int | None = None) -> int:
    table = tx.t.embedding
    query = select(func.count()).select_from(table)
    if embedding_space_id is not None:
        query = query.where(table.c.embedding_space_id == embedding_space_id)
    return int(tx.execute(query).scalar_one())


def count_current_embeddings(tx: Tx, embedding_space_id: int) -> int:
    """Embeddings of the chunks' current text: the space's coverage numerator."""
    c, e = tx.t.chunk, tx.t.embedding
    query = (
        select(func.count())
        .select_from(e.join(c, (c.c.chunk_id == e.c.chunk_id) & (c.c.content_sha256 == e.c.input_content_sha256)))
        .where(e.c.embedding_space_id == embedding_space_id)
    )
    return int(tx.execute(query).scalar_one())


# -- the change log (SQLite): what the embedded vector index replays ----------------------------------------


def _embedding_log(tx: Tx) -> Table:
    if tx.t.embedding_log is None:
        raise RuntimeError("the embedding change log exists on SQLite only (PostgreSQL's pgvector needs none)")
    return tx.t.embedding_log


def _pruned_key(embedding_space_id: int) -> str:
    return f"log_pruned:{embedding_space_id}"


def log_pruned_through(tx: Tx, embedding_space_id: int) -> int:
    """The sequence up to which the space's log rows have been deleted (0: never pruned). A reader whose state
    is older than this cannot catch up by replay."""
    value = get_info(tx, _pruned_key(embedding_space_id))
    return int(value) if value else 0


def log_state(tx: Tx, embedding_space_id: int) -> tuple[int, int]:
    """(newest, pruned through) for the space: its newest change (the newest log row, or the pruning mark
    when every row up to it is gone), and the mark (see :func:`log_pruned_through`)."""
    log = _embedding_log(tx)
    value = tx.execute(select(func.max(log.c.seq)).where(log.c.embedding_space_id == embedding_space_id)).scalar()
    pruned = log_pruned_through(tx, embedding_space_id)
    return max(int(value or 0), pruned), pruned


def newest_log_seq(tx: Tx, embedding_space_id: int) -> int:
    """The space's newest change: its newest log row, or the pruning mark when every row up to it is gone."""
    return log_state(tx, embedding_space_id)[0]


def changed_embedding_ids(tx: Tx, embedding_space_id: int, after_seq: int, through_seq: int) -> list[int]:
    """The embedding ids the log touched in (after_seq, through_seq], ascending."""
    log = _embedding_log(tx)
    rows = tx.execute(
        select(log.c.embedding_id)
        .where(
            log.c.embedding_space_id == embedding_space_id,
            log.c.seq > after_seq,
            log.c.seq <= through_seq,
        )
        .distinct()
    ).scalars()
    return sorted({int(value) for value in rows})


def recently_logged_ids(tx: Tx, embedding_space_id: int, through_seq: int, limit: int) -> list[int]:
    """Up to ``limit`` distinct embedding ids of the newest log rows at or before ``through_seq``."""
    log = _embedding_log(tx)
    rows = tx.execute(
        select(log.c.embedding_id)
        .where(log.c.embedding_space_id == embedding_space_id, log.c.seq <= through_seq)
        .order_by(log.c.seq.desc())
        .limit(4 * limit)
    ).scalars()
    out: list[int] = []
    for value in rows:
        if int(value) not in out:
            out.append(int(value))
        if len(out) == limit:
            break
    return out


def prune_embedding_log(tx: Tx, embedding_space_id: int, through_seq: int) -> int:
    """Delete the space's log rows with ``seq <= through_seq`` (consumed: an index saved at that sequence holds
    them) and record the mark, which only ever rises. Returns the rows deleted.

    Safe because the log's ``seq`` is ``AUTOINCREMENT``: a deleted sequence is never handed out again, so a later
    change always sorts after the mark."""
    if through_seq <= log_pruned_through(tx, embedding_space_id):
        return 0
    log = _embedding_log(tx)
    deleted = tx.execute(
        delete(log).where(log.c.embedding_space_id == embedding_space_id, log.c.seq <= through_seq)
    ).rowcount
    set_info(tx, _pruned_key(embedding_space_id), str(through_seq))
    return int(deleted or 0)


# -- a space's vectors in bulk --------------------------------------------------------------------------------

PAGE_ROWS = 10_000
_STORED = np.dtype("<f4")  # how SQLite stores a vector (holocron.vectors.encode_vector)


def _current(tx: Tx, embedding_space_id: int) -> Any:
    """Embeddings of this space whose chunk still has the text they were made from."""
    c, e = tx.t.chunk, tx.t.embedding
    return and_(
        e.c.embedding_space_id == embedding_space_id,
        c.c.chunk_id == e.c.chunk_id,
        c.c.content_sha256 == e.c.input_content_sha256,
    )


def _vector_column(tx: Tx) -> Any:
    """On SQLite the stored bytes themselves, so a page decodes with one copy; elsewhere the decoded vector."""
    column = tx.t.embedding.c.vector
    return type_coerce(column, LargeBinary).label("vector") if tx.dialect == "sqlite" else column


def _decode_into(rows: Sequence[Any], dimensions: int, ids: Ids, matrix: Matrix) -> None:
    """(embedding_id, vector) rows into the given slices of an id array and a matrix."""
    if not rows:
        return
    ids[:] = [int(row[0]) for row in rows]
    if isinstance(rows[0][1], bytes | bytearray | memoryview):
        data = b"".join(bytes(row[1]) for row in rows)
        if len(data) != len(rows) * dimensions * _STORED.itemsize:
            raise ValueError(f"stored vectors are not all {dimensions}-dimensional")
        matrix[:] = np.frombuffer(data, dtype=_STORED).reshape(len(rows), dimensions)
        return
    for position, row in enumerate(rows):
        matrix[position] = np.asarray(row[1], dtype=np.float32)


def _sqlite_rows(tx: Tx, sql: str, parameters: Sequence[Any]) -> list[Any]:
    """A plain DB-API query on the transaction's own SQLite connection: for bulk reads of vectors by id, where
    building a result row object per vector costs as much again as SQLite's own lookup."""
    cursor = tx.conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        return list(cursor.execute(sql, parameters).fetchall())
    finally:
        cursor.close()


def current_embedding_ids(tx: Tx, embedding_space_id: int) -> Ids:
    """The ids of the space's current embeddings, ascending."""
    c, e = tx.t.chunk, tx.t.embedding
    query = select(e.c.embedding_id).select_from(e).join(c, _current(tx, embedding_space_id))
    values = tx.execute(query.order_by(e.c.embedding_id)).scalars()
    return np.fromiter((int(value) for value in values), dtype=np.int64)


def read_current_vectors(
    tx: Tx, embedding_space_id: int, dimensions: int, *, page_rows: int = PAGE_ROWS
) -> tuple[Ids, Matrix]:
    """Every current embedding of the space by ascending id, read in pages of ``page_rows`` straight into one
    preallocated float32 matrix (never a list of every vector). Call inside one transaction, so that the count
    and the pages see the same rows."""
    c, e = tx.t.chunk, tx.t.embedding
    count = count_current_embeddings(tx, embedding_space_id)
    ids: Ids = np.empty(count, dtype=np.int64)
    matrix: Matrix = np.empty((count, dimensions), dtype=np.float32)
    filled, last = 0, -1
    while filled < count:
        rows = tx.execute(
            select(e.c.embedding_id, _vector_column(tx))
            .select_from(e)
            .join(c, _current(tx, embedding_space_id))
            .where(e.c.embedding_id > last)
            .order_by(e.c.embedding_id)
            .limit(min(page_rows, count - filled))
        ).all()
        if not rows:
            break
        _decode_into(rows, dimensions, ids[filled : filled + len(rows)], matrix[filled : filled + len(rows)])
        filled += len(rows)
        last = int(rows[-1][0])
    return ids[:filled], matrix[:filled]


def read_vectors(
    tx: Tx, embedding_space_id: int, dimensions: int, ids: Collection[int], *, current_only: bool = True
) -> tuple[Ids, Matrix]:
    """The vectors of those of ``ids`` that are embeddings of the space (current ones only, unless told), by
    ascending id."""
    c, e = tx.t.chunk, tx.t.embedding
    wanted = sorted({int(key) for key in ids})
    out_ids: Ids = np.empty(len(wanted), dtype=np.int64)
    matrix: Matrix = np.empty((len(wanted), dimensions), dtype=np.float32)
    filled = 0
    for start in range(0, len(wanted), PAGE_ROWS):
        batch = wanted[start : start + PAGE_ROWS]
        rows: Sequence[Any]
        if tx.dialect == "sqlite" and not current_only:
            marks = ", ".join("?" * len(batch))
            rows = _sqlite_rows(
                tx,
                f"SELECT embedding_id, vector FROM {e.name} WHERE embedding_space_id = ? "
                f"AND embedding_id IN ({marks}) ORDER BY embedding_id",
                [embedding_space_id, *batch],
            )
        else:
            query = select(e.c.embedding_id, _vector_column(tx)).select_from(e)
            if current_only:
                query = query.join(c, _current(tx, embedding_space_id))
            else:
                query = query.where(e.c.embedding_space_id == embedding_space_id)
            rows = tx.execute(query.where(e.c.embedding_id.in_(batch)).order_by(e.c.embedding_id)).all()
        _decode_into(rows, dimensions, out_ids[filled : filled + len(rows)], matrix[filled : filled + len(rows)])
        filled += len(rows)
    return out_ids[:filled], matrix[:filled]
