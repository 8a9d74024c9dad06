"""Drift metrics, pure: how far two sets of vectors of the same chunks, and their rankings, have moved.

Two questions tell a silent model change apart from noise:

- **Do the same texts get the same vectors?** Cosine between the old and new vector of each chunk: the mean
  says how much moved overall, the minimum finds the chunk that moved most. The same weights on the same
  hardware give cosines of 1 up to float rounding; a different model or quantisation does not.
- **Do queries still find the same chunks?** For each query, the top-k of the old vectors against the top-k of
  the new: Jaccard overlap of the two sets, and rank correlation (Spearman's rho and Kendall's tau) over their
  union, an item missing from one list ranking just below its last place.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from holocron.vectors import top_k as _top_k

FloatMatrix = npt.NDArray[np.floating[Any]]


def paired_cosines(old: npt.ArrayLike, new: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Cosine between row i of ``old`` and row i of ``new``; a zero vector has cosine 0 with anything."""
    a = np.asarray(old, dtype=np.float64)
    b = np.asarray(new, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} and {b.shape}")
    if a.ndim != 2:
        raise ValueError("expected two matrices of row vectors")
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    dots = np.einsum("ij,ij->i", a, b)
    out = np.zeros(len(a), dtype=np.float64)
    nonzero = norms > 0
    out[nonzero] = dots[nonzero] / norms[nonzero]
    clipped: npt.NDArray[np.float64] = np.clip(out, -1.0, 1.0)
    return clipped


@dataclass(frozen=True)
class CosineSummary:
    n: int
    mean: float | None
    minimum: float | None
    p01: float | None
    """The 1st percentile: a few outliers show here before they move the mean."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def summarize_cosines(cosines: npt.ArrayLike) -> CosineSummary:
    values = np.asarray(cosines, dtype=np.float64)
    if values.size == 0:
        return CosineSummary(0, None, None, None)
    return CosineSummary(
        n=int(values.size),
        mean=float(values.mean()),
        minimum=float(values.min()),
        p01=float(np.percentile(values, 1)),
    )


def top_k(queries: npt.ArrayLike, documents: npt.ArrayLike, k: int) -> list[list[int]]:
    """Row indices of the ``k`` documents with the highest inner product for each query, best first.

    Ties break by the lower index, so equal inputs always give equal rankings.
    """
    q = np.asarray(queries, dtype=np.float64)
    d = np.asarray(documents, dtype=np.float64)
    if d.shape[0] == 0 or k <= 0:
        return [[] for _ in range(q.shape[0])]
    return [[int(i) for i in _top_k(row, k)] for row in q @ d.T]


def jaccard(a: Sequence[Any], b: Sequence[Any]) -> float:
    """|A ∩ B| / |A ∪ B|; two empty lists are identical (1.0)."""
    set_a, set_b = set(a), set(b)
    union = set_a | set_b
    return len(set_a & set_b) / len(union) if union else 1.0


def _union_ranks(a: Sequence[Any], b: Sequence[Any]) -> tuple[list[float], list[float]]:
    """Ranks of every item of A ∪ B in each list; an item absent from a list ranks len(list) + 1."""
    union = list(dict.fromkeys([*a, *b]))
    rank_a = {item: i + 1 for i, item in enumerate(a)}
    rank_b = {item: i + 1 for i, item in enumerate(b)}
    return (
        [float(rank_a.get(item, len(a) + 1)) for item in union],
        [float(rank_b.get(item, len(b) + 1)) for item in union],
    )


def _correlation(a: Sequence[Any], b: Sequence[Any], method: str) -> float:
    if list(a) == list(b):
        return 1.0
    from scipy import stats as scipy_stats  # type: ignore[import-untyped]  # lazy: 0.5 s to import

    x, y = _union_ranks(a, b)
    if len(x) < 2 or len(set(x)) < 2 or len(set(y)) < 2:
        return 0.0
    if method == "spearman":
        value = float(scipy_stats.spearmanr(x, y).statistic)
    else:
        value = float(scipy_stats.kendalltau(x, y).statistic)
    return 0.0 if math.isnan(value) else value


def spearman(a: Sequence[Any], b: Sequence[Any]) -> float:
    """Spearman's rho between two rankings over their union (1: same order, -1: reversed)."""
    return _correlation(a, b, "spearman")


def kendall(a: Sequence[Any], b: Sequence[Any]) -> float:
    """Kendall's tau-b between two rankings over their union."""
    return _correlation(a, b, "kendall")


@dataclass(frozen=True)
class RankingComparison:
    query: str
    jaccard: float
    spearman: float
    kendall: float
    old: list[str]
    new: list[str]


def compare_rankings(query: str, old: Sequence[str], new: Sequence[str]) -> RankingComparison:
    return RankingComparison(query, jaccard(old, new), spearman(old, new), kendall(old, new), list(old), list(new))


@dataclass(frozen=True)
class RankingSummary:
    n: int
    mean_jaccard: float | None
    min_jaccard: float | None
    mean_spearman: float | None
    mean_kendall: float | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def summarize_rankings(comparisons: Sequence[RankingComparison]) -> RankingSummary:
    if not comparisons:
        return RankingSummary(0, None, None, None, None)
    jaccards = [c.jaccard for c in comparisons]
    return RankingSummary(
        n=len(comparisons),
        mean_jaccard=float(np.mean(jaccards)),
        min_jaccard=float(np.min(jaccards)),
        mean_spearman=float(np.mean([c.spearman for c in comparisons])),
        mean_kendall=float(np.mean([c.kendall for c in comparisons])),
    )


@dataclass(frozen=True)
class Thresholds:
    min_cosine: float | None = None
    min_mean_cosine: float | None = None
    min_mean_jaccard: float | None = None


def verdict(cosines: CosineSummary, rankings: RankingSummary, thresholds: Thresholds) -> list[str]:
    """The thresholds that were missed, in words; an empty list is a pass. A metric with no data is skipped."""
    checks = [
        ("minimum cosine", cosines.minimum, thresholds.min_cosine, 6),
        ("mean cosine", cosines.mean, thresholds.min_mean_cosine, 6),
        ("mean top-k Jaccard", rankings.mean_jaccard, thresholds.min_mean_jaccard, 4),
    ]
    failures = []
    for name, value, minimum, digits in checks:
        if value is not None and minimum is not None and value < minimum:
            failures.append(f"{name} {value:.{digits}f} < {minimum}")
    return failures
