"""Search a space for a question and log what was found."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from holocron.embedding.base import EmbeddingProvider, Purpose
from holocron.embedding.validation import validate_vectors
from holocron.retrieval.exact import ExactIndex
from holocron.store.chunks import get_chunks
from holocron.store.database import Database
from holocron.store.retrievals import LoggedHit, log_retrieval
from holocron.store.spaces import EmbeddingSpace, SpaceMismatchError
from holocron.vectors import l2_normalize


@dataclass(frozen=True)
class Hit:
    rank: int
    score: float
    chunk_id: str
    source_id: str
    source_type: str
    source_system: str
    title: str | None
    text: str
    start_offset: int
    end_offset: int
    content_sha256: str
    source_ref: dict[str, Any]

    def snippet(self, width: int = 200) -> str:
        flat = " ".join(self.text.split())
        return flat if len(flat) <= width else flat[: width - 1].rsplit(" ", 1)[0] + "…"


@dataclass(frozen=True)
class SearchResult:
    retrieval_id: str
    query: str
    space: EmbeddingSpace
    hits: list[Hit]
    latency_ms: float


class Searcher:
    """Holds the per-space index between queries; one per process and space."""

    def __init__(self, db: Database, space: EmbeddingSpace, provider: EmbeddingProvider) -> None:
        identity = provider.identity()
        if not space.matches(identity):
            raise SpaceMismatchError(
                f"the query model {identity.model_name}:{identity.model_tag} is not the model of space {space.name}"
            )
        self.db = db
        self.space = space
        self.provider = provider
        self.index = ExactIndex(db, space.embedding_space_id)

    def search(self, query: str, k: int = 10, *, run_id: str | None = None, log: bool = True) -> SearchResult:
        started = time.perf_counter()
        raw = self.provider.embed([query], Purpose.QUERY)
        vector = l2_normalize(validate_vectors(raw, expected=1, dimensions=self.space.dimensions))[0]
        ranked = self.index.search(vector, k)
        with self.db.read() as tx:
            rows = get_chunks(tx, [chunk_id for chunk_id, _ in ranked])
        hits = [
            _hit(rank, score, rows[chunk_id])
            for rank, (chunk_id, score) in enumerate(ranked, start=1)
            if chunk_id in rows
        ]
        latency_ms = (time.perf_counter() - started) * 1000
        retrieval_id = ""
        if log:
            retrieval_id = log_retrieval(
                self.db,
                embedding_space_id=self.space.embedding_space_id,
                query_text=query,
                query_vector=vector,
                top_k=k,
                mode="vector",
                filters={},
                policy={"index": "exact", "metric": self.space.distance_metric},
                latency_ms=latency_ms,
                hits=[
                    LoggedHit(h.rank, h.chunk_id, h.score, {"source_id": h.source_id, "title": h.title})
                    for h in hits
                ],
                run_id=run_id,
            )
        return SearchResult(retrieval_id, query, self.space, hits, latency_ms)


def _hit(rank: int, score: float, row: dict[str, Any]) -> Hit:
    return Hit(
        rank=rank,
        score=score,
        chunk_id=row["chunk_id"],
        source_id=row["source_id"],
        source_type=row["source_type"],
        source_system=row["source_system"],
        title=row["title"],
        text=row["content"],
        start_offset=row["start_offset"],
        end_offset=row["end_offset"],
        content_sha256=row["content_sha256"],
        source_ref=dict(row["source_ref_json"] or {}),
    )
