"""OpenAlex works: by id, or every work a filter selects (cursor paging), and the works they reference.

Work items: ``work`` (an OpenAlex id such as ``W2741809807``; one raw record) and ``works`` (a filter; one item
per cursor page, ``works@<cursor>``, each result stored as its own record). With ``follow_references`` a work's
``referenced_works`` become ``work`` items one level deeper. ``mailto`` joins OpenAlex's polite pool.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from holocron.crawl.queue import WorkItemInput
from holocron.crawl.sources import (
    ItemError,
    Page,
    Reading,
    Request,
    continuation_variant,
    deeper,
    item,
    json_object,
)

OPENALEX_ID = "https://openalex.org/"


class OpenAlexConfig(BaseModel):
    """``[[sources]]`` with ``kind = "openalex"``."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["openalex"]
    name: str = Field(min_length=1, max_length=200)
    api: str = Field(default="https://api.openalex.org", pattern=r"^https?://")
    works: list[str] = Field(default_factory=list)
    filters: list[str] = Field(default_factory=list)
    per_page: int = Field(default=50, ge=1, le=200)
    follow_references: bool = False
    max_depth: int = Field(default=1, ge=0, le=100)
    mailto: str | None = None


def short_id(value: str) -> str:
    """``https://openalex.org/W123`` and ``W123`` alike: the id OpenAlex's URLs take."""
    return value[len(OPENALEX_ID) :] if value.startswith(OPENALEX_ID) else value


class OpenAlexSource:
    system = "openalex"
    obeys_robots = False

    def __init__(self, config: OpenAlexConfig) -> None:
        self.config = config
        self.name = config.name
        self.max_depth = config.max_depth

    def _work(self, work_id: str, depth: int = 0) -> WorkItemInput:
        wid = short_id(work_id)
        return item(self, "work", wid, f"{self.config.api.rstrip('/')}/works/{wid}", depth=depth)

    def _page(self, filter_spec: str, cursor: str, depth: int) -> WorkItemInput:
        return item(
            self,
            "works",
            filter_spec,
            f"{self.config.api.rstrip('/')}/works",
            variant=continuation_variant("works", "" if cursor == "*" else cursor),
            depth=depth,
            params={"cursor": cursor},
        )

    def seeds(self) -> list[WorkItemInput]:
        return [self._work(w) for w in self.config.works] + [self._page(f, "*", 0) for f in self.config.filters]

    def _polite(self) -> dict[str, str]:
        return {"mailto": self.config.mailto} if self.config.mailto else {}

    def request(self, work: WorkItemInput) -> Request:
        if work.resource_type == "work":
            return Request(work.request_uri, self._polite())
        if work.resource_type == "works":
            params = {
                "filter": work.resource_id,
                "per-page": str(self.config.per_page),
                "cursor": work.params.get("cursor", "*"),
                **self._polite(),
            }
            return Request(work.request_uri, params, conditional=False)
        raise ItemError(f"an OpenAlex source has no {work.resource_type!r} items", permanent=True)

    def read(self, work: WorkItemInput, body: str) -> Reading:
        answer = json_object(body)
        if "error" in answer and "id" not in answer:
            raise ItemError(f"OpenAlex error: {answer.get('error')}: {answer.get('message', '')}", permanent=True)
        if work.resource_type == "work":
            return Reading(pages=[self._entity_page(answer, body)], discovered=self._references(work, [answer]))
        results = [r for r in answer.get("results") or [] if isinstance(r, dict) and r.get("id")]
        pages = [self._entity_page(r, json.dumps(r, ensure_ascii=False)) for r in results]
        discovered = self._references(work, results)
        cursor = (answer.get("meta") or {}).get("next_cursor")
        if results and isinstance(cursor, str) and cursor:
            discovered.append(self._page(work.resource_id, cursor, work.depth))
        return Reading(pages=pages, discovered=discovered, facts={"results": len(results)})

    @staticmethod
    def _entity_page(entity: dict[str, Any], payload: str) -> Page:
        if not entity.get("id"):
            raise ItemError("the answer is not an OpenAlex entity (no id)", permanent=True)
        return Page(short_id(str(entity["id"])), payload, entity.get("display_name") or entity.get("title"))

    def _references(self, work: WorkItemInput, entities: list[dict[str, Any]]) -> list[WorkItemInput]:
        if not self.config.follow_references:
            return []
        found = [self._work(str(ref)) for entity in entities for ref in entity.get("referenced_works") or []]
        return deeper(self, work, found)
