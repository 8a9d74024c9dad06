"""Rank fusion and diversity: pure functions over ranked lists of chunk ids."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")

RRF_K = 60  # the constant of Cormack et al. (2009); it damps the weight of the very top ranks


@dataclass(frozen=True)
class Fused:
    key: str
    score: float
    ranks: dict[str, int]  # list name -> 1-based rank in that list


def reciprocal_rank_fusion(
    rankings: Mapping[str, Sequence[str]], weights: Mapping[str, float] | None = None, k: int = RRF_K
) -> list[Fused]:
    """score(d) = sum over lists of weight / (k + rank of d in the list); absent from a list adds nothing.

    Ties are broken by the best single rank, then by the key, so the order is deterministic.
    """
    if k < 0:
        raise ValueError("the RRF constant must be >= 0")
    scores: dict[str, float] = {}
    ranks: dict[str, dict[str, int]] = {}
    for name, ranked in rankings.items():
        weight = 1.0 if weights is None else float(weights.get(name, 1.0))
        seen: set[str] = set()
        for rank, key in enumerate(ranked, start=1):
            if key in seen:
                continue
            seen.add(key)
            scores[key] = scores.get(key, 0.0) + weight / (k + rank)
            ranks.setdefault(key, {})[name] = rank
    fused = [Fused(key, scores[key], ranks[key]) for key in scores]
    fused.sort(key=lambda f: (-f.score, min(f.ranks.values()), f.key))
    return fused


def convex_fusion(
    scored: Mapping[str, Sequence[tuple[str, float]]], weights: Mapping[str, float] | None = None
) -> list[Fused]:
    """score(d) = sum over lists of w * (s - min) / (max - min), the weights scaled to sum to 1.

    A convex combination of each list's scores scaled to [0, 1] over its own candidates (Bruch et al. 2023,
    "An Analysis of Fusion Functions for Hybrid Retrieval"): unlike RRF it keeps how far apart the scores are,
    so a chunk far ahead in one list is not levelled with its runner-up. Absent from a list adds nothing (the
    list's minimum). A list whose scores are all equal scales them to 1. Ties break as in RRF.
    """
    raw = {name: 1.0 if weights is None else float(weights.get(name, 1.0)) for name in scored}
    if any(w < 0 for w in raw.values()) or not sum(raw.values()):
        raise ValueError("fusion weights are >= 0 and not all 0")
    total = sum(raw.values())
    scores: dict[str, float] = {}
    ranks: dict[str, dict[str, int]] = {}
    for name, ranked in scored.items():
        values = [score for _, score in ranked]
        if not values:
            continue
        low, high = min(values), max(values)
        seen: set[str] = set()
        for rank, (key, score) in enumerate(ranked, start=1):
            if key in seen:
                continue
            seen.add(key)
            scaled = (score - low) / (high - low) if high > low else 1.0
            scores[key] = scores.get(key, 0.0) + raw[name] / total * scaled
            ranks.setdefault(key, {})[name] = rank
    fused = [Fused(key, scores[key], ranks[key]) for key in scores]
    fused.sort(key=lambda f: (-f.score, min(f.ranks.values()), f.key))
    return fused


def cap_per_group(items: Sequence[T], group_of: Callable[[T], K], cap: int | None) -> list[T]:
    """Keep the order, dropping items once their group (a source) already has ``cap`` of them."""
    if cap is None:
        return list(items)
    if cap < 1:
        raise ValueError("the cap per source must be at least 1")
    counts: dict[K, int] = {}
    kept: list[T] = []
    for item in items:
        group = group_of(item)
        if counts.get(group, 0) < cap:
            counts[group] = counts.get(group, 0) + 1
            kept.append(item)
    return kept
