"""Request and response bodies: pydantic validates every input and documents every output in OpenAPI."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from holocron.retrieval.filters import SearchFilters

T = TypeVar("T")
MAX_LIMIT = 500
DEFAULT_LIMIT = 50

SearchMode = Literal["vector", "keyword", "hybrid"]


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
    source_ref: dict[str, Any]
    source_url: str | None = Field(description="The page's own address when it has one, else the API's source link.")
    vector_score: float | None = None
    keyword_score: float | None = None


class SearchResponse(BaseModel):
    retrieval_id: str
    query: str
    space: str
    mode: str
    latency_ms: float
    hits: list[HitOut]


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
    run_id: str
    run_type: str
    status: str
    job_id: int | None
    worker_id: str | None
    embedding_space_id: int | None
    model_name: str | None
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
            model_name=row["model_name"],
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
