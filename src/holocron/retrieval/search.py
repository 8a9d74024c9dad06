"""Search a space for a question (vector, keyword or hybrid), apply filters and diversity, log it all."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import select

from holocron.embedding.base import EmbeddingProvider, Purpose
from holocron.embedding.validation import validate_vectors
from holocron.hashing import evidence_id_for
from holocron.retrieval.config import MODES, RetrievalConfig
from holocron.retrieval.filters import SearchFilters
from holocron.retrieval.fusion import cap_per_group, convex_fusion, reciprocal_rank_fusion
from holocron.retrieval.keyword import keyword_search
from holocron.retrieval.pgvector import PgVectorIndex
from holocron.retrieval.snippets import Snippet, snippet
from holocron.retrieval.space_index import SpaceIndex
from holocron.store.chunks import get_chunks
from holocron.store.database import Database
from holocron.store.retrievals import LoggedHit, log_retrieval
from holocron.store.spaces import EmbeddingSpace, SpaceMismatchError

# The most candidates one list may contribute while a per-source cap looks for k distinct sources.
MAX_POOL = 10_000


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
    vector_rank: int | None = None
    vector_score: float | None = None
    keyword_rank: int | None = None
    keyword_score: float | None = None

    @classmethod
    def of_chunk(cls, rank: int, score: float, row: Mapping[str, Any], **ranks: Any) -> Hit:
        """A hit of a ``vector.chunk`` row joined with its source's title, type and system."""
        return cls(
            rank=rank,
            score=score,
            chunk_id=row["chunk_id"],
            source_id=row["source_id"],
            source_type=row["source_type"],
            source_system=row["source_system"],
            title=row["title"],
            text=row["content"],
            start_offset=int(row["start_offset"]),
            end_offset=int(row["end_offset"]),
            content_sha256=row["content_sha256"],
            source_ref=dict(row["source_ref_json"] or {}),
            **ranks,
        )

    @property
    def heading_path(self) -> list[str]:
        """The sections the chunk lies in, outermost first (empty for a chunk before any heading)."""
        section = self.source_ref.get("section")
        return [str(part) for part in section] if isinstance(section, list) else []

    @property
    def evidence_id(self) -> str:
        return evidence_id_for(self.chunk_id, self.content_sha256)

    def snippet(self, query: str, width: int = 200) -> Snippet:
        """The chunk's sentences that match ``query``, its words marked (:mod:`holocron.retrieval.snippets`)."""
        return snippet(self.text, query, width)


@dataclass(frozen=True)
class SearchResult:
    retrieval_id: str
    query: str
    space: EmbeddingSpace
    hits: list[Hit]
    latency_ms: float
    mode: str = "vector"
    filters: SearchFilters = field(default_factory=SearchFilters)
    policy: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Candidate:
    chunk_id: str
    score: float
    vector_rank: int | None = None
    vector_score: float | None = None
    keyword_rank: int | None = None
    keyword_score: float | None = None


SpaceVectors = SpaceIndex | PgVectorIndex


def open_space_index(db: Database, space: EmbeddingSpace, config: RetrievalConfig) -> SpaceVectors:
    """pgvector on PostgreSQL; on SQLite the exact or HNSW index kept beside the database file."""
    if db.dialect == "postgresql":
        return PgVectorIndex(db, space)
    if not space.ranks_by_inner_product:
        raise SpaceMismatchError(
            f"space {space.name} compares by {space.distance_metric} on vectors that are not unit length; the "
            "embedded index ranks by inner product, which would order them differently (use PostgreSQL)"
        )
    return SpaceIndex(db, space.embedding_space_id, space.dimensions, config=config.index)


class Searcher:
    """Holds the per-space index between queries; one per process and space."""

    def __init__(
        self,
        db: Database,
        space: EmbeddingSpace,
        provider: EmbeddingProvider,
        config: RetrievalConfig | None = None,
    ) -> None:
        identity = provider.identity()
        if not space.matches(identity):
            raise SpaceMismatchError(
                f"the query model {identity.model_name}:{identity.model_tag} is not the model of space {space.name}"
            )
        self.db = db
        self.space = space
        self.provider = provider
        self.config = config or RetrievalConfig()
        self.index: SpaceVectors = open_space_index(db, space, self.config)
        self._workers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="holocron-keyword")

    def search(
        self,
        query: str,
        k: int = 10,
        *,
        run_id: str | None = None,
        log: bool = True,
        mode: str | None = None,
        filters: SearchFilters | None = None,
        max_per_source: int | None = None,
    ) -> SearchResult:
        """The k best chunks for ``query`` that pass ``filters``, at most ``max_per_source`` per source."""
        started = time.perf_counter()
        mode = mode or self.config.mode
        if mode not in MODES:
            raise ValueError(f"mode is one of {', '.join(MODES)}, not {mode!r}")
        if max_per_source is not None and max_per_source < 1:
            raise ValueError("max_per_source must be at least 1")
        filters = filters or SearchFilters()
        timing: dict[str, float] = {}
        pool = max(k, self.config.candidates) if mode == "hybrid" else k
        if max_per_source is not None:
            pool = max(pool, k * 4)
        # The keyword list needs no query vector: it runs on a worker thread while the query is embedded
        # and the vector index searched (SQLite, the model and numpy all release the GIL).
        keyword_first: Future[list[tuple[str, float]]] | None = None
        if mode != "vector":
            keyword_first = self._workers.submit(self._keyword, query, pool, filters, timing)
        vector: np.ndarray | None = None
        if mode != "keyword":
            clock = time.perf_counter()
            raw = self.provider.embed([query], Purpose.QUERY)
            vector = self.space.prepare(validate_vectors(raw, expected=1, dimensions=self.space.dimensions))[0]
            timing["embed"] = _ms(clock)
        allowed: set[int] | None = None
        if vector is not None and not filters.empty and not isinstance(self.index, PgVectorIndex):
            clock = time.perf_counter()
            allowed = self._allowed(filters)
            timing["filter"] = _ms(clock)
        while True:
            candidates, exhausted = self._rank(query, vector, mode, pool, filters, allowed, timing, keyword_first)
            keyword_first = None
            if max_per_source is None:
                kept = candidates
            else:
                sources = self._sources([c.chunk_id for c in candidates])
                kept = cap_per_group(
                    [c for c in candidates if c.chunk_id in sources], _source_of(sources), max_per_source
                )
            if len(kept) >= k or exhausted or pool >= MAX_POOL:
                break
            pool = min(pool * 4, MAX_POOL)
        clock = time.perf_counter()
        with self.db.read() as tx:
            rows = get_chunks(tx, [c.chunk_id for c in kept[:k]])
        # Only a chunk deleted since it was ranked can be missing here.
        hits = [
            _hit(rank, c, rows[c.chunk_id]) for rank, c in enumerate((c for c in kept[:k] if c.chunk_id in rows), 1)
        ]
        timing["rows"] = _ms(clock)
        latency_ms = _ms(started)
        policy = {
            **self.config.policy_json(mode),
            "index": getattr(self.index, "kind", "exact") if vector is not None else None,
            "metric": self.space.distance_metric,
            "max_per_source": max_per_source,
            "pool": pool,
            "allowed": len(allowed) if allowed is not None else None,
            "timing_ms": {name: round(value, 3) for name, value in timing.items()},
        }
        retrieval_id = ""
        if log:  # after ranking, in a short write transaction of its own: searching never holds the write lock
            retrieval_id = log_retrieval(
                self.db,
                embedding_space_id=self.space.embedding_space_id,
                query_text=query,
                query_vector=vector,
                top_k=k,
                mode=mode,
                filters=filters.to_json(),
                policy=policy,
                latency_ms=latency_ms,
                hits=[LoggedHit(h.rank, h.chunk_id, h.score, _hit_metadata(h)) for h in hits],
                run_id=run_id,
            )
        return SearchResult(retrieval_id, query, self.space, hits, latency_ms, mode, filters, policy)

    # -- ranking -----------------------------------------------------------------------------------

    def _rank(
        self,
        query: str,
        vector: np.ndarray | None,
        mode: str,
        pool: int,
        filters: SearchFilters,
        allowed: set[int] | None,
        timing: dict[str, float],
        keyword_ready: Future[list[tuple[str, float]]] | None = None,
    ) -> tuple[list[_Candidate], bool]:
        """Candidates best first, and whether the lists ran dry (asking for more would find nothing new)."""
        by_vector: list[tuple[str, float]] = []
        by_keyword: list[tuple[str, float]] = []
        exhausted = True
        if vector is not None:
            clock = time.perf_counter()
            if isinstance(self.index, PgVectorIndex):  # filters go into pgvector's own statement
                ranked = self.index.search(vector, pool, filters=filters)
            else:
                ranked = self.index.search(vector, pool, allowed)
            by_vector = self._chunk_ids(ranked)
            timing["vector"] = timing.get("vector", 0.0) + _ms(clock)
            exhausted = exhausted and len(ranked) < pool
        if mode != "vector":
            if keyword_ready is not None:
                by_keyword = keyword_ready.result()
            else:
                by_keyword = self._keyword(query, pool, filters, timing)
            exhausted = exhausted and len(by_keyword) < pool
        if mode == "vector":
            return [
                _Candidate(chunk_id, score, vector_rank=rank, vector_score=score)
                for rank, (chunk_id, score) in enumerate(by_vector, start=1)
            ], exhausted
        if mode == "keyword":
            return [
                _Candidate(chunk_id, score, keyword_rank=rank, keyword_score=score)
                for rank, (chunk_id, score) in enumerate(by_keyword, start=1)
            ], exhausted
        clock = time.perf_counter()
        vector_scores, keyword_scores = dict(by_vector), dict(by_keyword)
        weights = {"vector": self.config.vector_weight, "keyword": self.config.keyword_weight}
        if self.config.fusion == "convex":
            fused = convex_fusion({"vector": by_vector, "keyword": by_keyword}, weights)
        else:
            fused = reciprocal_rank_fusion(
                {"vector": [c for c, _ in by_vector], "keyword": [c for c, _ in by_keyword]},
                weights,
                k=self.config.rrf_k,
            )
        timing["fuse"] = timing.get("fuse", 0.0) + _ms(clock)
        return [
            _Candidate(
                f.key,
                f.score,
                vector_rank=f.ranks.get("vector"),
                vector_score=vector_scores.get(f.key),
                keyword_rank=f.ranks.get("keyword"),
                keyword_score=keyword_scores.get(f.key),
            )
            for f in fused
        ], exhausted

    def _keyword(
        self, query: str, pool: int, filters: SearchFilters, timing: dict[str, float]
    ) -> list[tuple[str, float]]:
        clock = time.perf_counter()
        with self.db.read() as tx:
            ranked = keyword_search(tx, query, pool, filters, common_cutoff=self.config.keyword_common_cutoff)
        timing["keyword"] = timing.get("keyword", 0.0) + _ms(clock)
        return ranked

    def _sources(self, chunk_ids: Sequence[str]) -> dict[str, str]:
        """chunk id -> source id, for the per-source cap (without loading any text)."""
        c = self.db.t.chunk
        with self.db.read() as tx:
            return dict(tx.execute(select(c.c.chunk_id, c.c.source_id).where(c.c.chunk_id.in_(list(chunk_ids)))).all())

    def _chunk_ids(self, ranked: Sequence[tuple[int, float]]) -> list[tuple[str, float]]:
        if not ranked:
            return []
        e = self.db.t.embedding
        with self.db.read() as tx:
            chunk_of = dict(
                tx.execute(
                    select(e.c.embedding_id, e.c.chunk_id).where(
                        e.c.embedding_id.in_([embedding_id for embedding_id, _ in ranked])
                    )
                ).all()
            )
        return [(chunk_of[i], score) for i, score in ranked if i in chunk_of]

    def _allowed(self, filters: SearchFilters) -> set[int]:
        """The embedding ids of this space that pass the filters: the set the vector search ranks within."""
        t = self.db.t
        c, e, reg = t.chunk, t.embedding, t.source_registry
        with self.db.read() as tx:
            rows = tx.execute(
                select(e.c.embedding_id)
                .select_from(e.join(c, c.c.chunk_id == e.c.chunk_id).join(reg, reg.c.source_id == c.c.source_id))
                .where(
                    e.c.embedding_space_id == self.space.embedding_space_id,
                    filters.condition(t, tx.dialect),
                )
            ).scalars()
            return {int(value) for value in rows}


def _source_of(sources: dict[str, str]) -> Callable[[_Candidate], str]:
    return lambda candidate: sources[candidate.chunk_id]


def _ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000


def _hit(rank: int, candidate: _Candidate, row: dict[str, Any]) -> Hit:
    return Hit.of_chunk(
        rank,
        candidate.score,
        row,
        vector_rank=candidate.vector_rank,
        vector_score=candidate.vector_score,
        keyword_rank=candidate.keyword_rank,
        keyword_score=candidate.keyword_score,
    )


def _hit_metadata(hit: Hit) -> dict[str, Any]:
    out: dict[str, Any] = {"source_id": hit.source_id, "title": hit.title, "evidence_id": hit.evidence_id}
    for name in ("vector_rank", "vector_score", "keyword_rank", "keyword_score"):
        value = getattr(hit, name)
        if value is not None:
            out[name] = value
    return out
