"""Vector indexes behind one small interface, keyed by ``embedding_id``.

``ExactVectorIndex`` is a numpy matrix (the recall baseline, and the index below the size threshold);
``UsearchVectorIndex`` is an HNSW graph from usearch (chosen by ``bench/ann_choice.py``, see
``docs/retrieval.md``). On PostgreSQL the same interface is served by pgvector (``retrieval/pgvector.py``).
Scores are inner products of unit vectors, i.e. cosine similarity: higher is better.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from holocron.vectors import Matrix

Ids = npt.NDArray[np.int64]
Ranked = list[tuple[int, float]]


@runtime_checkable
class VectorIndex(Protocol):
    """What a search needs from an index; ``allowed`` restricts the result to those ids (filters)."""

    def __len__(self) -> int: ...

    def add(self, ids: npt.ArrayLike, vectors: npt.ArrayLike) -> None: ...

    def remove(self, ids: npt.ArrayLike) -> None: ...

    def search(self, query: npt.ArrayLike, k: int, allowed: Collection[int] | None = None) -> Ranked: ...


def top_k(scores: npt.NDArray[np.float32], k: int) -> npt.NDArray[np.intp]:
    """Positions of the k largest scores, best first; ties keep their input order (deterministic)."""
    k = min(k, len(scores))
    if k <= 0:
        return np.zeros(0, dtype=np.intp)
    if k < len(scores):
        part = np.argpartition(-scores, k - 1)[:k]
        return part[np.argsort(-scores[part], kind="stable")]
    return np.argsort(-scores, kind="stable")


class ExactVectorIndex:
    """Brute force over a contiguous float32 matrix: exact by construction.

    Rows live in a buffer that grows by doubling; a removed row is filled by the last one, so adds and
    removes cost O(changed rows), not a copy of the whole matrix.
    """

    def __init__(self, dimensions: int) -> None:
        self.dimensions = dimensions
        self._ids: Ids = np.zeros(0, dtype=np.int64)
        self._matrix: Matrix = np.zeros((0, dimensions), dtype=np.float32)
        self._size = 0
        self._position: dict[int, int] = {}

    def __len__(self) -> int:
        return self._size

    @property
    def ids(self) -> Ids:
        return self._ids[: self._size]

    @property
    def matrix(self) -> Matrix:
        return self._matrix[: self._size]

    def _reserve(self, extra: int) -> None:
        needed = self._size + extra
        if needed <= len(self._ids):
            return
        capacity = max(needed, 2 * len(self._ids), 1024)
        ids = np.zeros(capacity, dtype=np.int64)
        matrix = np.zeros((capacity, self.dimensions), dtype=np.float32)
        ids[: self._size] = self._ids[: self._size]
        matrix[: self._size] = self._matrix[: self._size]
        self._ids, self._matrix = ids, matrix

    def add(self, ids: npt.ArrayLike, vectors: npt.ArrayLike) -> None:
        keys = np.asarray(ids, dtype=np.int64).reshape(-1)
        matrix = np.asarray(vectors, dtype=np.float32).reshape(len(keys), self.dimensions)
        self._reserve(len(keys))
        for key, row in zip(keys.tolist(), matrix, strict=True):
            position = self._position.get(key)
            if position is None:
                position = self._size
                self._size += 1
                self._position[key] = position
                self._ids[position] = key
            self._matrix[position] = row

    def remove(self, ids: npt.ArrayLike) -> None:
        for key in np.asarray(ids, dtype=np.int64).reshape(-1).tolist():
            position = self._position.pop(key, None)
            if position is None:
                continue
            last = self._size - 1
            if position != last:
                moved = int(self._ids[last])
                self._ids[position] = moved
                self._matrix[position] = self._matrix[last]
                self._position[moved] = position
            self._size = last

    def vectors_of(self, ids: Collection[int]) -> tuple[Ids, Matrix]:
        positions = [p for p in (self._position.get(int(key)) for key in ids) if p is not None]
        positions.sort()
        return self._ids[positions], self._matrix[positions]

    def search(self, query: npt.ArrayLike, k: int, allowed: Collection[int] | None = None) -> Ranked:
        q = np.asarray(query, dtype=np.float32).reshape(-1)
        if allowed is None:
            ids, matrix = self.ids, self.matrix
        else:
            ids, matrix = self.vectors_of(allowed)
        if not len(ids) or k <= 0:
            return []
        scores = matrix @ q
        return [(int(ids[i]), float(scores[i])) for i in top_k(scores, k)]


@dataclass(frozen=True)
class HnswParams:
    """The graph's knobs: connectivity M, and the candidate lists while adding and while searching."""

    connectivity: int = 16
    expansion_add: int = 128
    expansion_search: int = 64

    def to_json(self) -> dict[str, int]:
        return {
            "connectivity": self.connectivity,
            "expansion_add": self.expansion_add,
            "expansion_search": self.expansion_search,
        }


class UsearchVectorIndex:
    """usearch HNSW over cosine. Filtered searches go exact over the allowed subset when it is small, and
    otherwise ask the graph for enough extra candidates to keep k allowed ones (falling back to exact)."""

    def __init__(
        self,
        dimensions: int,
        params: HnswParams | None = None,
        *,
        exact_subset_max: int = 20_000,
        exact_subset_fraction: float = 0.02,
    ) -> None:
        from usearch.index import Index

        self.dimensions = dimensions
        self.params = params or HnswParams()
        self.exact_subset_max = exact_subset_max
        self.exact_subset_fraction = exact_subset_fraction
        self._index = Index(
            ndim=dimensions,
            metric="ip",
            dtype="f32",
            connectivity=self.params.connectivity,
            expansion_add=self.params.expansion_add,
            expansion_search=self.params.expansion_search,
        )

    def __len__(self) -> int:
        return len(self._index)

    def add(self, ids: npt.ArrayLike, vectors: npt.ArrayLike) -> None:
        keys = np.asarray(ids, dtype=np.uint64).reshape(-1)
        if not len(keys):
            return
        matrix = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32).reshape(len(keys), self.dimensions))
        present = np.asarray(self._index.contains(keys), dtype=bool).reshape(-1)
        if present.any():
            self._index.remove(keys[present])
        self._index.add(keys, matrix)

    def remove(self, ids: npt.ArrayLike) -> None:
        keys = np.asarray(ids, dtype=np.uint64).reshape(-1)
        if len(keys):
            present = np.asarray(self._index.contains(keys), dtype=bool).reshape(-1)
            if present.any():
                self._index.remove(keys[present])

    def keys(self) -> Ids:
        return np.asarray(self._index.keys, dtype=np.int64)

    def _exact(self, q: npt.NDArray[np.float32], k: int, allowed: Collection[int]) -> Ranked:
        keys = np.fromiter(allowed, dtype=np.uint64, count=len(allowed))
        keys = keys[np.asarray(self._index.contains(keys), dtype=bool).reshape(-1)] if len(keys) else keys
        if not len(keys):
            return []
        matrix = np.asarray(self._index.get(keys), dtype=np.float32).reshape(len(keys), self.dimensions)
        scores = matrix @ q
        return [(int(keys[i]), float(scores[i])) for i in top_k(scores, k)]

    def search(self, query: npt.ArrayLike, k: int, allowed: Collection[int] | None = None) -> Ranked:
        q = np.ascontiguousarray(np.asarray(query, dtype=np.float32).reshape(-1))
        size = len(self)
        if size == 0 or k <= 0:
            return []
        if allowed is not None:
            if len(allowed) <= max(self.exact_subset_max, self.exact_subset_fraction * size):
                return self._exact(q, k, allowed)
            # Enough candidates that, at the allowed share, about twice k of them pass the filter.
            count = min(size, k + math.ceil(2 * k * size / max(len(allowed), 1)))
            while True:
                ranked = [(key, score) for key, score in self._graph(q, count) if key in allowed]
                if len(ranked) >= k or count >= size:
                    return ranked[:k] if len(ranked) >= k else self._exact(q, k, allowed)
                count = min(size, count * 4)
        return self._graph(q, min(k, size))

    def _graph(self, q: npt.NDArray[np.float32], count: int) -> Ranked:
        matches = self._index.search(q, count, threads=1)
        keys = np.asarray(matches.keys, dtype=np.int64).reshape(-1)
        distances = np.asarray(matches.distances, dtype=np.float32).reshape(-1)
        # usearch's "ip" distance is 1 - inner product.
        return [(int(key), float(1.0 - distance)) for key, distance in zip(keys, distances, strict=True)]

    def save(self, path: Path) -> None:
        self._index.save(str(path))

    @classmethod
    def load(
        cls,
        path: Path,
        dimensions: int,
        params: HnswParams | None = None,
        *,
        exact_subset_max: int = 20_000,
        exact_subset_fraction: float = 0.02,
    ) -> UsearchVectorIndex:
        index = cls(
            dimensions,
            params,
            exact_subset_max=exact_subset_max,
            exact_subset_fraction=exact_subset_fraction,
        )
        index._index.load(str(path))
        if index._index.ndim != dimensions:
            raise ValueError(f"{path}: {index._index.ndim} dimensions, expected {dimensions}")
        index._index.expansion_search = index.params.expansion_search  # type: ignore[misc]
        return index
