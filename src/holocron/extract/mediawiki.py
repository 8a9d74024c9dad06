"""MediaWiki Action API responses (``action=parse`` and ``action=query``).

Page content is taken from, in order of preference: rendered HTML (``parse.text``, revisions
fetched with ``rvparse``), TextExtracts ``extract`` (plain text or HTML), raw wikitext revisions.
Responses that only list things (search hits, links, categories, site info, ...) hold no page
content and raise :class:`ExtractionError`. Recorded exchanges of the form
``{"site": ..., "params": ..., "response": ...}`` are unwrapped first.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from selectolax.lexbor import LexborHTMLParser

from holocron.extract._text import (
    Block,
    Heading,
    clean_line,
    clean_title,
    compose,
    is_tail_heading,
    outline,
    split_lines,
)
from holocron.extract._types import ExtractedDocument, ExtractionError, load_json
from holocron.extract._wikitext import heading, looks_like_wikitext, wikitext_blocks
from holocron.extract.html import fragment_blocks

NO_CONTENT = "MediaWiki response holds no page content"

# Top-level keys that only the MediaWiki Action API uses.
_API_KEYS = frozenset({"parse", "query", "batchcomplete", "continue", "query-continue"})
_HTML_START = re.compile(r"^\s*<(?:!doctype|html|body|div|p|table|span|h[1-6]|ul|ol|dl|section)\b", re.I)


def looks_like_mediawiki(document: Any) -> bool:
    """Whether decoded JSON is a MediaWiki Action API response (or a recorded request/response)."""
    if isinstance(document, Mapping):
        if _is_recording(document):
            return True
        if _API_KEYS & document.keys():
            return True
        return isinstance(document.get("error"), Mapping) and "servedby" in document
    return _is_opensearch(document)


def extract_mediawiki(payload: str, *, origin: str | None = None) -> ExtractedDocument:
    """Page text from a MediaWiki API response; several pages become consecutive titled sections."""
    document = load_json(payload)
    site: Any = None
    if isinstance(document, Mapping) and _is_recording(document):
        site = document.get("site")
        document = document.get("response")
    if not isinstance(document, Mapping):
        raise ExtractionError(NO_CONTENT)
    error = document.get("error")
    if isinstance(error, Mapping):
        code, info = error.get("code", "error"), error.get("info", "")
        raise ExtractionError(f"{NO_CONTENT} (API error {code}: {info})")
    pages: list[tuple[str | None, list[Block], dict[str, Any]]] = []
    parse = document.get("parse")
    if isinstance(parse, Mapping):
        page = _parsed_page(parse)
        if page is not None:
            pages.append(page)
    query = document.get("query")
    if isinstance(query, Mapping):
        for raw_page in _query_pages(query):
            page = _query_page(raw_page)
            if page is not None:
                pages.append(page)
    if not pages:
        raise ExtractionError(NO_CONTENT)
    blocks: list[Block] = []
    for title, body, _meta in pages:
        if title:
            blocks.append([title])
        blocks.extend(body)
    metadata: dict[str, Any] = dict(pages[0][2]) if len(pages) == 1 else {}
    if len(pages) > 1:
        metadata["pages"] = [meta for _title, _body, meta in pages]
    if origin:
        metadata["origin"] = origin
    if isinstance(site, str):
        metadata["site"] = site
    return ExtractedDocument(title=pages[0][0], text=compose(blocks), metadata=metadata, sections=outline(blocks))


def _is_recording(document: Mapping[str, Any]) -> bool:
    params = document.get("params")
    return "response" in document and isinstance(params, Mapping) and "action" in params


def _is_opensearch(document: Any) -> bool:
    """``action=opensearch`` answers ``[query, [titles], [descriptions], [urls]]``."""
    return (
        isinstance(document, list)
        and len(document) >= 2
        and isinstance(document[0], str)
        and all(isinstance(item, list) for item in document[1:])
    )


def _html_of(value: Any) -> str | None:
    """``parse.text`` and friends: a string (formatversion=2) or ``{"*": html}``."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and isinstance(value.get("*"), str):
        return str(value["*"])
    return None


def _parsed_page(parse: Mapping[str, Any]) -> tuple[str | None, list[Block], dict[str, Any]] | None:
    """``action=parse``: rendered HTML, else wikitext, else the section outline."""
    title = clean_title(parse.get("title")) if isinstance(parse.get("title"), str) else None
    meta: dict[str, Any] = {}
    for key in ("pageid", "revid"):
        if key in parse:
            meta[key] = parse[key]
    if title:
        meta["title"] = title
    html = _html_of(parse.get("text"))
    blocks: list[Block] = []
    if html:
        blocks = fragment_blocks(html, title=title)
    if not compose(blocks):
        wikitext = _html_of(parse.get("wikitext"))
        if wikitext:
            blocks = wikitext_blocks(wikitext)
    if not compose(blocks):
        blocks = _outline(parse.get("sections"))
    if not compose(blocks):
        return None
    return title, blocks, meta


def _outline(sections: Any) -> list[Block]:
    """Section headings of ``prop=sections``: the page's outline, one heading per line."""
    if not isinstance(sections, list):
        return []
    lines: Block = []
    for section in sections:
        if isinstance(section, Mapping) and isinstance(section.get("line"), str):
            heading = clean_line(LexborHTMLParser(section["line"]).text())
            if heading and not is_tail_heading(heading):
                lines.append(heading)
    return [lines] if lines else []


def _query_pages(query: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """``query.pages`` as a dict keyed by page id (formatversion=1) or a list (formatversion=2)."""
    pages = query.get("pages")
    values = pages.values() if isinstance(pages, Mapping) else pages if isinstance(pages, list) else []
    for page in values:
        if isinstance(page, Mapping):
            yield page


def _query_page(page: Mapping[str, Any]) -> tuple[str | None, list[Block], dict[str, Any]] | None:
    """One page of ``action=query``: revisions content and/or TextExtracts extract."""
    if "missing" in page or "invalid" in page:
        return None
    title = clean_title(page["title"]) if isinstance(page.get("title"), str) else None
    revision = _first_revision(page)
    content = _revision_content(revision) if revision is not None else None
    extract = page.get("extract") if isinstance(page.get("extract"), str) else None
    blocks: list[Block] = []
    if content and _looks_like_html(content):
        blocks = fragment_blocks(content, title=title)
    if not compose(blocks) and extract:
        blocks = fragment_blocks(extract, title=title) if _looks_like_html(extract) else _plain_extract(extract)
    if not compose(blocks) and content:
        blocks = wikitext_blocks(content)
    if not compose(blocks):
        return None
    meta: dict[str, Any] = {}
    if "pageid" in page:
        meta["pageid"] = page["pageid"]
    if title:
        meta["title"] = title
    for source, target in (
        ("canonicalurl", "canonical_url"),
        ("fullurl", "url"),
        ("pagelanguage", "language"),
    ):
        if isinstance(page.get(source), str):
            meta[target] = page[source]
    if revision is not None:
        for key in ("revid", "timestamp"):
            if key in revision:
                meta[key] = revision[key]
    return title, blocks, meta


def _first_revision(page: Mapping[str, Any]) -> Mapping[str, Any] | None:
    revisions = page.get("revisions")
    if isinstance(revisions, list) and revisions and isinstance(revisions[0], Mapping):
        return revisions[0]
    return None


def _revision_content(revision: Mapping[str, Any]) -> str | None:
    """Content of a revision in any API format: slots (MW >= 1.32), ``content`` or ``*``."""
    slots = revision.get("slots")
    if isinstance(slots, Mapping) and isinstance(slots.get("main"), Mapping):
        main = slots["main"]
        for key in ("content", "*"):
            if isinstance(main.get(key), str):
                return str(main[key])
    for key in ("content", "*"):
        if isinstance(revision.get(key), str):
            return str(revision[key])
    return None


def _looks_like_html(text: str) -> bool:
    return bool(_HTML_START.match(text)) or "</p>" in text[:4000]


def _plain_extract(text: str) -> list[Block]:
    """A plain-text extract: ``== Heading ==`` lines become headings, lines become paragraphs."""
    if looks_like_wikitext(text) and ("[[" in text or "{{" in text):
        return wikitext_blocks(text)
    blocks: list[Block] = []
    skipping: int | None = None
    for raw in split_lines(text):
        line = raw.strip()
        found = heading(line, min_level=2)
        if found:
            level, name = found[0], clean_line(found[1])
            if skipping is not None and level <= skipping:
                skipping = None
            if skipping is None and is_tail_heading(name):
                skipping = level
            elif skipping is None and name:
                blocks.append(Heading(name, level))
            continue
        if skipping is None and line:
            blocks.append([line])
    return blocks
