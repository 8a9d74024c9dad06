"""``holocron eval``: index a BEIR corpus into its own store, run the judged queries in every mode, score.

A document's score is the max over its chunks (``aggregate="max"``): each search asks for 100 documents with
at most one chunk per source, so a document ranks where its best chunk ranks (for hybrid, its best fused
chunk). ``aggregate="sum2"`` asks for two chunks per source and ranks documents by the sum of their two best
chunks' scores.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from holocron.config import Settings
from holocron.embedding.base import EmbeddingProvider
from holocron.eval.beir import corpus_records, doc_id_of_source, read_corpus, read_qrels, read_queries
from holocron.eval.metrics import aggregate_documents, mean_metrics, query_metrics
from holocron.retrieval.config import MODES, RetrievalConfig
from holocron.store.sources import RawRecord
from holocron.vocabulary import AGGREGATIONS

Progress = Callable[[int], None]
DOCS_PER_QUERY = 100
REGISTER_BATCH = 500


@dataclass(frozen=True)
class EvalRow:
    mode: str
    metrics: dict[str, float]
    queries: int
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            **{k: round(v, 4) for k, v in self.metrics.items()},
            "queries": self.queries,
            "seconds": round(self.seconds, 2),
        }


@dataclass
class EvalReport:
    rows: list[EvalRow] = field(default_factory=list)
    documents: int = 0
    chunks: int = 0
    space: str = ""
    policy: str = ""
    index_seconds: float = 0.0
    home: str = ""
    settings: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "documents": self.documents,
            "chunks": self.chunks,
            "space": self.space,
            "chunk_policy": self.policy,
            "index_seconds": round(self.index_seconds, 1),
            "home": self.home,
            "settings": self.settings,
            "results": [row.to_json() for row in self.rows],
        }


@dataclass
class EvalProgress:
    """Hooks the CLI turns into progress bars; all optional."""

    on_register: Progress | None = None
    on_chunk: Progress | None = None
    on_embed_total: Callable[[int], None] | None = None
    on_embed: Progress | None = None
    on_query_total: Callable[[int], None] | None = None
    on_query: Progress | None = None


def judged_queries(queries: dict[str, str], qrels: dict[str, dict[str, int]]) -> list[tuple[str, str]]:
    """Queries that have at least one relevant judgement, in query-id order."""
    return sorted(
        (
            (qid, queries[qid])
            for qid, judged in qrels.items()
            if qid in queries and any(g > 0 for g in judged.values())
        ),
        key=lambda item: (len(item[0]), item[0]),
    )


def run_eval(
    corpus: Path,
    queries_path: Path,
    qrels_path: Path,
    settings: Settings,
    *,
    provider: EmbeddingProvider | None = None,
    modes: Sequence[str] = MODES,
    progress: EvalProgress | None = None,
    tag: str = "beir",
    aggregate: str = "max",
) -> EvalReport:
    """Index ``corpus`` into the store of ``settings`` (incremental: a rerun embeds nothing) and score."""
    from holocron.service import Holocron

    if aggregate not in AGGREGATIONS:
        raise ValueError(f"aggregation is one of {', '.join(AGGREGATIONS)}, not {aggregate!r}")
    hooks = progress or EvalProgress()
    queries = read_queries(queries_path)
    qrels = read_qrels(qrels_path)
    judged = judged_queries(queries, qrels)
    if not judged:
        raise ValueError(f"no query in {queries_path} has a positive judgement in {qrels_path}")
    report = EvalReport(home=str(settings.home))
    with Holocron(settings, provider=provider) as holo:
        started = time.perf_counter()
        batch: list[RawRecord] = []
        for record in corpus_records(read_corpus(corpus), tag=tag):
            batch.append(record)
            report.documents += 1
            if len(batch) >= REGISTER_BATCH:
                holo.register_records(batch)
                if hooks.on_register:
                    hooks.on_register(len(batch))
                batch = []
        if batch:
            holo.register_records(batch)
            if hooks.on_register:
                hooks.on_register(len(batch))
        indexed = holo.index(
            on_chunk_progress=hooks.on_chunk,
            on_embed_progress=hooks.on_embed,
            on_embed_total=hooks.on_embed_total,
        )
        report.index_seconds = time.perf_counter() - started
        report.space = holo.space.name
        report.policy = indexed.policy.version
        report.chunks = holo.sync_index().size
        cfg = RetrievalConfig.from_settings(holo.settings)
        report.settings = {
            "fusion": cfg.fusion,
            "aggregate": aggregate,
            "rrf_k": cfg.rrf_k,
            "weights": {"vector": cfg.vector_weight, "keyword": cfg.keyword_weight},
            "candidates": cfg.candidates,
            "index": holo.index_status().get("kind"),
        }
        if hooks.on_query_total:
            hooks.on_query_total(len(judged) * len(modes))
        per_source = 1 if aggregate == "max" else 2
        for mode in modes:
            clock = time.perf_counter()
            per_query = []
            for qid, text in judged:
                result = holo.search(text, DOCS_PER_QUERY * per_source, mode=mode, max_per_source=per_source, log=False)
                scored = [(doc_id_of_source(hit.source_id), hit.score) for hit in result.hits]
                ranked = aggregate_documents(scored, aggregate, DOCS_PER_QUERY)
                per_query.append(query_metrics(ranked, qrels[qid]))
                if hooks.on_query:
                    hooks.on_query(1)
            report.rows.append(EvalRow(mode, mean_metrics(per_query), len(judged), time.perf_counter() - clock))
    return report
