"""Vector indexes behind one small interface, keyed by ``embedding_id``.

``ExactVectorIndex`` is a numpy matrix (the recall baseline, and the index below the size threshold);
``HnswVectorIndex`` is an HNSW graph from hnswlib, which holds the only copy of its vectors (hnswlib was chosen
over usearch and FAISS by ``bench/ann_choice.py``, see ``docs/retrieval.md``). On PostgreSQL the same interface
is served by pgvector (``retrieval/pgvector.py``). Scores are inner products of unit vectors, i.e. cosine
similarity: higher is better.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from holocron.vectors import Matrix, top_k

Ids = npt.NDArray[np.int64]
Ranked = list[tuple[int, float]]
VectorSource = Callable[[Ids], tuple[Ids, Matrix]]
"""Reads the vectors of some ids from wherever they are kept: returns (the ids it found, ascending, their rows)."""


class IndexFolderError(RuntimeError):
    """The folder of an index's files cannot be used (a file in its way, no permission to write, a lock that is
    never released); the message names the path and what is wrong with it."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"vector index folder {path}: {problem}")
        self.path = path
        self.problem = problem


_blas: list[Any] = []


def one_blas_thread() -> AbstractContextManager[object]:
    """Query-time matrix products on one BLAS thread. A matrix-vector product is memory-bound; spreading it
    over threads only helps on idle cores, and on busy ones the threads' spin-waits made it ~8x slower (a
    12k x 384 product: 10 ms with 2 threads vs 1.3 ms with 1 on this 2-core machine under load)."""
    if not _blas:
        try:
            from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]

            _blas.append(ThreadpoolController())
        except ImportError:  # pragma: no cover - installed with sentence-transformers
            _blas.append(None)
    controller = _blas[0]
    return nullcontext() if controller is None else controller.limit(limits=1, user_api="blas")


class ExactVectorIndex:
    """Brute force over a contiguous float32 matrix: exact by construction.

    Rows live in a buffer that grows by doubling; a removed row is filled by the last one, so adds and
    removes cost O(changed rows). Ids are database row ids (small, dense integers), so id -> row is a plain
    array: selecting the rows of an allowed set is one vectorised lookup, not a Python loop.
    """

    def __init__(self, dimensions: int) -> None:
        self.dimensions = dimensions
        self._ids: Ids = np.zeros(0, dtype=np.int64)
        self._matrix: Matrix = np.zeros((0, dimensions), dtype=np.float32)
        self._size = 0
        self._row: Ids = np.full(0, -1, dtype=np.int64)  # id -> row, -1 when absent

    def __len__(self) -> int:
        return self._size

    def __contains__(self, key: object) -> bool:
        return isinstance(key, int | np.integer) and 0 <= int(key) < len(self._row) and self._row[int(key)] >= 0

    @classmethod
    def from_arrays(cls, ids: npt.ArrayLike, matrix: npt.ArrayLike) -> ExactVectorIndex:
        """An index that adopts ``matrix`` as its buffer (no copy when it is already contiguous float32); the
        ids must be distinct and non-negative."""
        keys = np.ascontiguousarray(np.asarray(ids, dtype=np.int64).reshape(-1))
        rows: Matrix = np.ascontiguousarray(np.asarray(matrix, dtype=np.float32))
        if rows.ndim != 2 or len(rows) != len(keys):
            raise ValueError(f"{len(keys)} ids but a matrix of shape {rows.shape}")
        index = cls(rows.shape[1])
        if not len(keys):
            return index
        if keys.min() < 0:
            raise ValueError("ids must be non-negative")
        if len(np.unique(keys)) != len(keys):
            raise ValueError("ids must be distinct")
        index._ids, index._matrix, index._size = keys, rows, len(keys)
        index._row = np.full(int(keys.max()) + 1, -1, dtype=np.int64)
        index._row[keys] = np.arange(len(keys))
        return index

    @property
    def ids(self) -> Ids:
        return self._ids[: self._size]

    @property
    def matrix(self) -> Matrix:
        return self._matrix[: self._size]

    def _reserve(self, extra: int, largest_id: int) -> None:
        needed = self._size + extra
        if needed > len(self._ids):
            capacity = max(needed, 2 * len(self._ids), 1024)
            ids = np.zeros(capacity, dtype=np.int64)
            matrix = np.zeros((capacity, self.dimensions), dtype=np.float32)
            ids[: self._size] = self._ids[: self._size]
            matrix[: self._size] = self._matrix[: self._size]
            self._ids, self._matrix = ids, matrix
        if largest_id >= len(self._row):
            row = np.full(max(largest_id + 1, 2 * len(self._row), 1024), -1, dtype=np.int64)
            row[: len(self._row)] = self._row
            self._row = row

    def add(self, ids: npt.ArrayLike, vectors: npt.ArrayLike) -> None:
        keys = np.asarray(ids, dtype=np.int64).reshape(-1)
        matrix = np.asarray(vectors, dtype=np.float32).reshape(len(keys), self.dimensions)
        if not len(keys):
            return
        if keys.min() < 0:
            raise ValueError("ids must be non-negative")
        self._reserve(len(keys), int(keys.max()))
        unique, last = np.unique(keys[::-1], return_index=True)
        if len(unique) < len(keys):  # the same id twice in one call: the last vector wins
            keep = len(keys) - 1 - last
            keys, matrix = keys[keep], matrix[keep]
        rows = self._row[keys]
        present = rows >= 0
        self._matrix[rows[present]] = matrix[present]
        fresh = ~present
        count = int(fresh.sum())
        if count:
            start = self._size
            new_rows = np.arange(start, start + count)
            self._ids[new_rows] = keys[fresh]
            self._matrix[new_rows] = matrix[fresh]
            self._row[keys[fresh]] = new_rows
            self._size += count

    def remove(self, ids: npt.ArrayLike) -> None:
        for key in np.unique(np.asarray(ids, dtype=np.int64).reshape(-1)).tolist():
            if key not in self:
                continue
            position = int(self._row[key])
            last = self._size - 1
            if position != last:
                moved = int(self._ids[last])
                self._ids[position] = moved
                self._matrix[position] = self._matrix[last]
                self._row[moved] = position
            self._row[key] = -1
            self._size = last

    def rows_of(self, ids: Collection[int]) -> npt.NDArray[np.int64]:
        keys = np.fromiter(ids, dtype=np.int64, count=len(ids))
        keys = keys[(keys >= 0) & (keys < len(self._row))]
        rows = self._row[keys]
        return np.sort(rows[rows >= 0])

    def vectors_of(self, ids: Collection[int]) -> tuple[Ids, Matrix]:
        rows = self.rows_of(ids)
        return self._ids[rows], self._matrix[rows]

    def search(self, query: npt.ArrayLike, k: int, allowed: Collection[int] | None = None) -> Ranked:
        q = np.asarray(query, dtype=np.float32).reshape(-1)
        if allowed is None:
            ids, matrix = self.ids, self.matrix
        else:
            ids, matrix = self.vectors_of(allowed)
        if not len(ids) or k <= 0:
            return []
        with one_blas_thread():
            scores = matrix @ q
        return [(int(ids[i]), float(scores[i])) for i in top_k(scores, k)]


@dataclass(frozen=True)
class HnswParams:
    """The graph's knobs: connectivity M, and the candidate lists while adding and while searching."""

    connectivity: int = 16
    expansion_add: int = 128
    expansion_search: int = 512

    def to_json(self) -> dict[str, int]:
        return {
            "connectivity": self.connectivity,
            "expansion_add": self.expansion_add,
            "expansion_search": self.expansion_search,
        }


class HnswVectorIndex:
    """hnswlib HNSW over inner product (cosine on unit vectors).

    The graph holds the only copy of the vectors. Removal marks a label deleted (the graph keeps routing through
    it); ``tombstones`` tells the owner when a rebuild would reclaim the space. Filtered searches go exact over
    the allowed subset when it is small, else use hnswlib's filtered search, which only ever returns allowed
    labels; if the graph cannot find k of them, the search falls back to exact, so k hits come back whenever k
    allowed vectors exist. An exact search reads the subset's vectors from ``vectors`` when given (the owner's
    store, e.g. the embedding table), else from the graph (hnswlib's ``get_items``: correct, but it converts
    through Python lists, ~40 us a vector).
    """

    def __init__(
        self,
        dimensions: int,
        params: HnswParams | None = None,
        *,
        exact_subset_max: int = 5_000,
        exact_subset_fraction: float = 0.0,
        threads: int = 0,
        vectors: VectorSource | None = None,
    ) -> None:
        import hnswlib

        self.dimensions = dimensions
        self.params = params or HnswParams()
        self.exact_subset_max = exact_subset_max
        self.exact_subset_fraction = exact_subset_fraction
        self.threads = threads  # for adding; 0: all cores. Searches use one thread each.
        self.vectors = vectors
        self._index = hnswlib.Index(space="ip", dim=dimensions)
        self._index.init_index(max_elements=1024, M=self.params.connectivity, ef_construction=self.params.expansion_add)
        self._index.set_ef(self.params.expansion_search)
        self._live: npt.NDArray[np.bool_] = np.zeros(0, dtype=np.bool_)  # label -> searchable (not deleted)
        self._size = 0
        self._deleted: set[int] = set()

    def __len__(self) -> int:
        return self._size

    def __contains__(self, key: object) -> bool:
        return isinstance(key, int | np.integer) and 0 <= int(key) < len(self._live) and bool(self._live[int(key)])

    @property
    def tombstones(self) -> int:
        return len(self._deleted)

    @property
    def ids(self) -> Ids:
        """The live labels, ascending."""
        return np.flatnonzero(self._live).astype(np.int64)

    def _grow_live(self, largest: int) -> None:
        if largest >= len(self._live):
            live = np.zeros(max(largest + 1, 2 * len(self._live), 1024), dtype=np.bool_)
            live[: len(self._live)] = self._live
            self._live = live

    def reserve(self, count: int) -> None:
        """Room for ``count`` labels in all, before a bulk add."""
        if count > self._index.get_max_elements():
            self._index.resize_index(count)

    def add(self, ids: npt.ArrayLike, vectors: npt.ArrayLike) -> None:
        keys = np.asarray(ids, dtype=np.int64).reshape(-1)
        if not len(keys):
            return
        if keys.min() < 0:
            raise ValueError("ids must be non-negative")
        matrix = np.asarray(vectors, dtype=np.float32).reshape(len(keys), self.dimensions)
        unique, last = np.unique(keys[::-1], return_index=True)
        if len(unique) < len(keys):  # the same id twice in one call: the last vector wins
            keep = len(keys) - 1 - last
            keys, matrix = keys[keep], matrix[keep]
        matrix = np.ascontiguousarray(matrix)
        needed = self._index.get_current_count() + len(keys)
        if needed > self._index.get_max_elements():
            self._index.resize_index(max(needed, 2 * self._index.get_max_elements()))
        # An existing label is updated in place; a deleted one is revived and updated.
        self._index.add_items(matrix, keys.astype(np.uint64), num_threads=self.threads or -1)
        self._grow_live(int(keys.max()))
        self._size += int((~self._live[keys]).sum())
        self._live[keys] = True
        self._deleted.difference_update(keys.tolist())

    def remove(self, ids: npt.ArrayLike) -> None:
        keys = np.unique(np.asarray(ids, dtype=np.int64).reshape(-1))
        keys = keys[(keys >= 0) & (keys < len(self._live))]
        live = keys[self._live[keys]].tolist()
        for key in live:
            self._index.mark_deleted(key)
        self._live[live] = False
        self._size -= len(live)
        self._deleted.update(live)

    def live_of(self, ids: Collection[int]) -> Ids:
        """Those of ``ids`` that are live labels, ascending."""
        keys = np.fromiter(ids, dtype=np.int64, count=len(ids))
        keys = keys[(keys >= 0) & (keys < len(self._live))]
        return np.unique(keys[self._live[keys]])

    def graph_vectors(self, ids: npt.ArrayLike) -> Matrix:
        """The vectors the graph holds for live labels (a ``KeyError`` for any other)."""
        keys = np.asarray(ids, dtype=np.int64).reshape(-1)
        if not len(keys):
            return np.zeros((0, self.dimensions), dtype=np.float32)
        missing = [int(key) for key in keys if int(key) not in self]
        if missing:
            raise KeyError(f"not in the graph: {missing[:10]}")
        return np.asarray(self._index.get_items(keys.astype(np.uint64)), dtype=np.float32).reshape(
            len(keys), self.dimensions
        )

    def vectors_of(self, ids: Collection[int]) -> tuple[Ids, Matrix]:
        """(live ids among ``ids``, their vectors), from ``vectors`` when given, else from the graph."""
        keys = self.live_of(ids)
        if self.vectors is not None:
            return self.vectors(keys)
        return keys, self.graph_vectors(keys)

    def search(self, query: npt.ArrayLike, k: int, allowed: Collection[int] | None = None) -> Ranked:
        q = np.ascontiguousarray(np.asarray(query, dtype=np.float32).reshape(1, -1))
        size = len(self)
        if size == 0 or k <= 0:
            return []
        if allowed is None:
            return self._graph(q, min(k, size), None)
        if len(allowed) <= max(self.exact_subset_max, self.exact_subset_fraction * size):
            return self._exact(q[0], k, allowed)
        try:
            return self._graph(q, min(k, len(allowed)), allowed.__contains__)
        except RuntimeError:  # fewer than k allowed labels reachable at this ef
            return self._exact(q[0], k, allowed)

    def _exact(self, q: npt.NDArray[np.float32], k: int, allowed: Collection[int]) -> Ranked:
        ids, matrix = self.vectors_of(allowed)
        if not len(ids):
            return []
        with one_blas_thread():
            scores = matrix @ q
        return [(int(ids[i]), float(scores[i])) for i in top_k(scores, k)]

    def _graph(self, q: npt.NDArray[np.float32], count: int, accept: Callable[[int], bool] | None) -> Ranked:
        self._index.set_ef(max(self.params.expansion_search, count))
        labels, distances = self._index.knn_query(q, k=count, num_threads=1, filter=accept)
        # hnswlib's "ip" distance is 1 - inner product.
        return [(int(key), float(1.0 - d)) for key, d in zip(labels[0], distances[0], strict=True)]

    def save(self, path: Path) -> dict[str, Any]:
        """Write the graph; returns what the caller must keep beside it (the deleted labels)."""
        self._index.save_index(str(path))
        return {"deleted": sorted(self._deleted)}

    @classmethod
    def load(
        cls,
        path: Path,
        dimensions: int,
        params: HnswParams | None = None,
        extra: dict[str, Any] | None = None,
        *,
        exact_subset_max: int = 5_000,
        exact_subset_fraction: float = 0.0,
        vectors: VectorSource | None = None,
    ) -> HnswVectorIndex:
        index = cls(
            dimensions,
            params,
            exact_subset_max=exact_subset_max,
            exact_subset_fraction=exact_subset_fraction,
            vectors=vectors,
        )
        import hnswlib

        index._index = hnswlib.Index(space="ip", dim=dimensions)
        index._index.load_index(str(path), max_elements=0)
        if index._index.dim != dimensions:
            raise ValueError(f"{path}: {index._index.dim} dimensions, expected {dimensions}")
        index._index.set_ef(index.params.expansion_search)
        labels = np.asarray(index._index.get_ids_list(), dtype=np.int64)
        deleted = {int(key) for key in (extra or {}).get("deleted", [])}
        unknown = deleted.difference(labels.tolist())
        if unknown:
            raise ValueError(f"{path}: {len(unknown)} deleted labels are not in the graph")
        index._deleted = deleted
        if len(labels):
            index._grow_live(int(labels.max()))
            index._live[labels] = True
            index._live[list(deleted)] = False
        index._size = int(index._live.sum())
        return index
