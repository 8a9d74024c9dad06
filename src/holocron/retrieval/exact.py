"""Exact search: one matrix product over a space's vectors, cached while the space is unchanged."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import func, select

from holocron.store.database import Database
from holocron.store.embeddings import load_space_vectors
from holocron.vectors import Matrix


@dataclass
class _Snapshot:
    version: tuple[int, int]
    chunk_ids: list[str]
    matrix: Matrix


class ExactIndex:
    """Brute-force inner product over unit vectors (cosine); correct by construction, the recall baseline."""

    def __init__(self, db: Database, embedding_space_id: int) -> None:
        self.db = db
        self.embedding_space_id = embedding_space_id
        self._snapshot: _Snapshot | None = None

    def _version(self) -> tuple[int, int]:
        e = self.db.t.embedding
        with self.db.read() as tx:
            count, newest = tx.execute(
                select(func.count(), func.coalesce(func.max(e.c.embedding_id), 0)).where(
                    e.c.embedding_space_id == self.embedding_space_id
                )
            ).one()
        return int(count), int(newest)

    def snapshot(self) -> _Snapshot:
        version = self._version()
        if self._snapshot is None or self._snapshot.version != version:
            with self.db.read() as tx:
                chunk_ids, vectors = load_space_vectors(tx, self.embedding_space_id)
            matrix = np.vstack(vectors).astype(np.float32) if vectors else np.zeros((0, 1), dtype=np.float32)
            self._snapshot = _Snapshot(version, chunk_ids, matrix)
        return self._snapshot

    def search(self, query: np.ndarray, k: int) -> list[tuple[str, float]]:
        snap = self.snapshot()
        if not snap.chunk_ids or k <= 0:
            return []
        scores = snap.matrix @ np.asarray(query, dtype=np.float32)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(snap.chunk_ids[i], float(scores[i])) for i in top]
