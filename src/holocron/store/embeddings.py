"""Embedding rows: one vector per (chunk, space, chunk text version), written idempotently."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import func, select

from holocron.store.database import Tx, insert_ignoring_conflicts
from holocron.store.pg_hnsw import ensure_space_index_for
from holocron.store.types import utcnow
from holocron.vectors import Matrix, vector_sha256


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
