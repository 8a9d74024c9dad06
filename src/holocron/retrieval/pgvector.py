"""Vector search on PostgreSQL: pgvector does the work inside the database, so there is no file to keep.

``ORDER BY vector <=> :query`` is exact while no ANN index covers the space; an HNSW index on the space's
vectors (built by the PostgreSQL store) is then used by the same statement. ``add``/``remove`` are no-ops:
the table is the index.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import BigInteger, any_, bindparam, func, literal_column, select
from sqlalchemy.dialects.postgresql import ARRAY

from holocron.retrieval.space_index import SyncReport
from holocron.retrieval.vector_index import Ranked
from holocron.store.database import Database


class PgVectorIndex:
    """The ``VectorIndex`` of one space on PostgreSQL (cosine distance ``<=>``)."""

    kind = "pgvector"

    def __init__(self, db: Database, embedding_space_id: int, dimensions: int) -> None:
        self.db = db
        self.embedding_space_id = embedding_space_id
        self.dimensions = dimensions

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

    def search(self, query: npt.ArrayLike, k: int, allowed: Collection[int] | None = None) -> Ranked:
        if k <= 0:
            return []
        c, e = self.db.t.chunk, self.db.t.embedding
        q = np.asarray(query, dtype=np.float32).reshape(-1)
        distance = e.c.vector.op("<=>")(bindparam("query", q, type_=e.c.vector.type))
        statement = (
            select(e.c.embedding_id, distance.label("distance"))
            .select_from(e.join(c, c.c.chunk_id == e.c.chunk_id))
            .where(
                e.c.embedding_space_id == self.embedding_space_id,
                c.c.content_sha256 == e.c.input_content_sha256,
            )
            .order_by(literal_column("distance"), e.c.embedding_id)
            .limit(k)
        )
        if allowed is not None:
            if not allowed:
                return []
            # One array parameter, not one parameter per id (PostgreSQL allows 65,535 per statement).
            ids = bindparam("allowed", sorted(int(i) for i in allowed), type_=ARRAY(BigInteger))
            statement = statement.where(e.c.embedding_id == any_(ids))
        with self.db.read() as tx:
            return [(int(row.embedding_id), 1.0 - float(row.distance)) for row in tx.execute(statement)]

    def sync(self) -> SyncReport:
        return SyncReport(self.kind, len(self), 0)

    def rebuild(self, *, reason: str = "requested") -> SyncReport:
        return SyncReport(self.kind, len(self), 0, reason="nothing to rebuild: pgvector indexes the table")

    def status(self) -> dict[str, Any]:
        return {"embedding_space_id": self.embedding_space_id, "kind": self.kind, "size": len(self)}
