"""Source plugins: what a crawl asks each kind of source, and what it reads in the answers.

One small interface (:class:`Source`), one module per kind: :mod:`.mediawiki` (the Action API),
:mod:`.openalex` (works by id or filter) and :mod:`.web` (plain served pages). A plugin is pure: it turns a work
item into a :class:`Request` and an answer into a :class:`Reading` (the pages to store and the work items the
answer names); the runner (:mod:`holocron.crawl.runner`) does the fetching, the politeness, the retries and
the storing, the same way for every kind.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from holocron.crawl.queue import WorkItemInput

Expect = Literal["json", "html"]
CONTINUATION_CHARS = 60
"""A continuation token longer than this is named by its hash in the work item's variant (a column of 100)."""


@dataclass(frozen=True)
class Request:
    """One GET: the URL, its query parameters, and the kind of body a good answer has."""

    url: str
    params: Mapping[str, str] = field(default_factory=dict)
    expect: Expect = "json"
    conditional: bool = True
    """Send the last stored response's ``ETag`` / ``Last-Modified`` (a page; not a listing, whose answer
    names work items that a 304 would not tell again)."""


@dataclass(frozen=True)
class Page:
    """One document an answer holds: what the raw-record store keeps and the indexer extracts."""

    resource_id: str
    payload: str
    title: str | None = None


@dataclass
class Reading:
    """What one answer gave: pages to store, work items it names, and a few figures for the item's result."""

    pages: list[Page] = field(default_factory=list)
    discovered: list[WorkItemInput] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)


class ItemError(Exception):
    """The answer is unusable. ``permanent``: asking again gives the same (a missing page, an API error);
    otherwise the queue retries with backoff, no sooner than ``retry_after_s`` (a lagged wiki)."""

    def __init__(self, reason: str, *, permanent: bool, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
        self.retry_after_s = retry_after_s


class Source(Protocol):
    """A configured source of one kind."""

    name: str
    system: str
    max_depth: int
    obeys_robots: bool

    def seeds(self) -> list[WorkItemInput]:
        """The items a crawl starts from."""
        ...

    def request(self, item: WorkItemInput) -> Request:
        """The request that fetches ``item``."""
        ...

    def read(self, item: WorkItemInput, body: str) -> Reading:
        """What the answer's body holds; raises :class:`ItemError` when it is unusable."""
        ...


def json_object(body: str) -> dict[str, Any]:
    """An answer's JSON object; not JSON is retried (a proxy's error page), JSON of another shape is not."""
    try:
        answer = json.loads(body)
    except json.JSONDecodeError as exc:
        raise ItemError(f"the answer is not JSON ({exc.msg} at byte {exc.pos})", permanent=False) from None
    if not isinstance(answer, dict):
        raise ItemError("the answer is not a JSON object", permanent=True)
    return answer


def continuation_variant(kind: str, token: str | None) -> str:
    """A listing page's variant: ``kind`` for its first page, ``kind@token`` for the others (the token hashed
    when long), so that each page of a listing is its own work item and a crash resumes at the page it was on."""
    if not token:
        return kind
    if len(token) > CONTINUATION_CHARS:
        token = "sha256:" + hashlib.sha256(token.encode("utf-8")).hexdigest()[:32]
    return f"{kind}@{token}"


def item(
    source: Source,
    resource_type: str,
    resource_id: str,
    request_uri: str,
    *,
    variant: str = "",
    depth: int = 0,
    params: Mapping[str, str] | None = None,
) -> WorkItemInput:
    """A work item of ``source``."""
    return WorkItemInput(
        source_system=source.system,
        source_name=source.name,
        resource_type=resource_type,
        resource_id=resource_id,
        variant=variant,
        request_uri=request_uri,
        depth=depth,
        params=dict(params or {}),
    )


def deeper(source: Source, found: WorkItemInput, items: Sequence[WorkItemInput]) -> list[WorkItemInput]:
    """The items one level below ``found`` that the source's depth limit still allows."""
    if found.depth >= source.max_depth:
        return []
    return [entry.model_copy(update={"depth": found.depth + 1}) for entry in items]
