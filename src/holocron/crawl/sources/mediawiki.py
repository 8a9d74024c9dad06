"""A wiki through its Action API: pages by title, discovery through links, category members and ``allpages``.

Work items:

* ``page`` (``resource_id`` a title; variant ``revisions``: the current revision rendered to HTML,
  ``extracts``: its plain text, ``parse``: ``action=parse`` with the page's links in the same answer). The
  answer is stored as one raw record; with ``follow = ["links"]`` a ``links`` item is queued for it.
* ``links`` (a title), ``category`` (``Category:...``), ``allpages`` (a namespace number): listings, one work
  item per continuation page (``links@<token>``), so a listing is followed to its end and a crash resumes at the
  page it was on. Their entries become ``page`` items one level deeper (subcategories ``category`` items),
  in the configured namespaces only.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from holocron.crawl import mediawiki
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

PageVariant = Literal["revisions", "extracts", "parse"]
LISTINGS = {"links": "plcontinue", "category": "cmcontinue", "allpages": "apcontinue"}


class MediaWikiConfig(BaseModel):
    """``[[sources]]`` with ``kind = "mediawiki"``."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["mediawiki"]
    name: str = Field(min_length=1, max_length=200)
    api: str = Field(pattern=r"^https?://", description="The wiki's api.php")
    pages: list[str] = Field(default_factory=list)
    categories: list[str] = Field(default_factory=list)
    allpages: list[int] = Field(default_factory=list, description="Namespaces whose every page is crawled")
    variant: PageVariant = "revisions"
    follow: list[Literal["links", "subcategories"]] = Field(default_factory=list)
    namespaces: list[int] = Field(default_factory=lambda: [0])
    max_depth: int = Field(default=1, ge=0, le=100)
    list_limit: int | Literal["max"] = "max"
    member_types: str = "page|subcat"


def _answer(body: str) -> dict[str, Any]:
    answer = json_object(body)
    error = mediawiki.api_error(answer)
    if error is not None:
        code, info = error
        if code == "maxlag":
            raise ItemError(f"the wiki is lagged: {info}", permanent=False, retry_after_s=5.0)
        raise ItemError(f"API error {code}: {info}", permanent=True)
    return answer


def _missing(answer: dict[str, Any]) -> bool:
    pages = (answer.get("query") or {}).get("pages")
    listed = list(pages.values()) if isinstance(pages, dict) else pages or []
    return bool(listed) and all(isinstance(page, dict) and page.get("missing") not in (None, False) for page in listed)


class MediaWikiSource:
    system = "mediawiki"
    obeys_robots = False  # the API has its own etiquette (User-Agent, maxlag), robots.txt is for pages

    def __init__(self, config: MediaWikiConfig) -> None:
        self.config = config
        self.name = config.name
        self.max_depth = config.max_depth

    def _page(self, title: str, depth: int = 0) -> WorkItemInput:
        return item(self, "page", title, self.config.api, variant=self.config.variant, depth=depth)

    def _listing(
        self, kind: str, resource_id: str, *, depth: int, token: str = "", more: dict[str, str] | None = None
    ) -> WorkItemInput:
        params = {LISTINGS[kind]: token} if token else {}
        params.update(more or {})
        return item(
            self,
            kind,
            resource_id,
            self.config.api,
            variant=continuation_variant(kind, token),
            depth=depth,
            params=params,
        )

    def seeds(self) -> list[WorkItemInput]:
        found = [self._page(title) for title in self.config.pages]
        found += [self._listing("category", _category(title), depth=0) for title in self.config.categories]
        found += [self._listing("allpages", str(namespace), depth=0) for namespace in self.config.allpages]
        return found

    def request(self, work: WorkItemInput) -> Request:
        cfg = self.config
        if work.resource_type == "page":
            return Request(cfg.api, _page_params(work.resource_id, work.variant or cfg.variant))
        if work.resource_type == "links":
            params = mediawiki.links_params(work.resource_id, namespace=cfg.namespaces[0] if cfg.namespaces else 0)
            if len(cfg.namespaces) > 1:
                params["plnamespace"] = "|".join(str(n) for n in cfg.namespaces)
        elif work.resource_type == "category":
            params = mediawiki.members_params(work.resource_id, limit=cfg.list_limit, kinds=cfg.member_types)
        elif work.resource_type == "allpages":
            params = {
                "action": "query",
                "list": "allpages",
                "apnamespace": work.resource_id,
                "aplimit": str(cfg.list_limit),
                **mediawiki.ETIQUETTE,
            }
        else:
            raise ItemError(f"a MediaWiki source has no {work.resource_type!r} items", permanent=True)
        params.update(work.params)  # the continuation
        return Request(cfg.api, params, conditional=False)

    def read(self, work: WorkItemInput, body: str) -> Reading:
        answer = _answer(body)
        if work.resource_type == "page":
            return self._read_page(work, answer, body)
        return self._read_listing(work, answer)

    def _read_page(self, work: WorkItemInput, answer: dict[str, Any], body: str) -> Reading:
        if _missing(answer):
            raise ItemError(f"the wiki has no page {work.resource_id!r}", permanent=True)
        reading = Reading(pages=[Page(work.resource_id, body, work.resource_id)])
        if "links" in self.config.follow:
            parsed = answer.get("parse")
            if isinstance(parsed, dict):  # action=parse: the links are in this answer
                titles = [
                    str(link.get("title") or link.get("*"))
                    for link in parsed.get("links") or []
                    if isinstance(link, dict) and int(link.get("ns", 0)) in self.config.namespaces
                ]
                reading.discovered = deeper(self, work, [self._page(t) for t in titles])
            elif work.depth < self.max_depth:
                reading.discovered = [self._listing("links", work.resource_id, depth=work.depth)]
        return reading

    def _read_listing(self, work: WorkItemInput, answer: dict[str, Any]) -> Reading:
        namespaces = set(self.config.namespaces)
        pages: list[WorkItemInput] = []
        categories: list[WorkItemInput] = []
        if work.resource_type == "links":
            pages = [self._page(title) for title in mediawiki.linked_titles(answer)]
        elif work.resource_type == "category":
            for member in mediawiki.members(answer):
                if member.kind == "subcat":
                    if "subcategories" in self.config.follow:
                        categories.append(self._listing("category", member.title, depth=0))
                elif member.namespace in namespaces:
                    pages.append(self._page(member.title))
        else:
            listed = (answer.get("query") or {}).get("allpages") or []
            pages = [self._page(str(p["title"])) for p in listed if isinstance(p, dict) and p.get("title")]
        discovered = deeper(self, work, pages + categories)
        following = mediawiki.continued({}, answer)
        if following is not None:
            key = LISTINGS[work.resource_type]
            token = following.get(key)
            if token:
                more = {k: v for k, v in following.items() if k != key}
                discovered.append(
                    self._listing(work.resource_type, work.resource_id, depth=work.depth, token=token, more=more)
                )
        return Reading(discovered=discovered, facts={"listed": len(pages) + len(categories)})


def _category(title: str) -> str:
    return title if title.lower().startswith("category:") else f"Category:{title}"


def _page_params(title: str, variant: str) -> dict[str, str]:
    if variant == "extracts":
        params = {"action": "query", "prop": "extracts|revisions", "explaintext": "", "rvprop": "ids", "titles": title}
        return {**params, **mediawiki.ETIQUETTE}
    if variant == "parse":
        return {"action": "parse", "page": title, "prop": "text|links", **mediawiki.ETIQUETTE}
    return mediawiki.page_params(title, rendered=True)
