"""The MediaWiki Action API, as the crawl speaks it: the requests, and what their answers say.

Pure functions over parameters and parsed JSON; the fetching (client, limits, retries) is the runner's. They
read both answer formats: ``formatversion=2`` (``pages`` a list, flags as booleans) and the older default
(``pages`` an object keyed by page id, content under ``*``), since wikis in the wild still answer the latter.

* :func:`page_params`: one page's current revision, rendered (``rvparse``), or its wikitext.
* :func:`members_params` and :func:`links_params`: discovery through ``categorymembers`` and a page's links.
* :func:`continued`: the next request of a listing (the ``continue`` object merged in; the pre-1.26
  ``query-continue`` too), None at its end; :func:`walk` follows a listing to the end.
* :func:`api_error`: the error an answer carries (MediaWiki answers errors, ``maxlag`` included, with 200).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

ETIQUETTE = {"format": "json", "formatversion": "2", "maxlag": "5"}
"""Sent with every request: JSON, the modern format, and ``maxlag`` (a lagged wiki asks crawlers to wait)."""
MAX_PAGES = 10_000
"""Continuation pages of one listing before :func:`walk` stops (a server that never ends its listing)."""


class ListingTooLongError(RuntimeError):
    """A listing still continued after :data:`MAX_PAGES` pages (a server sending the same continuation)."""


@dataclass(frozen=True)
class Member:
    """One entry of a category listing."""

    namespace: int
    title: str
    kind: str  # "page", "subcat" or "file"


def _strings(params: Mapping[str, Any]) -> dict[str, str]:
    return {key: str(value) for key, value in params.items()}


def page_params(title: str, *, rendered: bool = True) -> dict[str, str]:
    """The current revision of ``title``: rendered to HTML (``rvparse``), or its wikitext."""
    params = {"action": "query", "prop": "revisions", "rvprop": "content", "rvlimit": "1", "titles": title}
    if rendered:
        params["rvparse"] = ""
    return {**params, **ETIQUETTE}


def members_params(category: str, *, limit: int | str = "max", kinds: str = "page|subcat") -> dict[str, str]:
    """The members of ``category`` (``Category:`` prefixed when it is not)."""
    title = category if category.lower().startswith("category:") else f"Category:{category}"
    params = {
        "action": "query",
        "list": "categorymembers",
        "cmtitle": title,
        "cmprop": "ids|title|type",
        "cmtype": kinds,
        "cmlimit": str(limit),
    }
    return {**params, **ETIQUETTE}


def links_params(title: str, *, namespace: int = 0) -> dict[str, str]:
    """The pages ``title`` links to, in one namespace (articles by default)."""
    params = {"action": "query", "prop": "links", "pllimit": "max", "plnamespace": str(namespace), "titles": title}
    return {**params, **ETIQUETTE}


def api_error(answer: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(code, info)`` of an error answer (``maxlag``, ``badtoken``, ...), else None."""
    error = answer.get("error")
    if not isinstance(error, Mapping):
        return None
    return str(error.get("code") or "unknown"), str(error.get("info") or error.get("*") or "")


def continued(params: Mapping[str, str], answer: Mapping[str, Any]) -> dict[str, str] | None:
    """The request for the listing's next page, or None when this answer was its last."""
    modern = answer.get("continue")
    if isinstance(modern, Mapping) and modern:
        return {**params, **_strings(modern)}
    legacy = answer.get("query-continue")
    if isinstance(legacy, Mapping) and legacy:
        merged = dict(params)
        for module in legacy.values():
            if isinstance(module, Mapping):
                merged.update(_strings(module))
        return merged
    return None


def walk(
    fetch: Callable[[dict[str, str]], Mapping[str, Any]], params: Mapping[str, str]
) -> Iterator[Mapping[str, Any]]:
    """Every answer of a listing, following its continuations to the end."""
    request: dict[str, str] | None = dict(params)
    seen: set[tuple[tuple[str, str], ...]] = set()
    pages = 0
    while request is not None:
        key = tuple(sorted(request.items()))
        if key in seen or pages >= MAX_PAGES:
            raise ListingTooLongError(f"the listing continues without end after {pages} pages: {request}")
        seen.add(key)
        answer = fetch(request)
        pages += 1
        yield answer
        request = continued(request, answer)


def _pages(answer: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    pages = (answer.get("query") or {}).get("pages")
    if isinstance(pages, Mapping):  # formatversion 1: keyed by page id
        pages = list(pages.values())
    return [page for page in pages or [] if isinstance(page, Mapping)]


def members(answer: Mapping[str, Any]) -> list[Member]:
    """The category members one answer lists."""
    listed = (answer.get("query") or {}).get("categorymembers") or []
    return [
        Member(int(item.get("ns", 0)), str(item["title"]), str(item.get("type") or "page"))
        for item in listed
        if isinstance(item, Mapping) and item.get("title")
    ]


def linked_titles(answer: Mapping[str, Any]) -> list[str]:
    """The titles one answer's pages link to, in order, once each."""
    titles: dict[str, None] = {}
    for page in _pages(answer):
        for link in page.get("links") or []:
            if isinstance(link, Mapping) and link.get("title"):
                titles[str(link["title"])] = None
    return list(titles)


@dataclass(frozen=True)
class Revision:
    title: str
    page_id: int | None
    content: str


def revision(answer: Mapping[str, Any]) -> Revision | None:
    """The page's current revision in a ``prop=revisions`` answer; None for a missing page."""
    for page in _pages(answer):
        if page.get("missing") is not None and page.get("missing") is not False:
            return None
        revisions = page.get("revisions") or []
        if not revisions or not isinstance(revisions[0], Mapping):
            continue
        first = revisions[0]
        slots = first.get("slots")
        main = slots.get("main") if isinstance(slots, Mapping) else None
        source = main if isinstance(main, Mapping) else first
        content = source.get("content", source.get("*"))
        if isinstance(content, str):
            page_id = page.get("pageid")
            return Revision(str(page.get("title") or ""), int(page_id) if page_id is not None else None, content)
    return None
