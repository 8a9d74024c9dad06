"""The vector encoding: float32 little-endian bytes, hashed over exactly those bytes.

Every module that turns a vector into bytes or back imports from here.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import numpy.typing as npt

Vector = npt.NDArray[np.float32]
Matrix = npt.NDArray[np.float32]

_DTYPE = np.dtype("<f4")


def encode_vector(vector: npt.ArrayLike) -> bytes:
    return np.asarray(vector, dtype=_DTYPE).tobytes()


def decode_vector(data: bytes) -> Vector:
    return np.frombuffer(data, dtype=_DTYPE).astype(np.float32, copy=False)


def decode_matrix(blobs: list[bytes], dimensions: int) -> Matrix:
    """Many stored vectors into one contiguous matrix with a single copy."""
    if not blobs:
        return np.zeros((0, dimensions), dtype=np.float32)
    matrix: Matrix = np.frombuffer(b"".join(blobs), dtype=_DTYPE).reshape(len(blobs), dimensions).astype(np.float32)
    return matrix


def vector_sha256(vector: npt.ArrayLike) -> str:
    return hashlib.sha256(encode_vector(vector)).hexdigest()


def l2_normalize(matrix: npt.ArrayLike) -> Matrix:
    array = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(array, axis=-1, keepdims=True)
    norms[norms == 0] = 1.0
    normalized: Matrix = (array / norms).astype(np.float32)
    return normalized


def cosine(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    va, vb = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    denominator = float(np.linalg.norm(va) * np.linalg.norm(vb))
    return float(va @ vb / denominator) if denominator else 0.0


def top_k(scores: npt.NDArray[np.floating[Any]], k: int) -> npt.NDArray[np.intp]:
    """Positions of the k largest scores, best first; equal scores keep their input order, also at the k-th
    place (a partial sort alone would pick an arbitrary one of the tied), so equal inputs rank equally."""
    k = min(k, len(scores))
    if k <= 0:
        return np.zeros(0, dtype=np.intp)
    if k < len(scores):
        kth = scores[np.argpartition(-scores, k - 1)[k - 1]]
        above = np.flatnonzero(scores > kth)
        tied = np.flatnonzero(scores == kth)[: k - len(above)]
        chosen = np.concatenate([above, tied])
        return chosen[np.argsort(-scores[chosen], kind="stable")]
    return np.argsort(-scores, kind="stable")
