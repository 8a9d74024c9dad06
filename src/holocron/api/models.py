"""Request and response bodies: pydantic validates every input and documents every output in OpenAPI."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Annotated, Any, Generic, Literal, TypeVar
from urllib.parse import unquote, urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from holocron.retrieval.filters import SearchFilters

if TYPE_CHECKING:
    from holocron.retrieval.search import Hit, SearchResult

T = TypeVar("T")
MAX_LIMIT = 500
DEFAULT_LIMIT = 50
SNIPPET_WIDTH = 300
"""Characters of a hit's snippet in an answer (the dashboard shows it whole)."""
MAX_OFFSET = 2**63 - 1
"""The largest ``offset`` and id a request may name: the store's integers are signed 64-bit."""
MAX_ID = 2**63 - 1
MAX_JSON_DEPTH = 32
"""How deeply a job's ``input`` may nest (every payload is a flat object of lists and numbers)."""
MAX_PAYLOAD_INT = 2**31 - 1
"""Integers in a job's ``input`` are space ids, sizes and counts: a 32-bit column holds every one of them."""

SearchMode = Literal["vector", "keyword", "hybrid"]


# --- strings the store can hold -------------------------------------------------------------------------------


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored as text (PostgreSQL refuses NUL, no engine takes lone surrogates)."""
    if "\x00" in value:
        return "must not contain NUL characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode (it holds a lone surrogate)"
    return None


def _storable(value: str) -> str:
    problem = text_problem(value)
    if problem:
        raise ValueError(problem)
    return value


Text = Annotated[str, AfterValidator(_storable)]
"""A request string that every engine can store and search (no NUL, no lone surrogates)."""


def json_problem(value: Any, depth: int = 0) -> str | None:
    """Why a free-form JSON value cannot be stored as a job's input, or None when it can."""
    if depth > MAX_JSON_DEPTH:
        return f"nests deeper than {MAX_JSON_DEPTH} levels"
    if isinstance(value, str):
        return text_problem(value)
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return None if -MAX_PAYLOAD_INT <= value <= MAX_PAYLOAD_INT else f"holds an integer beyond ±{MAX_PAYLOAD_INT}"
    if isinstance(value, float):
        return None if value == value and abs(value) != float("inf") else "holds a number that is not finite"
    if isinstance(value, Mapping):
        for key, item in value.items():
            problem = json_problem(str(key), depth + 1) or json_problem(item, depth + 1)
            if problem:
                return problem
        return None
    if isinstance(value, list | tuple):
        for item in value:
            problem = json_problem(item, depth + 1)
            if problem:
                return problem
        return None
    return f"holds a {type(value).__name__}, which is not JSON"


# --- local file locations -------------------------------------------------------------------------------------

PATH_KEYS = frozenset({"uri", "url", "request_uri", "lake_uri", "path", "file", "folder", "location"})
"""Keys whose absolute values are file locations, wherever they appear in a response."""
TEXT_KEYS = frozenset({"error", "last_error", "reason", "detail", "message"})
"""Keys whose free text may quote a file location."""
_WINDOWS_PATH = re.compile(r"^[A-Za-z]:[\\/]")
_FILE_URI_IN_TEXT = re.compile(r"file:/[^\s'\"<>)\]]*")


class LocalPaths:
    """Keeps this machine's absolute paths out of API responses.

    A ``file:`` URI or an absolute path becomes a path relative to the data home (or the lake folder) when it
    lies there; otherwise the source's own name (its ``resource_id``) or the file's name. The store keeps the
    full locations; only what the API shows is rewritten.
    """

    def __init__(self, roots: Iterable[Path]) -> None:
        found: dict[str, None] = {}
        for root in roots:
            for form in (root.absolute(), root.resolve()):
                found[form.as_posix().rstrip("/") or "/"] = None
        # A root inside another (the lake inside the home) adds nothing: its files are shown relative to the outer.
        outer = [r for r in found if not any(o != r and (o == "/" or r.startswith(o + "/")) for o in found)]
        self.roots = sorted(outer, key=len, reverse=True)

    @classmethod
    def of(cls, home: Path, lake: Path) -> LocalPaths:
        return cls([home, lake])

    @staticmethod
    def _local_path(value: str) -> str | None:
        """The filesystem path ``value`` names (a ``file:`` URI or an absolute path), else None."""
        if value[:5].lower() == "file:":
            parts = urlsplit(value)
            path = unquote(parts.path)
            return path if path else None
        if value.startswith("/") or _WINDOWS_PATH.match(value):
            return value
        return None

    def location(self, value: str, name: str | None = None) -> str:
        """``value`` as the API shows it: relative to a root, else ``name``, else the file's own name."""
        path = self._local_path(value)
        if path is None:
            return value
        posix = path.replace("\\", "/")
        for root in self.roots:
            if posix == root:
                return "."
            prefix = root if root.endswith("/") else root + "/"
            if posix.startswith(prefix):
                return posix[len(prefix) :]
        return name or PurePosixPath(posix).name or "."

    def _under_root(self, path: str) -> bool:
        posix = path.replace("\\", "/")
        return any(posix == root or posix.startswith(root.rstrip("/") + "/") for root in self.roots)

    def text(self, value: str) -> str:
        """Free text (an error message) with the locations in it rewritten."""
        out = _FILE_URI_IN_TEXT.sub(lambda match: self.location(match.group(0)), value)
        for root in self.roots:
            if root != "/":
                out = out.replace(root + "/", "")
                out = re.sub(re.escape(root) + r"(?=$|[\s'\"<>:,;)\]])", ".", out)
        return out

    def public(self, value: Any, key: str | None = None, name: str | None = None) -> Any:
        """A JSON value with every local location in it rewritten (see the class)."""
        if isinstance(value, str):
            if key in TEXT_KEYS:
                return self.text(value)
            path = self._local_path(value)
            if path is not None and (value[:5].lower() == "file:" or key in PATH_KEYS or self._under_root(path)):
                return self.location(value, name)
            return value
        if isinstance(value, Mapping):
            own = value.get("resource_id")
            inner = own if isinstance(own, str) and self._local_path(own) is None else name
            return {k: self.public(v, str(k), inner) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.public(item, key, name) for item in value]
        return value


def _public(paths: LocalPaths | None, value: Any) -> Any:
    return value if paths is None else paths.public(value)


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

    source_types: list[Text] = Field(default_factory=list, max_length=100)
    source_systems: list[Text] = Field(default_factory=list, max_length=100)
    tags: list[Text] = Field(default_factory=list, max_length=100)
    source_ids: list[Text] = Field(default_factory=list, max_length=1000)
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

    query: Text = Field(min_length=1, max_length=10_000, description="What to look for.")
    k: int = Field(default=10, ge=1, le=1000, description="How many hits.")
    mode: SearchMode | None = Field(default=None, description="Default: the configured search mode.")
    filters: Filters = Field(default_factory=Filters)
    max_per_source: int | None = Field(default=None, ge=1, le=1000)
    run_id: Text | None = Field(default=None, max_length=36, description="An existing run to attribute the query to.")
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
    heading_path: list[str] = Field(description="The sections the chunk lies in, outermost first.")
    snippet: str = Field(description="The chunk's sentences that best match the query (its start when none does).")
    highlights: list[tuple[int, int]] = Field(
        description="(start, end) offsets in the snippet of the words that match the query's."
    )

    @classmethod
    def from_hit(cls, hit: Hit, source_url: str | None, paths: LocalPaths | None = None, query: str = "") -> HitOut:
        shown = hit.snippet(query, SNIPPET_WIDTH)
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
            source_ref=_public(paths, hit.source_ref),
            source_url=source_url,
            vector_rank=hit.vector_rank,
            vector_score=hit.vector_score,
            keyword_rank=hit.keyword_rank,
            keyword_score=hit.keyword_score,
            heading_path=hit.heading_path,
            snippet=shown.text,
            highlights=shown.highlights,
        )


class SearchResponse(BaseModel):
    """A search's hits; the CLI's ``search --json`` prints the same document."""

    retrieval_id: str
    query: str
    space: str
    mode: str
    filters: dict[str, Any] = Field(description="The filters that were given (none: {}).")
    latency_ms: float
    policy: dict[str, Any] = Field(
        default_factory=dict, description="How the hits were ranked (fusion and its parameters, aggregation)."
    )
    hits: list[HitOut]

    @classmethod
    def from_result(
        cls,
        result: SearchResult,
        source_url: Callable[[Hit], str | None] = page_url,
        paths: LocalPaths | None = None,
    ) -> SearchResponse:
        """``paths`` (the API's) rewrites local file locations; the CLI shows them as stored."""
        return cls(
            retrieval_id=result.retrieval_id,
            query=result.query,
            space=result.space.name,
            mode=result.mode,
            filters=result.filters.to_json(),
            latency_ms=round(result.latency_ms, 3),
            policy=result.policy,
            hits=[HitOut.from_hit(h, source_url(h), paths, result.query) for h in result.hits],
        )


class EvidenceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: Text = Field(min_length=1, max_length=10_000)
    k: int | None = Field(default=None, ge=1, le=1000, description="Hits searched; default max_items.")
    mode: SearchMode | None = None
    filters: Filters = Field(default_factory=Filters)
    max_per_source: int | None = Field(default=None, ge=1, le=1000)
    run_id: Text | None = Field(default=None, max_length=36, description="An existing run to attribute the query to.")
    max_items: int | None = Field(default=None, ge=1, le=1000)
    max_total_bytes: int | None = Field(default=None, ge=1, le=10_000_000)
    max_item_bytes: int | None = Field(default=None, ge=1, le=10_000_000)
    save: bool = True


class EnqueueRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    job_type: Text = Field(min_length=1, max_length=30, description="CHUNK_SOURCE, EMBED_CHUNKS, REEMBED_SPACE ...")
    input: dict[str, Any] = Field(description="The job type's payload.")
    priority: int | None = Field(default=None, ge=-1000, le=1000)
    dedupe_key: Text | None = Field(default=None, max_length=500)
    max_attempts: int | None = Field(default=None, ge=1, le=100)

    @field_validator("input")
    @classmethod
    def _storable_input(cls, value: dict[str, Any]) -> dict[str, Any]:
        problem = json_problem(value)
        if problem:
            raise ValueError(problem)
        return value


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
    def from_row(
        cls,
        row: dict[str, Any],
        artifacts: list[dict[str, Any]] | None = None,
        paths: LocalPaths | None = None,
    ) -> RunOut:
        """``paths`` (the API's) rewrites local file locations (artifact URIs); the CLI shows them as stored."""
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
            options=_public(paths, row["options_json"] or {}),
            metrics=_public(paths, row["metrics_json"] or {}),
            error=_public(paths, {"error": row["error"]})["error"],
            started_utc=row["started_utc"],
            completed_utc=row["completed_utc"],
            artifacts=_public(paths, artifacts),
        )


class SourceOut(BaseModel):
    """One registered source; from the API its locations are relative to the data home (see LocalPaths)."""

    model_config = ConfigDict(extra="allow")

    source_id: str
    source_type: str
    source_system: str
    title: str | None = None
    status: str
    error: str | None = None
    source_ref: dict[str, Any] = Field(description="Where it came from: ``uri`` (relative) and ``resource_id``.")
    tags: list[str] = Field(default_factory=list)

    @classmethod
    def from_row(cls, row: dict[str, Any], paths: LocalPaths | None = None) -> SourceOut:
        return cls(**_public(paths, row))


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    ready: bool
    database: str
    detail: str | None = None


class LlmEnqueueRequest(BaseModel):
    """What ``holocron llm enqueue`` takes: an interrogation and its subjects (sources or queries)."""

    model_config = ConfigDict(extra="forbid")

    interrogation: Text = Field(min_length=1, max_length=64, description="page_classification, sw_entity_facts ...")
    source_ids: list[Annotated[Text, Field(min_length=1, max_length=2000)]] = Field(
        default_factory=list, max_length=10000
    )
    all_sources: bool = Field(default=False, description="Every source that has chunks.")
    queries: list[Annotated[Text, Field(min_length=1, max_length=2000)]] = Field(default_factory=list, max_length=1000)
    params: dict[Annotated[Text, Field(max_length=64)], Annotated[Text, Field(max_length=2000)]] = Field(
        default_factory=dict, description="The interrogation's parameters (``entity`` ...)."
    )
    priority: int | None = Field(default=None, ge=-1000, le=1000)


class LlmEnqueueResponse(BaseModel):
    jobs: list[EnqueueResponse]
