"""Request and response bodies: pydantic validates every input and documents every output in OpenAPI."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from holocron.retrieval.filters import SearchFilters

if TYPE_CHECKING:
    from holocron.retrieval.search import Hit, SearchResult

T = TypeVar("T")
MAX_LIMIT = 500
DEFAULT_LIMIT = 50

SearchMode = Literal["vector", "keyword", "hybrid"]

# --- one vocabulary: the API's responses and the CLI's --json output are built from the same models ----------
# Field names are the same everywhere for the same thing: ``start_offset``/``end_offset``, ``source_ref`` and
# ``tags`` as JSON values (never the ``*_json`` column names), ``options``/``metrics`` of a run, ``total``.


def page_url(hit: Hit) -> str | None:
    """The page's own web address, when its source reference has one."""
    for key in ("url", "uri", "request_uri"):
        value = hit.source_ref.get(key)
        if isinstance(value, str) and value.startswith(("http://", "https://")):
            return value
    return None


class Page(BaseModel, Generic[T]):
    """One page of a list: ``next_offset`` is null on the last page."""

    items: list[T]
    total: int
    limit: int
    offset: int
    next_offset: int | None

    @classmethod
    def of(cls, items: list[T], total: int, limit: int, offset: int) -> Page[T]:
        return cls(
            items=items,
            total=total,
            limit=limit,
            offset=offset,
            next_offset=offset + limit if offset + limit < total else None,
        )


class Filters(BaseModel):
    """Which chunks a search may return; every given filter must hold (the CLI's ``--type``, ``--tag`` ...)."""

    model_config = ConfigDict(extra="forbid")

    source_types: list[str] = Field(default_factory=list, max_length=100)
    source_systems: list[str] = Field(default_factory=list, max_length=100)
    tags: list[str] = Field(default_factory=list, max_length=100)
    source_ids: list[str] = Field(default_factory=list, max_length=1000)
    since: datetime | None = None
    until: datetime | None = None

    def to_filters(self) -> SearchFilters:
        return SearchFilters.of(
            source_types=self.source_types,
            source_systems=self.source_systems,
            tags=self.tags,
            source_ids=self.source_ids,
            since=self.since,
            until=self.until,
        )


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=10_000, description="What to look for.")
    k: int = Field(default=10, ge=1, le=1000, description="How many hits.")
    mode: SearchMode | None = Field(default=None, description="Default: the configured search mode.")
    filters: Filters = Field(default_factory=Filters)
    max_per_source: int | None = Field(default=None, ge=1, le=1000)
    run_id: str | None = Field(default=None, max_length=36)
    log: bool = Field(default=True, description="Record the query and its hits in the query log.")


class HitOut(BaseModel):
    """One search hit; the CLI's ``search --json`` prints the same fields."""

    rank: int
    score: float
    evidence_id: str = Field(description="Stable id of this passage (chunk and text hash), as evidence cites it.")
    chunk_id: str
    source_id: str
    source_type: str
    source_system: str
    title: str | None
    text: str
    start_offset: int = Field(description="Character offset of the chunk in the source's extracted text.")
    end_offset: int
    source_ref: dict[str, Any]
    source_url: str | None = Field(
        description="The page's own web address when it has one; else, from the API, its /api/sources link."
    )
    vector_rank: int | None = None
    vector_score: float | None = None
    keyword_rank: int | None = None
    keyword_score: float | None = None

    @classmethod
    def from_hit(cls, hit: Hit, source_url: str | None) -> HitOut:
        return cls(
            rank=hit.rank,
            score=hit.score,
            evidence_id=hit.evidence_id,
            chunk_id=hit.chunk_id,
            source_id=hit.source_id,
            source_type=hit.source_type,
            source_system=hit.source_system,
            title=hit.title,
            text=hit.text,
            start_offset=hit.start_offset,
            end_offset=hit.end_offset,
            source_ref=hit.source_ref,
            source_url=source_url,
            vector_rank=hit.vector_rank,
            vector_score=hit.vector_score,
            keyword_rank=hit.keyword_rank,
            keyword_score=hit.keyword_score,
        )


class SearchResponse(BaseModel):
    """A search's hits; the CLI's ``search --json`` prints the same document."""

    retrieval_id: str
    query: str
    space: str
    mode: str
    filters: dict[str, Any] = Field(description="The filters that were given (none: {}).")
    latency_ms: float
    hits: list[HitOut]

    @classmethod
    def from_result(cls, result: SearchResult, source_url: Callable[[Hit], str | None] = page_url) -> SearchResponse:
        return cls(
            retrieval_id=result.retrieval_id,
            query=result.query,
            space=result.space.name,
            mode=result.mode,
            filters=result.filters.to_json(),
            latency_ms=round(result.latency_ms, 3),
            hits=[HitOut.from_hit(h, source_url(h)) for h in result.hits],
        )


class EvidenceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=10_000)
    k: int | None = Field(default=None, ge=1, le=1000, description="Hits searched; default max_items.")
    mode: SearchMode | None = None
    filters: Filters = Field(default_factory=Filters)
    max_per_source: int | None = Field(default=None, ge=1, le=1000)
    run_id: str | None = Field(default=None, max_length=36)
    max_items: int | None = Field(default=None, ge=1, le=1000)
    max_total_bytes: int | None = Field(default=None, ge=1, le=10_000_000)
    max_item_bytes: int | None = Field(default=None, ge=1, le=10_000_000)
    save: bool = True


class EnqueueRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    job_type: str = Field(min_length=1, max_length=30, description="CHUNK_SOURCE, EMBED_CHUNKS, REEMBED_SPACE ...")
    input: dict[str, Any] = Field(description="The job type's payload.")
    priority: int | None = Field(default=None, ge=-1000, le=1000)
    dedupe_key: str | None = Field(default=None, max_length=500)
    max_attempts: int | None = Field(default=None, ge=1, le=100)


class EnqueueResponse(BaseModel):
    job: dict[str, Any]
    created: bool


class JobIds(BaseModel):
    job_ids: list[int]


class SpaceOut(BaseModel):
    embedding_space_id: int
    name: str
    provider: str
    model_name: str
    dimensions: int
    embeddings: int
    chunks_embedded: int
    chunks_total: int
    coverage: float | None


class RunOut(BaseModel):
    """One run; the CLI's ``runs list --json`` and ``runs show --json`` print the same fields."""

    run_id: str
    run_type: str
    status: str
    job_id: int | None
    worker_id: str | None
    embedding_space_id: int | None
    endpoint_url: str | None = None
    model_name: str | None
    model_tag: str | None = None
    model_digest: str | None = None
    options: dict[str, Any]
    metrics: dict[str, Any]
    error: str | None
    started_utc: datetime
    completed_utc: datetime | None
    artifacts: list[dict[str, Any]] | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any], artifacts: list[dict[str, Any]] | None = None) -> RunOut:
        return cls(
            run_id=row["run_id"],
            run_type=row["run_type"],
            status=row["status"],
            job_id=row["job_id"],
            worker_id=row["worker_id"],
            embedding_space_id=row["embedding_space_id"],
            endpoint_url=row.get("endpoint_url"),
            model_name=row["model_name"],
            model_tag=row.get("model_tag"),
            model_digest=row.get("model_digest"),
            options=row["options_json"] or {},
            metrics=row["metrics_json"] or {},
            error=row["error"],
            started_utc=row["started_utc"],
            completed_utc=row["completed_utc"],
            artifacts=artifacts,
        )


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    ready: bool
    database: str
    detail: str | None = None
