"""Plain served pages: the URLs given, and with ``follow_links`` the pages they link to on the same host.

One work item per URL (``url``); its answer is stored as one raw record, extracted as the HTML it is.
robots.txt is obeyed (the runner asks it before every request to a host, through ``urllib.robotparser``).
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from holocron.crawl.queue import WorkItemInput
from holocron.crawl.sources import Page, Reading, Request, deeper, item
from holocron.extract.html import page_links


class WebConfig(BaseModel):
    """``[[sources]]`` with ``kind = "web"``."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["web"]
    name: str = Field(min_length=1, max_length=200)
    urls: list[str] = Field(default_factory=list)
    follow_links: bool = False
    prefixes: list[str] = Field(
        default_factory=list, description="Links followed only under these URL prefixes (default: the seeds' hosts)"
    )
    max_depth: int = Field(default=1, ge=0, le=100)


class WebSource:
    system = "web"
    obeys_robots = True

    def __init__(self, config: WebConfig) -> None:
        self.config = config
        self.name = config.name
        self.max_depth = config.max_depth
        self.prefixes = config.prefixes or sorted(
            {f"{urlsplit(u).scheme}://{urlsplit(u).netloc}/" for u in config.urls}
        )

    def _url(self, url: str) -> WorkItemInput:
        return item(self, "url", url, url)

    def seeds(self) -> list[WorkItemInput]:
        return [self._url(u) for u in self.config.urls]

    def request(self, work: WorkItemInput) -> Request:
        return Request(work.request_uri, expect="html")

    def read(self, work: WorkItemInput, body: str) -> Reading:
        reading = Reading(pages=[Page(work.resource_id, body)])
        if self.config.follow_links:
            linked = [u for u in page_links(body, work.request_uri) if u.startswith(tuple(self.prefixes))]
            reading.discovered = deeper(self, work, [self._url(u) for u in linked if u != work.request_uri])
        return reading
