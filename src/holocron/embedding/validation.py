"""Every batch of vectors is checked before anything is stored."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from holocron.embedding.base import EmbeddingError
from holocron.vectors import Matrix


def _named(ids: Sequence[str], rows: Sequence[int]) -> str:
    shown = [ids[i] for i in rows[:5]] if ids else [str(i) for i in rows[:5]]
    more = f" (+{len(rows) - 5} more)" if len(rows) > 5 else ""
    return ", ".join(shown) + more


def validate_vectors(vectors: object, *, expected: int, dimensions: int | None, ids: Sequence[str] = ()) -> Matrix:
    """The checked matrix, or an :class:`EmbeddingError` naming the inputs at fault."""
    try:
        matrix = np.asarray(vectors, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise EmbeddingError(f"provider returned vectors that are not numbers: {exc}") from exc
    if matrix.ndim != 2 or matrix.shape[0] != expected:
        got = matrix.shape[0] if matrix.ndim >= 1 else 0
        raise EmbeddingError(f"provider returned {got} vectors for {expected} inputs: {_named(ids, range(expected))}")
    if dimensions is not None and matrix.shape[1] != dimensions:
        raise EmbeddingError(
            f"provider returned {matrix.shape[1]}-dimensional vectors, the space has {dimensions}: "
            f"{_named(ids, range(expected))}"
        )
    bad_values = np.flatnonzero(~np.isfinite(matrix).all(axis=1))
    if bad_values.size:
        raise EmbeddingError(f"NaN or infinite values in vectors for: {_named(ids, bad_values.tolist())}")
    zero = np.flatnonzero(np.linalg.norm(matrix, axis=1) == 0)
    if zero.size:
        raise EmbeddingError(f"zero-norm vectors for: {_named(ids, zero.tolist())}")
    return matrix
