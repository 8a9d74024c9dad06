"""Vector search on PostgreSQL: pgvector does the work inside the database, so there is no file to keep.

Each space's HNSW index (``store/pg_hnsw.py``, built when the space gets embeddings) is used when it exists;
until then the same search runs exactly, as a sequential scan. Filters go into the same statement as SQL
(pgvector's iterative scan keeps walking the graph until k rows pass them), so there is no allowed-id list
to ship. ``add``/``remove`` are no-ops: the table is the index.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import BigInteger, ColumnElement, and_, any_, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY

from holocron.retrieval.filters import SearchFilters
from holocron.retrieval.space_index import SyncReport
from holocron.retrieval.vector_index import Ranked
from holocron.store import pg_hnsw
from holocron.store.database import Database
from holocron.store.spaces import EmbeddingSpace


class PgVectorIndex:
    """The ``VectorIndex`` of one space on PostgreSQL."""

    def __init__(self, db: Database, space: EmbeddingSpace) -> None:
        self.db = db
        self.space = space
        self.embedding_space_id = space.embedding_space_id
        self.dimensions = space.dimensions
        self._kind = "pgvector"

    @property
    def kind(self) -> str:
        return self._kind

    def __len__(self) -> int:
        e = self.db.t.embedding
        with self.db.read() as tx:
            return int(
                tx.execute(select(func.count()).where(e.c.embedding_space_id == self.embedding_space_id)).scalar_one()
            )

    def add(self, ids: npt.ArrayLike, vectors: npt.ArrayLike) -> None:
        """Nothing to do: the rows are the index."""

    def remove(self, ids: npt.ArrayLike) -> None:
        """Nothing to do: the rows are the index."""

    def search(
        self,
        query: npt.ArrayLike,
        k: int,
        allowed: Collection[int] | None = None,
        *,
        filters: SearchFilters | None = None,
    ) -> Ranked:
        """(embedding_id, cosine) best first among the rows that pass ``filters`` (and ``allowed``, if given)."""
        if k <= 0 or (allowed is not None and not allowed):
            return []
        q = np.asarray(query, dtype=np.float32).reshape(-1)
        with self.db.read() as tx:
            parts: list[ColumnElement[bool]] = []
            if filters is not None and not filters.empty:
                parts.append(filters.condition(tx.t, tx.dialect))
            if allowed is not None:
                # One array parameter, not one parameter per id (PostgreSQL allows 65,535 per statement).
                ids = bindparam("allowed", sorted(int(i) for i in allowed), type_=ARRAY(BigInteger))
                parts.append(tx.t.embedding.c.embedding_id == any_(ids))
            condition = and_(*parts) if parts else None
            if pg_hnsw.index_exists(tx, self.embedding_space_id):
                self._kind = "pgvector-hnsw"
                return pg_hnsw.hnsw_search(tx, self.space, q, k, allowed_sql_filter=condition)
            self._kind = "pgvector-exact"
            return pg_hnsw.exact_search(tx, self.space, q, k, allowed_sql_filter=condition)

    def sync(self) -> SyncReport:
        return SyncReport(self.kind, len(self), 0)

    def build_if_missing(self) -> SyncReport | None:
        """Build the space's graph when it has none (a first load, or a run that stopped before its build)."""
        started = time.perf_counter()
        if not pg_hnsw.ensure_space_index(self.db, self.space):
            return None
        self._kind = "pgvector-hnsw"
        seconds = time.perf_counter() - started
        return SyncReport(self.kind, len(self), 0, rebuilt=True, reason="built over the rows", seconds=seconds)

    def rebuild(self, *, reason: str = "requested") -> SyncReport:
        pg_hnsw.ensure_space_index(self.db, self.space)
        return SyncReport(self.kind, len(self), 0, rebuilt=True, reason=reason)

    def status(self) -> dict[str, Any]:
        return {"embedding_space_id": self.embedding_space_id, "kind": self.kind, "size": len(self)}
