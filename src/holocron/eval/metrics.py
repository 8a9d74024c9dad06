"""Ranking metrics as pure functions, with BEIR's (trec_eval's) definitions.

``ranked`` is a list of document ids, best first (duplicates after the first are ignored); ``judged`` maps a
document id to its graded relevance; only grades > 0 count as relevant. nDCG uses the grade as the gain and
log2(rank + 1) as the discount; the ideal ranking sorts all judged grades.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from holocron.vocabulary import AGGREGATIONS


def _dedupe(ranked: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(ranked))


def ndcg_at_k(ranked: Sequence[str], judged: Mapping[str, int], k: int = 10) -> float:
    top = _dedupe(ranked)[:k]
    dcg = sum(max(judged.get(doc, 0), 0) / math.log2(i + 2) for i, doc in enumerate(top))
    ideal_gains = sorted((g for g in judged.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal_gains))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at_k(ranked: Sequence[str], judged: Mapping[str, int], k: int) -> float:
    relevant = {doc for doc, grade in judged.items() if grade > 0}
    if not relevant:
        return 0.0
    return len(relevant.intersection(_dedupe(ranked)[:k])) / len(relevant)


def mrr_at_k(ranked: Sequence[str], judged: Mapping[str, int], k: int = 10) -> float:
    for i, doc in enumerate(_dedupe(ranked)[:k]):
        if judged.get(doc, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10")


def query_metrics(ranked: Sequence[str], judged: Mapping[str, int]) -> dict[str, float]:
    return {
        "ndcg@10": ndcg_at_k(ranked, judged, 10),
        "recall@10": recall_at_k(ranked, judged, 10),
        "recall@100": recall_at_k(ranked, judged, 100),
        "mrr@10": mrr_at_k(ranked, judged, 10),
    }


def mean_metrics(per_query: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Macro average over queries (each query weighs the same), as BEIR reports."""
    if not per_query:
        return dict.fromkeys(METRICS, 0.0)
    return {name: sum(q[name] for q in per_query) / len(per_query) for name in METRICS}


def documents_from_chunks(ranked_sources: Sequence[str], limit: int = 100) -> list[str]:
    """Chunk-level ranking (each chunk named by its document) to a document ranking: a document takes the
    rank of its best chunk, which is the max-over-chunks aggregation for any score that the ranking sorts."""
    return _dedupe(ranked_sources)[:limit]


def aggregate_documents(scored: Sequence[tuple[str, float]], how: str, limit: int = 100) -> list[str]:
    """Documents from chunk hits ``(document, score)`` best first: ``max`` ranks a document where its best
    chunk ranks; ``sum2`` by the sum of its two best chunks' scores (a document that answers in two places
    climbs). Ties keep the order of the best chunk."""
    if how == "max":
        return documents_from_chunks([doc for doc, _ in scored], limit)
    if how != "sum2":
        raise ValueError(f"aggregation is one of {', '.join(AGGREGATIONS)}, not {how!r}")
    best: dict[str, list[float]] = {}
    first: dict[str, int] = {}
    for position, (doc, score) in enumerate(scored):
        first.setdefault(doc, position)
        taken = best.setdefault(doc, [])
        if len(taken) < 2:
            taken.append(score)
    return sorted(best, key=lambda doc: (-sum(best[doc]), first[doc]))[:limit]
